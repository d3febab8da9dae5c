"""Throughput of the metric suite on 5-s clips: spatial (ViSAGe CC / AUC, DOA), FOA direction errors
(intensity vs energy-map peak, per clip vs per second), interaural metrics, the FrechetDistance update,
and the metric-path resampler (torch sinc-Hann on the tensor's device vs scipy's polyphase Kaiser via a
CPU float64 round trip), side by side in one run. Medians over ``--repeats``; thread count recorded.
Writes bench/results/metrics.json.

    .venv/bin/python bench/bench_metrics.py [--clips 8] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spatialgen.io.audio import resample_audio
from spatialgen.metrics import (
    DirectionError,
    DOAError,
    EnergyMapAUC,
    EnergyMapCC,
    FrechetDistance,
    binaural_metrics,
)
from spatialgen.metrics.functional.resample import sinc_resample

try:
    from bench.common import write_results
except ImportError:  # run as a script from bench/
    from common import write_results


def _median_s(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    n, r = args.clips, args.repeats
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(n, 4, 80000, generator=g).to(dev)
    gt = pred + 0.3 * torch.randn(n, 4, 80000, generator=g).to(dev)
    rows: list[dict] = []

    def add(group: str, variant: str, fn) -> None:
        s = _median_s(fn, r, dev)
        rows.append({"group": group, "variant": variant, "median_s": s, "clips_per_s": n / s})

    for fps in (None, 1, 5):
        for cls in (EnergyMapCC, EnergyMapAUC):
            m = cls(16000, fps).to(dev)
            add("visage_map", m.key, lambda m=m: m.scores(pred, gt))
    add("doa", "doa_error_0.2s", lambda: DOAError(16000).scores(pred, gt))
    for method in ("intensity", "map"):
        for frame in (None, 1.0):
            m = DirectionError(16000, method=method, frame=frame)
            add("direction", m.key.replace("angular_error_deg_", ""), lambda m=m: m.scores(pred, gt))
    inter = binaural_metrics(16000)
    for key in ("iacc_error", "lr_balance_agreement", "ild_error_db_500_1500hz", "ipd_error_rad_0_500hz"):
        add("interaural", key, lambda m=inter[key]: m.scores(pred[:, :2], gt[:, :2]))
    feats = torch.randn(n * 8, 128, device=dev)
    fd = FrechetDistance(None, num_features=128).to(dev)
    add("fd_update", "vggish_dim_128", lambda: fd.update(feats, feats))
    wave = torch.randn(n, 4, 44100 * 5, generator=g).to(dev)  # 5 s at 44.1 kHz -> 16 kHz
    add("resample_44k1_to_16k", "sinc_hann_torch_float32", lambda: sinc_resample(wave, 44100, 16000))
    add("resample_44k1_to_16k", "sinc_hann_torch_float64", lambda: sinc_resample(wave.double(), 44100, 16000))
    add("resample_44k1_to_16k", "scipy_resample_poly_cpu", lambda: resample_audio(wave, 44100, 16000))
    write_results(
        "metrics",
        rows,
        device=str(dev),
        torch_threads=torch.get_num_threads(),
        clip="5 s, 16 kHz float32 (FOA; first two channels for interaural); resampler input 4 ch 44.1 kHz",
        clips_per_batch=n,
        repeats=r,
        statistic="median",
    )


if __name__ == "__main__":
    main()
