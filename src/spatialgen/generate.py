"""``spatialgen generate``: spatial audio for video files with any :class:`GenerationPipeline`.

Videos of any length are handled in windows of the model's ``clip_seconds``:

- a video no longer than one window is generated in one pass; its frames are padded by repeating the
  last frame up to the window length, and the audio is trimmed back to the video's duration;
- a longer video is cut into windows starting every ``clip_seconds − overlap`` seconds, the last one
  aligned to the end of the video, and consecutive windows are joined with an equal-power (sine/cosine)
  crossfade over their overlap, which keeps the level constant for independently generated windows.

The video is decoded once per encoder frame rate, downscaled so the shorter side is at most
``decode_size`` pixels, and handed whole to :meth:`GenerationPipeline.generate_long`, which batches the
windows (``batch_size`` per call, each seeded from ``(seed, window index)``, so the batch size never
changes the audio) and shows a windows done/total bar with ETA when ``progress`` is on. Outputs per
video ``STEM``: ``STEM.foa.wav``
(AmbiX) and/or ``STEM.binaural.wav`` (L/R), and for each an .mp4 that carries the original picture
(packets copied) with the new audio (FOA with YouTube's spatial-audio metadata).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from spatialgen.errors import SpatialgenError
from spatialgen.io import mux_audio, probe_video, read_video, write_audio
from spatialgen.models.pipeline import GenerationPipeline
from spatialgen.models.windows import crossfade_concat, plan_windows
from spatialgen.spatial import binaural

__all__ = ["GenerateOptions", "crossfade_concat", "generate_video", "main", "plan_windows"]

FORMATS = ("foa", "binaural", "both")


@dataclass
class GenerateOptions:
    """What to write and how to sample (see ``spatialgen generate --help``)."""

    out_dir: Path
    format: str = "both"
    camera_direction: tuple[float, float] | None = None  # radians
    overlap: float = 1.0
    batch_size: int = 4
    seed: int = 0
    decode_size: int = 448
    mp4: bool = True
    hrir: str = "spherical-head"
    sampling: dict | None = None
    progress: bool = False  # a windows done/total bar with ETA per video

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)


def _decode_size(width: int, height: int, limit: int) -> tuple[int, int] | None:
    """``(H, W)`` that downscales the shorter side to ``limit`` (even sizes), or None to keep it."""
    scale = limit / min(width, height)
    if scale >= 1:
        return None
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def _read_whole(video: Path, fps: float, size: tuple[int, int] | None, duration: float) -> Tensor:
    """All frames ``[T, 3, H, W]`` at ``fps``; a video shorter than one frame at that rate gives its first
    frame (the windowing repeats it over the window)."""
    if duration * fps < 1:
        return read_video(video, size=size)[0][:1]
    return read_video(video, fps=fps, size=size)[0]


def generate_video(video: Path | str, pipeline: GenerationPipeline, options: GenerateOptions) -> list[Path]:
    """Generate spatial audio for one video and write the requested files; returns their paths."""
    video = Path(video)
    if options.format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {options.format!r}")
    if pipeline.output_format == "binaural" and options.format == "foa":
        raise SpatialgenError("this model generates binaural audio; use --format binaural (or both)")
    info = probe_video(video)
    window = pipeline.clip_seconds
    size = _decode_size(info.width, info.height, options.decode_size)
    direction = None
    if options.camera_direction is not None:
        direction = torch.tensor(options.camera_direction, dtype=torch.float32)
    frames = {
        name: _read_whole(video, fps, size, info.duration) for name, fps in pipeline.frame_rates.items()
    }
    audio = pipeline.generate_long(
        frames,
        duration=info.duration,
        camera_direction=direction,
        seed=options.seed,
        overlap=min(options.overlap, window / 2),
        batch_size=options.batch_size,
        progress=options.progress,
        **(options.sampling or {}),
    )
    sr = pipeline.sample_rate
    return _write_outputs(video, audio, sr, pipeline.output_format, options)


def _write_outputs(video: Path, audio: Tensor, sr: int, kind: str, options: GenerateOptions) -> list[Path]:
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tracks: list[tuple[str, Tensor, str]] = []
    if kind == "foa":
        if options.format in ("foa", "both"):
            tracks.append(("foa", audio, "foa"))
        if options.format in ("binaural", "both"):
            tracks.append(("binaural", binaural.render_foa(audio[None], sr, hrir=options.hrir)[0], "stereo"))
    else:
        tracks.append(("binaural", audio, "stereo"))
    peak = max(float(t.abs().max()) for _, t, _ in tracks)
    gain = 0.99 / peak if peak > 0.99 else 1.0  # one gain for all tracks keeps their relative level
    for suffix, track, layout in tracks:
        track = track * gain
        written.append(write_audio(out_dir / f"{video.stem}.{suffix}.wav", track, sr))
        if options.mp4:
            written.append(
                mux_audio(video, track, sr, out_dir / f"{video.stem}.{suffix}.mp4", layout=layout, fit="pad")
            )
    return written


def _parse_direction(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        az, el = (float(v) for v in text.split(","))
    except ValueError:
        raise SpatialgenError(f"--camera-direction must be 'AZ,EL' in degrees, got {text!r}") from None
    return math.radians(az), math.radians(el)


def build_parser(prog: str = "spatialgen generate") -> argparse.ArgumentParser:
    """The ``spatialgen generate`` argument parser."""
    p = argparse.ArgumentParser(
        prog=prog, description="Generate spatial audio (FOA and/or binaural) for videos."
    )
    p.add_argument("videos", nargs="+", type=Path, help="input video files")
    p.add_argument("--model", required=True, help="zoo name, export directory or Hub repo id")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--format", default="both", choices=FORMATS, help="FOA (AmbiX), binaural, or both")
    p.add_argument("--camera-direction", help="'AZ,EL' degrees: camera direction in the FOA frame (ViSAGe)")
    p.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale")
    p.add_argument("--steps", type=int, help="sampling steps (flow-matching models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overlap", type=float, default=1.0, help="window overlap in seconds for long videos")
    p.add_argument("--batch-size", type=int, default=4, help="windows generated together")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--no-mp4", action="store_true", help="write only WAV files")
    p.add_argument("--hrir", default="spherical-head", help="HRIR set or SOFA path for FOA -> binaural")
    p.add_argument("--dry-run", action="store_true", help="check inputs and the model, generate nothing")
    return p


def main(argv: Sequence[str], load_model: Callable[..., GenerationPipeline]) -> int:
    """Run ``spatialgen generate``; ``load_model(name_or_path)`` resolves ``--model``. Returns the exit code."""
    args = build_parser().parse_args(list(argv))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        pipeline = load_model(args.model)
        if not isinstance(pipeline, GenerationPipeline):
            raise SpatialgenError(
                f"--model {args.model!r} is a bare {type(pipeline).__name__} network, not a generation "
                "pipeline (e.g. the mono pretraining stage); pick a FOA or binaural model"
            )
        pipeline = pipeline.to(device).eval()
        sampling = {}
        if args.cfg_scale is not None:
            sampling["cfg_scale"] = args.cfg_scale
        if args.steps is not None:
            sampling["steps"] = args.steps
        options = GenerateOptions(
            out_dir=args.out,
            format=args.format,
            camera_direction=_parse_direction(args.camera_direction),
            overlap=args.overlap,
            batch_size=args.batch_size,
            seed=args.seed,
            mp4=not args.no_mp4,
            hrir=args.hrir,
            sampling=sampling,
        )
    except SpatialgenError as err:
        print(f"spatialgen generate: error: {err}", file=sys.stderr)
        return 2
    failures = 0
    for video in tqdm(args.videos, desc="videos", unit="video", disable=len(args.videos) < 2):
        try:
            if args.dry_run:
                info = probe_video(video)
                n = len(
                    plan_windows(
                        info.duration, pipeline.clip_seconds, min(args.overlap, pipeline.clip_seconds / 2)
                    )
                )
                print(f"{video}: {info.duration:.2f} s, {info.width}x{info.height} -> {n} window(s); ok")
                continue
            for path in generate_video(video, pipeline, options):
                print(path)
        except (SpatialgenError, ValueError) as err:
            failures += 1
            print(f"spatialgen generate: {video}: {err}", file=sys.stderr)
    return 1 if failures else 0
