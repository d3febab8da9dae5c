"""A tiny deterministic model and data module on top of SpatialAudioModule, for the training tests."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spatialgen.training import ResumableDataLoader, SpatialAudioModule


class ToyDataset(Dataset):
    """``n`` fixed random samples ``{"x": [8], "y": [4], "clip_id": "clipNNN"}``; ``nan_ids`` get NaN inputs."""

    def __init__(self, n: int, offset: int = 0, nan_ids: tuple[int, ...] = ()) -> None:
        g = torch.Generator().manual_seed(1234 + offset)
        self.x = torch.randn(n, 8, generator=g)
        self.y = torch.tanh(self.x[:, :4] * 1.5) + 0.1 * torch.randn(n, 4, generator=g)
        self.offset, self.nan_ids = offset, set(nan_ids)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.x[i].clone()
        if i + self.offset in self.nan_ids:
            x[0] = float("nan")
        return {"x": x, "y": self.y[i], "clip_id": f"clip{i + self.offset:03d}"}


class ToyDataModule(pl.LightningDataModule):
    """Train/val splits of :class:`ToyDataset`; the train loader is a ResumableDataLoader."""

    def __init__(
        self,
        n_train: int = 24,
        n_val: int = 8,
        batch_size: int = 4,
        seed: int = 0,
        nan_ids: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.n_train, self.n_val, self.batch_size, self.seed = n_train, n_val, batch_size, seed
        self.nan_ids = tuple(nan_ids)

    def train_dataloader(self) -> DataLoader:
        ds = ToyDataset(self.n_train, nan_ids=self.nan_ids)
        return ResumableDataLoader(ds, batch_size=self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ToyDataset(self.n_val, offset=1000), batch_size=self.batch_size)


class ToyModule(SpatialAudioModule):
    """MLP network on top of a frozen random linear "encoder"; MSE loss.

    Args:
        hidden: hidden width.
        record_dir: when set, each rank appends one JSON line per training batch (step, loss, ids).
        step_sleep: seconds to sleep per training step (gives signal tests time to act).
    """

    def __init__(
        self, hidden: int = 16, record_dir: str | None = None, step_sleep: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.register_frozen("encoder", nn.Linear(8, 8))
        self.network = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 4))
        # a frozen parameter *inside* the network: must stay out of optimizer and EMA too
        self.network.register_parameter("gain", nn.Parameter(torch.ones(4), requires_grad=False))
        self.record_dir, self.step_sleep = record_dir, step_sleep

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MSE between the network output and ``y``."""
        feats = self.frozen["encoder"](batch["x"])
        pred = self.network(feats) * self.network.gain
        loss = torch.nn.functional.mse_loss(pred, batch["y"])
        return loss, {"abs_err": (pred - batch["y"]).abs().mean().detach()}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Record (global step, loss, clip ids) when asked to, for the resume/DDP tests."""
        if self.step_sleep:
            time.sleep(self.step_sleep)
        if self.record_dir is None:
            return
        line = {
            "step": self.trainer.global_step,
            "epoch": self.trainer.current_epoch,
            "loss": float(outputs["loss"]),
            "ids": list(batch["clip_id"]),
        }
        path = Path(self.record_dir) / f"rank{self.global_rank}.jsonl"
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_records(folder: str | Path, rank: int = 0) -> list[dict[str, Any]]:
    """The JSON lines written by :class:`ToyModule` for one rank."""
    path = Path(folder) / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
