"""Throughput of the metric suite: clips/s of the spatial metrics on 5-s 16 kHz FOA (whole clip, 1 fps,
5 fps; CC + AUC) and of the FrechetDistance update. Writes bench/results/metrics.json.

    .venv/bin/python bench/bench_metrics.py [--clips 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from spatialgen.metrics import DOAError, EnergyMapAUC, EnergyMapCC, FrechetDistance


def _rate(fn, clips: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return clips * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    pred = torch.randn(args.clips, 4, 80000, device=dev)
    gt = pred + 0.3 * torch.randn_like(pred)
    results: dict[str, float] = {}
    for fps in (None, 1, 5):
        tag = "all" if fps is None else f"{fps}fps"
        for cls in (EnergyMapCC, EnergyMapAUC):
            m = cls(16000, fps).to(dev)
            results[f"{m.key}_clips_per_s"] = _rate(lambda m=m: m.update(pred, gt), args.clips, args.repeats)
        print(tag, {k: round(v, 2) for k, v in results.items() if tag in k})
    doa = DOAError(16000).to(dev)
    results["doa_error_clips_per_s"] = _rate(lambda: doa.update(pred, gt), args.clips, args.repeats)
    feats = torch.randn(args.clips * 8, 128, device=dev)
    fd = FrechetDistance(None, num_features=128).to(dev)
    results["fd_update_vggish_dim_clips_per_s"] = _rate(
        lambda: fd.update(feats, feats), args.clips, args.repeats
    )
    fd2048 = FrechetDistance(None, num_features=2048).to(dev)
    f2048 = torch.randn(args.clips, 2048, device=dev)
    results["fd_update_cnn14_dim_clips_per_s"] = _rate(
        lambda: fd2048.update(f2048, f2048), args.clips, args.repeats
    )
    start = time.perf_counter()
    fd2048.compute()
    results["fd_compute_2048_s"] = time.perf_counter() - start
    report = {
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "clip": "5 s FOA, 16 kHz, float32",
        "clips_per_batch": args.clips,
        "results": {k: round(v, 4) for k, v in results.items()},
    }
    out = Path(__file__).parent / "results" / "metrics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["results"], indent=2))


if __name__ == "__main__":
    main()
