"""DSP core benchmark: FOA rotation and binaural rendering of 60 s of 48 kHz FOA, old vs new side by side.

Every variant runs once per round and the rounds interleave all variants (in a shuffled order), so a
busy machine slows them alike; each row reports the median wall and CPU (process) time over the rounds,
the real-time factors ``rtf = 60 s / median wall`` and ``rtf_cpu = 60 s / median CPU`` (higher is
better; on a shared machine CPU time is what one quiet core would take), and ratios against the floors
and the old code as medians of per-round ratios, of wall and of CPU time. One run per ``--threads``
count of torch intra-op threads (default 1, the issue-19 target, then 2).

Variants (float32, batch 1):
- floors: ``numpy_matmul_4x4`` (``M @ x`` on the ``[4, T]`` array, what "a plain numpy matrix product"
  means below), ``numpy_copy`` (one read + one write), ``scipy_oaconvolve`` (8 overlap-add convolutions
  4 channels x 2 ears, summed).
- ``*_old``: the code before issue 19, rebuilt from the same public pieces: a full ``isfinite`` scan of
  every input, ``foa_rotation_matrix(R.T) @ x`` for a static pose, the 9-entry multiply-add for a
  trajectory, one full-length FFT convolution for the render.
- new: :func:`spatialgen.spatial.foa.rotate` and :func:`spatialgen.spatial.binaural.render_foa` as shipped
  (their chunked loops on 1 thread); with ``--threads N > 1`` also ``*_global_threads``: the same loops
  on torch's N threads (``threads=None``).
Plus the equirect -> perspective projection (8 s of 224² video at 8 fps), unchanged by issue 19.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.signal
import torch
from common import write_results

from spatialgen.spatial import binaural, convolve, foa, projection

SR, SECONDS = 48_000, 60.0
FLOORS = {"foa_rotate_static": "numpy_matmul_4x4", "binaural_render_foa": "scipy_oaconvolve"}


def _old_check(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise ValueError("non-finite input")


def _old_static(x: torch.Tensor, yaw: float, pitch: float, roll: float) -> torch.Tensor:
    _old_check(x)
    pose = foa.rotation_matrix(torch.tensor(yaw), pitch, roll).to(x.dtype)
    return foa.foa_rotation_matrix(pose.mT) @ x


def _old_trajectory(
    x: torch.Tensor, yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor
) -> torch.Tensor:
    _old_check(x, yaw, pitch, roll)
    return foa._apply_transposed(x, foa._pose_entries(yaw, pitch, roll))


def _old_render(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    _old_check(x)
    return convolve.mix_convolve(x, filters, "full")


def _rounds(variants: dict[str, Callable[[], object]], rounds: int, device: str) -> dict[str, list[tuple]]:
    """(wall, cpu) seconds of every variant, one call per round, variants interleaved; one warm-up.

    The order is shuffled every round (seeded): a call runs slower right after one that left tens of
    MB of dirty cache lines and freshly faulted pages behind, and a fixed order would bias one variant.
    """
    times: dict[str, list[tuple]] = {name: [] for name in variants}
    for r in range(rounds + 1):
        order = list(variants.items())
        random.Random(r).shuffle(order)
        for name, fn in order:
            if device == "cuda":
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            if r:  # round 0 warms caches, FFT plans and the filter cache
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def bench_audio(device: str, rounds: int, old: bool) -> list[dict]:
    n = int(SR * SECONDS)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, n, generator=gen) * 0.1).to(device)
    t = torch.arange(n, device=device) / SR
    yaw, pitch, roll = (a * torch.sin(w * t)[None] for a, w in ((0.5, 0.3), (0.2, 0.2), (0.1, 0.1)))
    filters = binaural.foa_decoder_filters("spherical-head", SR).float().to(device)[None]
    xn, m4 = x[0].cpu().numpy(), np.asarray(foa.foa_rotation_matrix(torch.eye(3)).float().numpy())
    hn = filters[0].cpu().numpy()

    variants: dict[str, Callable[[], object]] = {}
    if device == "cpu":
        variants["numpy_copy"] = lambda: xn.copy()
        variants["numpy_matmul_4x4"] = lambda: m4 @ xn
    variants["foa_rotate_static"] = lambda: foa.rotate(x, 0.3, 0.1, 0.05)
    variants["foa_rotate_trajectory"] = lambda: foa.rotate(x, yaw, pitch, roll)
    variants["foa_rotate_yaw_trajectory"] = lambda: foa.rotate(x, yaw)
    variants["binaural_render_foa"] = lambda: binaural.render_foa(x, SR)
    variants["rotate_static+binaural"] = lambda: binaural.render_foa(foa.rotate(x, 0.3, 0.1, 0.05), SR)
    variants["rotate_trajectory+binaural"] = lambda: binaural.render_foa(foa.rotate(x, yaw, pitch, roll), SR)
    if torch.get_num_threads() > 1:  # the chunked loops on torch's thread count instead of their default 1
        variants["foa_rotate_trajectory_global_threads"] = lambda: foa.rotate(
            x, yaw, pitch, roll, threads=None
        )
        variants["binaural_render_foa_global_threads"] = lambda: binaural.render_foa(x, SR, threads=None)
    if device == "cpu":
        variants["scipy_oaconvolve"] = lambda: [
            sum(scipy.signal.oaconvolve(xn[c], hn[e, c])[:n] for c in range(4)) for e in range(2)
        ]
    if old:
        variants["foa_rotate_static_old"] = lambda: _old_static(x, 0.3, 0.1, 0.05)
        variants["foa_rotate_trajectory_old"] = lambda: _old_trajectory(x, yaw, pitch, roll)
        variants["binaural_render_foa_old"] = lambda: _old_render(x, filters)
        variants["rotate_trajectory+binaural_old"] = lambda: _old_render(
            _old_trajectory(x, yaw, pitch, roll), filters
        )

    times = _rounds(variants, rounds, device)
    rows = []
    for name, samples in times.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        row = {
            "op": name,
            "device": device,
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "rounds": len(samples),
            "seconds": wall,
            "cpu_seconds": cpu,
            "rtf": SECONDS / wall,
            "rtf_cpu": SECONDS / cpu,
        }
        floor = FLOORS.get(name.removesuffix("_old"))
        for i, clock in ((0, ""), (1, "_cpu")):
            if floor in times:
                ratios = [a[i] / b[i] for a, b in zip(samples, times[floor], strict=True)]
                row[f"x_{floor}{clock}"] = statistics.median(ratios)
            if f"{name}_old" in times:
                ratios = [b[i] / a[i] for a, b in zip(samples, times[f"{name}_old"], strict=True)]
                row[f"speedup_vs_old{clock}"] = statistics.median(ratios)
        rows.append(row)
    return rows


def bench_projection(device: str) -> dict:
    fps, video_seconds = 8, 8.0
    n_frames = int(fps * video_seconds)
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (1, n_frames, 3, 512, 1024), dtype=torch.uint8, generator=gen).to(device)
    frame_yaw = torch.linspace(-math.pi, math.pi, n_frames, device=device)[None]
    times = _rounds(
        {
            "p": lambda: projection.equirect_to_perspective(
                frames, frame_yaw, 0.2, 0.1, math.radians(90), (224, 224)
            )
        },
        3,
        device,
    )["p"]
    wall = statistics.median(s[0] for s in times)
    return {
        "op": "equirect_to_perspective_224",
        "device": device,
        "dtype": "uint8",
        "threads": torch.get_num_threads(),
        "rounds": len(times),
        "seconds": wall,
        "cpu_seconds": statistics.median(s[1] for s in times),
        "rtf": video_seconds / wall,
        "rtf_cpu": video_seconds / statistics.median(s[1] for s in times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts, one run each"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median)")
    parser.add_argument("--no-old", action="store_true", help="skip the pre-issue-19 variants")
    parser.add_argument("--no-projection", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows += bench_audio("cpu", args.rounds, not args.no_old)
    torch.set_num_threads(args.threads[0])
    if not args.no_projection:
        rows.append(bench_projection("cpu"))
    if torch.cuda.is_available() and not args.cpu_only:
        rows += bench_audio("cuda", args.rounds, False)
        if not args.no_projection:
            rows.append(bench_projection("cuda"))
    write_results(
        "dsp",
        rows,
        note=(
            "60 s of 48 kHz FOA (float32, batch 1); variants interleaved per round, medians over rounds; "
            "rtf = media seconds per wall second; cpu_seconds = process CPU time (less sensitive to other "
            "load on a shared machine); x_<floor> and speedup_vs_old are medians of per-round ratios; "
            "threads = torch intra-op threads of each run (machine.torch_threads is the first)"
        ),
        load_average_1_5_15min={"before": load_before, "after": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
