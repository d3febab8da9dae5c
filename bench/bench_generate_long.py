"""Long videos end to end: ``spatialgen generate`` on a 5-minute video with the zoo's debug models.

Workload: a synthetic 5-minute video (160x120, 8 fps, a bright square drifting across a noisy
background) written once to a temporary folder; for each debug model (``visage-debug``,
``visaudio-debug``: 1 s windows, overlap 0.5 s, batch 4) :func:`spatialgen.generate.generate_video`
writes the WAV (no mp4), timed end to end (decoding, encoding, generation, crossfade, writing).

Variants in one run, same machine and threads:

- ``after``: the current path: the video decoded once per encoder frame rate, windows batched through
  ``GenerationPipeline.generate_long`` (per-window seeds);
- ``before``: the former loop of ``generate_video``, re-implemented here for the comparison: every
  window decoded on its own (``read_video`` with ``start``/``duration``: open, seek, decode), the same
  batches and generation. Timed on the first ``--before-seconds`` of the video (the former path is
  linear in the number of windows) and reported per minute of video.

The result is ``seconds per minute of video`` (median of ``--repeats`` runs), wall and CPU time of
the process (on a shared machine the wall time also counts the other jobs; the CPU time does not), in
``bench/results/generate_long.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import write_results

from spatialgen.generate import GenerateOptions, _decode_size, generate_video
from spatialgen.io import probe_video, read_video, write_video
from spatialgen.models.windows import crossfade_concat, plan_windows
from zoo import load_pretrained

FPS, SIZE = 8.0, (120, 160)


def make_video(path: Path, seconds: float) -> Path:
    """A square drifting left to right over noise (written in one-minute pieces of frames)."""
    g = torch.Generator().manual_seed(0)
    n = round(seconds * FPS)
    frames = torch.randint(0, 60, (n, 3, *SIZE), generator=g, dtype=torch.uint8)
    for t in range(n):
        x = int((t / max(1, n - 1)) * (SIZE[1] - 24))
        frames[t, :, 48:72, x : x + 24] = 220
    return write_video(path, frames, FPS)


def before(video: Path, pipeline, options: GenerateOptions) -> torch.Tensor:
    """The former generate_video loop: windows decoded one by one, one seed per batch."""
    info = probe_video(video)
    sr, window = pipeline.sample_rate, pipeline.clip_seconds
    starts = plan_windows(info.duration, window, min(options.overlap, window / 2))
    size = _decode_size(info.width, info.height, options.decode_size)
    chunks = []
    with torch.inference_mode():
        for b in range(0, len(starts), options.batch_size):
            per_window = []
            for s in starts[b : b + options.batch_size]:
                frames = {}
                for name, fps in pipeline.frame_rates.items():
                    clip, _ = read_video(video, fps=fps, size=size, start=s, duration=window)
                    need = max(1, round(window * fps))
                    if clip.shape[0] < need:
                        clip = torch.cat([clip, clip[-1:].expand(need - clip.shape[0], *clip.shape[1:])])
                    frames[name] = clip[:need]
                per_window.append(frames)
            batch = {n: torch.stack([w[n] for w in per_window]) for n in per_window[0]}
            audio = pipeline.generate(batch, seed=options.seed + b, **(options.sampling or {}))
            chunks.extend(a.float().cpu() for a in audio)
    return crossfade_concat(chunks, [round(s * sr) for s in starts], max(1, round(info.duration * sr)))


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (the CPU time is what a shared,
    oversubscribed machine still measures faithfully; with one thread it is the compute)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="length of the long video")
    p.add_argument("--before-seconds", type=float, default=30.0, help="video length timed on the former path")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--models", nargs="+", default=["visage-debug", "visaudio-debug"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        long = make_video(tmp / "long.mp4", args.minutes * 60)
        short = make_video(tmp / "short.mp4", args.before_seconds)
        for name in args.models:
            pipeline = load_pretrained(name)
            sampling = {"steps": 10} if pipeline.kind == "visaudio" else {}
            fmt = "foa" if pipeline.output_format == "foa" else "binaural"
            options = GenerateOptions(
                out_dir=tmp / "out", format=fmt, overlap=1.0, batch_size=4, mp4=False, sampling=sampling
            )
            windows = len(plan_windows(args.minutes * 60, pipeline.clip_seconds, pipeline.clip_seconds / 2))
            after_s, after_cpu = timed(lambda: generate_video(long, pipeline, options), args.repeats)  # noqa: B023
            before_s, before_cpu = timed(lambda: before(short, pipeline, options), args.repeats)  # noqa: B023
            before_min = args.before_seconds / 60
            rows.append(
                {
                    "model": name,
                    "video_minutes": args.minutes,
                    "windows": windows,
                    "after_wall_s": round(after_s, 2),
                    "after_wall_s_per_video_minute": round(after_s / args.minutes, 2),
                    "after_cpu_s_per_video_minute": round(after_cpu / args.minutes, 2),
                    "before_timed_on_s": args.before_seconds,
                    "before_wall_s_per_video_minute": round(before_s / before_min, 2),
                    "before_cpu_s_per_video_minute": round(before_cpu / before_min, 2),
                    "cpu_speedup": round((before_cpu / before_min) / (after_cpu / args.minutes), 2),
                }
            )
    write_results(
        "generate_long",
        rows,
        threads=args.threads,
        repeats=args.repeats,
        video={"fps": FPS, "size_hw": list(SIZE), "overlap_s": 0.5, "batch_size": 4},
    )


if __name__ == "__main__":
    main()
