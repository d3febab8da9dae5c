"""Training throughput (samples/s) of a small transformer with 1 vs 2 DDP processes, CPU (and GPU).

Run: ``python bench/bench_scaling.py [--steps 30]``; writes ``bench/results/scaling.json``. Each
process trains on the same per-process batch, so ideal scaling doubles samples/s. On CPU both
processes share the machine's cores (threads are split between them), so the CPU number measures the
DDP overhead (gloo all-reduce, Lightning's per-step work) rather than extra compute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

from spatialgen.training import SpatialAudioModule


class RandomTokens(Dataset):
    """Fixed random sequences ``[seq, dim]`` with a regression target."""

    def __init__(self, n: int, seq: int, dim: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, seq, dim, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.x[i], "clip_id": f"clip{i:05d}"}


class TinyTransformer(SpatialAudioModule):
    """A 2-layer transformer encoder on a frozen linear "encoder"; predicts its own shifted input."""

    def __init__(self, dim: int = 128, layers: int = 2) -> None:
        super().__init__(optimizer=None)
        self.register_frozen("encoder", nn.Linear(dim, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True)
        self.network = nn.TransformerEncoder(layer, layers)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.frozen["encoder"](batch["x"])
        return nn.functional.mse_loss(self.network(x)[:, :-1], x[:, 1:]), {}


class Timer(pl.Callback):
    """Wall time from the end of warm-up step ``warmup`` to the end of training (rank 0 writes it)."""

    def __init__(self, warmup: int, out: str) -> None:
        self.warmup, self.out, self.start = warmup, out, 0.0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self._sync(pl_module)
        if trainer.is_global_zero:
            steps = trainer.global_step - self.warmup
            Path(self.out).write_text(
                json.dumps({"seconds": time.perf_counter() - self.start, "steps": steps})
            )


def run(accelerator: str, devices: int, steps: int, batch: int, seq: int, dim: int) -> dict[str, Any]:
    """samples/s of ``devices`` processes (global batch = devices * batch)."""
    warmup = 5
    pl.seed_everything(0, workers=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "timing.json")
        trainer = pl.Trainer(
            accelerator=accelerator, devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
            max_steps=steps + warmup, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[Timer(warmup, out)], default_root_dir=tmp,
        )  # fmt: skip
        loader = DataLoader(RandomTokens(batch * (steps + warmup) * devices, seq, dim), batch_size=batch)
        trainer.fit(TinyTransformer(dim), loader)
        timing = json.loads(Path(out).read_text())
    samples = timing["steps"] * batch * devices
    return {
        "accelerator": accelerator,
        "processes": devices,
        "batch_per_process": batch,
        "seq": seq,
        "dim": dim,
        "steps": timing["steps"],
        "samples_per_s": samples / timing["seconds"],
    }


def main() -> None:
    """Measure and write ``bench/results/scaling.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    shape = {"steps": args.steps, "batch": args.batch, "seq": args.seq, "dim": args.dim}
    rows = [run("cpu", n, **shape) for n in (1, 2)]
    if torch.cuda.is_available():
        rows += [run("gpu", n, **shape) for n in (1, 2) if n <= torch.cuda.device_count()]
    for accel in {r["accelerator"] for r in rows}:
        base = next(r["samples_per_s"] for r in rows if r["accelerator"] == accel and r["processes"] == 1)
        for r in rows:
            if r["accelerator"] == accel:
                r["speedup_vs_1"] = r["samples_per_s"] / base
    write_results("scaling", rows)


if __name__ == "__main__":
    main()
