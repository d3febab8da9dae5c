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
(packets copied) with the new audio (FOA with YouTube's spatial-audio metadata). Existing outputs are
replaced, or an error with ``overwrite=False`` (the command line's default unless ``--overwrite``).
The command line (options, folder inputs, output plan) is in :mod:`spatialgen.generate_cli`; :func:`main`
checks everything there before the first video is generated.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from spatialgen.errors import SpatialgenError, debug_enabled
from spatialgen.generate_cli import (
    FORMATS,
    build_parser,
    check_outputs,
    collect_videos,
    describe_sampling,
    output_names,
    parse_args,
    resolve_sampling,
)
from spatialgen.io import mux_audio, probe_video, read_video, write_audio
from spatialgen.models.pipeline import GenerationPipeline
from spatialgen.models.windows import crossfade_concat, plan_windows
from spatialgen.spatial import binaural

__all__ = ["GenerateOptions", "build_parser", "crossfade_concat", "generate_video", "main", "plan_windows"]


@dataclass
class GenerateOptions:
    """What to write and how to sample (see ``spatialgen generate --help``)."""

    out_dir: Path
    format: str = "both"
    camera_direction: tuple[float, float] | None = None  # radians
    overlap: float | None = None  # seconds; None: 1 s, or half the model's window if shorter
    batch_size: int = 4
    seed: int = 0
    decode_size: int = 448
    mp4: bool = True
    hrir: str = "spherical-head"
    sampling: dict | None = None
    prompt: str | None = None  # text prompt for models with text conditioning (pipeline.takes_prompt)
    overwrite: bool = True  # False: an existing output is an error (the CLI's default, unless --overwrite)
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
    if options.prompt is not None and not pipeline.takes_prompt:
        raise SpatialgenError("prompt: this model has no text conditioning; leave the prompt out")
    window = pipeline.clip_seconds
    if options.overlap is not None and not 0 <= options.overlap <= window / 2:
        raise ValueError(
            f"overlap must be in [0, {window / 2:g}] s (half the model's window), got {options.overlap}"
        )
    info = probe_video(video)
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
        overlap=options.overlap,
        batch_size=options.batch_size,
        progress=options.progress,
        prompt=options.prompt,
        **(options.sampling or {}),
    )
    sr = pipeline.sample_rate
    return _write_outputs(video, audio, sr, pipeline.output_format, options)


def _write_outputs(video: Path, audio: Tensor, sr: int, kind: str, options: GenerateOptions) -> list[Path]:
    out_dir = options.out_dir
    names = output_names(video.stem, kind, options.format, options.mp4)
    if not options.overwrite:
        for name in names:
            if (out_dir / name).exists():
                raise SpatialgenError(f"{out_dir / name} exists; pass --overwrite to replace it")
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


#: seconds of overlap between windows when --overlap is not given (capped at half the model's window)
DEFAULT_OVERLAP = 1.0


def _resolve_device(name: str) -> torch.device:
    """``--device`` as a torch device that exists on this machine (one-line error otherwise)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpatialgenError(f"--device {name}: torch sees no CUDA GPU here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpatialgenError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) visible (cuda:0 ...)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpatialgenError(f"--device {name}: Apple MPS is not available here; use --device cpu or auto")
    return device


def _check_model(pipeline: object, args: argparse.Namespace) -> dict[str, Any]:
    """Checks that need the model; returns its typed sampling options."""
    if not isinstance(pipeline, GenerationPipeline):
        raise SpatialgenError(
            f"--model {args.model!r} is a bare {type(pipeline).__name__} network, not a generation "
            "pipeline (e.g. the mono pretraining stage); pick a FOA or binaural model"
        )
    if pipeline.output_format == "binaural" and args.format == "foa":
        raise SpatialgenError(
            f"--format foa: --model {args.model} generates binaural audio; use binaural or both"
        )
    if pipeline.output_format != "foa" and args.camera_direction is not None:
        raise SpatialgenError(
            f"--camera-direction: --model {args.model} generates binaural audio in the camera frame and "
            "takes no camera direction; leave it out"
        )
    if args.prompt is not None and not pipeline.takes_prompt:
        raise SpatialgenError(
            f"--prompt: --model {args.model} has no text conditioning; leave --prompt out (text-conditioned "
            "models: ViSAudio with a text stream, e.g. the visaudio-mmaudio-* zoo entries)"
        )
    half = pipeline.clip_seconds / 2
    if args.overlap is None:
        args.overlap = min(DEFAULT_OVERLAP, half)
    elif args.overlap > half:
        raise SpatialgenError(
            f"--overlap {args.overlap:g}: at most half of the model's {pipeline.clip_seconds:g} s window "
            f"({half:g} s) for --model {args.model}"
        )
    if pipeline.output_format == "foa" and args.format in ("binaural", "both"):
        try:
            binaural.resolve_hrir(args.hrir, pipeline.sample_rate)
        except SpatialgenError as err:
            raise SpatialgenError(f"--hrir {args.hrir}: {err}") from None
    return resolve_sampling(args.sample, getattr(pipeline, "sampling_options", {}), args.model)


def main(argv: Sequence[str], load_model: Callable[..., GenerationPipeline]) -> int:
    """Run ``spatialgen generate``; ``load_model(name_or_path)`` resolves ``--model``. Returns the exit code.

    Every option is checked before the model loads, and every model-dependent check (sampling options,
    overlap, output names, existing files) before the first video is generated.
    """
    debug = debug_enabled(argv)
    try:
        args = parse_args(argv)
        jobs = collect_videos(args.videos, args.out)
        device = _resolve_device(args.device)
        pipeline = load_model(args.model)
        sampling = _check_model(pipeline, args)
        if "help" in args.sample:
            print(describe_sampling(pipeline.sampling_options, args.model))
            return 0
        check_outputs(jobs, pipeline.output_format, args.format, not args.no_mp4, args.overwrite)
        pipeline = pipeline.to(device).eval()
        options = GenerateOptions(
            out_dir=args.out,
            format=args.format,
            camera_direction=args.camera_direction,
            overlap=args.overlap,
            batch_size=args.batch_size,
            seed=args.seed,
            mp4=not args.no_mp4,
            hrir=args.hrir,
            sampling=sampling,
            prompt=args.prompt,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),  # a bar per video in a terminal, not in logs
        )
    except SpatialgenError as err:
        if debug:
            raise
        print(f"spatialgen generate: error: {err}", file=sys.stderr)
        return 2
    failures = 0
    for job in tqdm(jobs, desc="videos", unit="video", disable=len(jobs) < 2):
        video = job.video
        try:
            info = probe_video(video)
            if info.truncated:
                print(
                    f"spatialgen generate: warning: {video} is truncated: its header says "
                    f"{info.stated_duration:.2f} s but its data end at {info.duration:.2f} s; using those",
                    file=sys.stderr,
                )
            if args.dry_run:
                n = len(plan_windows(info.duration, pipeline.clip_seconds, args.overlap))
                print(f"{video}: {info.duration:.2f} s, {info.width}x{info.height} -> {n} window(s); ok")
                continue
            for path in generate_video(video, pipeline, replace(options, out_dir=job.out_dir)):
                print(path)
        except (SpatialgenError, ValueError) as err:
            failures += 1
            if debug:
                traceback.print_exc()
            print(f"spatialgen generate: {video}: {err}", file=sys.stderr)
    return 1 if failures else 0
