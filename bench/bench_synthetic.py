"""Benchmark the synthetic 360° scene generator: clips/s for 5-s clips with 1 and 2 worker processes.

    .venv/bin/python bench/bench_synthetic.py [--n-clips 12] [--workers 1 2] [--out bench/results/synthetic.json]

Each run writes a fresh dataset (default settings: 16 kHz, 8 fps, 256×512 equirect, 112×112 view,
distractors on) into a temporary folder and times ``generate_dataset`` end to end, including worker
start-up and the manifest. The JSON also projects the time for 200 clips and a per-stage profile of
one clip (scene sampling, audio, video drawing, perspective rendering, file writing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spatialgen.data.synthetic import SynthConfig, generate_dataset, sample_scene
from spatialgen.data.synthetic.generate import write_clip
from spatialgen.data.synthetic.render import draw_equirect, render_audio, render_clip


def _stage_profile(config: SynthConfig, repeats: int = 3) -> dict[str, float]:
    """Mean seconds per clip of each stage (single thread, after one warm-up clip)."""
    torch.set_num_threads(1)
    stages: dict[str, list[float]] = {
        "sample_scene": [],
        "audio": [],
        "equirect_draw": [],
        "render_clip": [],
        "write": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            scene = sample_scene(config, 0, i)
            t1 = time.perf_counter()
            render_audio(scene, config)
            t2 = time.perf_counter()
            times = (np.arange(config.n_frames) + 0.5) / config.fps
            draw_equirect(scene, config, times, [np.ones(config.n_frames)] * len(scene.sources))
            t3 = time.perf_counter()
            clip = render_clip(scene, config)
            t4 = time.perf_counter()
            write_clip(Path(tmp) / f"c{i}", clip)
            t5 = time.perf_counter()
            if i == 0:
                continue  # warm-up: HRIR decoder design and imports
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                stages[key].append(value)
    return {k: round(float(np.mean(v)), 4) for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=12)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    args = parser.parse_args()

    runs = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate_dataset(tmp, args.n_clips, 0, duration=args.duration, workers=workers, progress=False)
            elapsed = time.perf_counter() - t0
        rate = args.n_clips / elapsed
        runs.append(
            {
                "workers": workers,
                "n_clips": args.n_clips,
                "seconds": round(elapsed, 3),
                "clips_per_s": round(rate, 3),
                "audio_seconds_per_s": round(rate * args.duration, 2),
                "projected_200_clips_s": round(200 / rate, 1),
            }
        )
        print(
            f"workers={workers}: {rate:.2f} clips/s, 200 clips of {args.duration:g} s in ~{200 / rate:.0f} s"
        )

    config = SynthConfig(duration=args.duration)
    result = {
        "benchmark": "synthetic generator (spatialgen data synth)",
        "clip": config.to_dict(),
        "runs": runs,
        "stage_seconds_per_clip": _stage_profile(config),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "note": "shared machine: other jobs may run concurrently",
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["stage_seconds_per_clip"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
