"""Command-line layer of ``spatialgen generate``: the parser, option checks and the output plan.

This module imports nothing heavy (no torch, no PyAV, no model code), so ``--help`` and every bad option
are answered at once, before the model loads. Checks that need the loaded model (its sampling options,
its window length, which files it writes) take the pipeline as an argument and run before any generation.

Inputs: a file is used as given; a folder means every video below it, recursively, in sorted order, and
its outputs keep their path relative to that folder under ``--out`` (``in/a/x.mp4`` -> ``out/a/x.*``).
Two inputs that would write the same output are refused, and so are existing outputs unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatialgen.errors import SpatialgenError

__all__ = [
    "FORMATS",
    "VIDEO_SUFFIXES",
    "VideoJob",
    "build_parser",
    "check_outputs",
    "collect_videos",
    "output_names",
    "parse_args",
    "resolve_sampling",
]

FORMATS = ("foa", "binaural", "both")
#: file suffixes a folder input is searched for (case-insensitive)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")

EPILOG = """\
examples:
  spatialgen generate clip.mp4 --model visage-debug --out out/
  spatialgen generate videos/ --model visaudio-debug --out out/ --steps 10 --cfg-scale 3
  spatialgen generate clip.mp4 --model visaudio-debug --out out/ --prompt "a dog barking"
  spatialgen generate clip.mp4 --model visage-ytambigen --out out/ --sample guidance=dual --sample top_k=50
  spatialgen generate clip.mp4 --model visage-debug --out out/ --sample help   # the model's sampling options

A folder input means every video below it, recursively, in sorted order
(suffixes {}); its outputs keep their relative paths under --out.
Existing outputs are refused unless --overwrite is given; --debug (or SPATIALGEN_DEBUG=1) shows tracebacks.
""".format(", ".join(VIDEO_SUFFIXES))


@dataclass(frozen=True)
class VideoJob:
    """One input video and the folder (under ``--out``) its outputs go to."""

    video: Path
    out_dir: Path


def build_parser(prog: str = "spatialgen generate") -> argparse.ArgumentParser:
    """The ``spatialgen generate`` argument parser (defaults shown in ``--help``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Generate spatial audio (FOA and/or binaural) for videos.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("videos", nargs="+", type=Path, help="input video files or folders")
    p.add_argument("--model", required=True, help="zoo name, export directory or Hub repo id")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--format", default="both", choices=FORMATS, help="FOA (AmbiX), binaural, or both")
    p.add_argument("--camera-direction", help="'AZ,EL' degrees: camera direction in the FOA frame (ViSAGe)")
    p.add_argument(
        "--prompt",
        metavar="TEXT",
        help="text prompt for every window (ViSAudio models with text conditioning, e.g. visaudio-mmaudio-*)",
    )
    p.add_argument("--cfg-scale", type=float, help="shorthand for --sample cfg_scale=X (ViSAudio)")
    p.add_argument("--steps", type=int, help="shorthand for --sample steps=N (ViSAudio)")
    p.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a sampling option of the model (repeatable); '--sample help' lists them",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="window overlap in seconds for long videos, at most half the model's window "
        "(default: 1 s, or half the window when that is shorter)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="windows generated together")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps")
    p.add_argument("--no-mp4", action="store_true", help="write only WAV files")
    p.add_argument("--hrir", default="spherical-head", help="HRIR set or SOFA path for FOA -> binaural")
    p.add_argument("--dry-run", action="store_true", help="check inputs and the model, generate nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help (unless there is none to show), the epilog's examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse and check ``spatialgen generate`` options (no file is read, no model loaded).

    Argparse errors exit with its usage line; a bad value raises :class:`SpatialgenError` naming it.
    """
    args = build_parser().parse_args(list(argv))
    if args.batch_size < 1:
        raise SpatialgenError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.overlap is not None and not (math.isfinite(args.overlap) and args.overlap >= 0):
        raise SpatialgenError(f"--overlap must be a number of seconds >= 0, got {args.overlap}")
    if args.steps is not None and args.steps < 1:
        raise SpatialgenError(f"--steps must be at least 1, got {args.steps}")
    if args.cfg_scale is not None and not math.isfinite(args.cfg_scale):
        raise SpatialgenError(f"--cfg-scale must be a finite number, got {args.cfg_scale}")
    if not _DEVICE.fullmatch(args.device):
        raise SpatialgenError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")
    if args.out.exists() and not args.out.is_dir():
        raise SpatialgenError(f"--out {args.out} is a file; --out names a folder (new or existing)")
    if args.prompt is not None and ("\n" in args.prompt or "\r" in args.prompt):
        raise SpatialgenError("--prompt must be one line of text (no line breaks)")
    args.camera_direction = _parse_direction(args.camera_direction)
    args.sample = _raw_sampling(args.sample, args.cfg_scale, args.steps)
    return args


def _parse_direction(text: str | None) -> tuple[float, float] | None:
    """``'AZ,EL'`` degrees -> radians."""
    if text is None:
        return None
    try:
        az, el = (float(v) for v in text.split(","))
    except ValueError:
        raise SpatialgenError(f"--camera-direction must be 'AZ,EL' in degrees, got {text!r}") from None
    if not (math.isfinite(az) and math.isfinite(el)):
        raise SpatialgenError(f"--camera-direction must be finite degrees, got {text!r}")
    return math.radians(az), math.radians(el)


def _raw_sampling(items: Iterable[str], cfg_scale: float | None, steps: int | None) -> dict[str, str]:
    """``--sample NAME=VALUE`` (plus the --cfg-scale/--steps shorthands) as ``{name: text}``."""
    raw: dict[str, str] = {}
    for item in items:
        if item.strip() == "help":
            raw["help"] = ""
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpatialgenError(f"--sample takes NAME=VALUE (e.g. --sample top_k=50), got {item!r}")
        if name in raw:
            raise SpatialgenError(f"--sample {name} is given twice")
        raw[name] = value
    for name, flag, value in (("cfg_scale", "--cfg-scale", cfg_scale), ("steps", "--steps", steps)):
        if value is not None:
            if name in raw:
                raise SpatialgenError(f"{flag} and --sample {name}=... both set {name}; give it once")
            raw[name] = repr(value)
    return raw


def describe_sampling(options: Mapping[str, Any], model: str) -> str:
    """The listing ``--sample help`` prints."""
    if not options:
        return f"--model {model} takes no sampling options"
    lines = [f"sampling options of --model {model} (--sample NAME=VALUE):"]
    lines += [f"  {name:<26} {opt.help} ({opt.describe()})" for name, opt in options.items()]
    return "\n".join(lines)


def resolve_sampling(raw: Mapping[str, str], options: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Typed sampling keyword arguments for the model, checked against its declared ``options``.

    ``options`` maps names to :class:`~spatialgen.models.sampling.SamplingOption` (the pipeline's
    ``sampling_options``); a name the model does not take raises one line naming the ones it takes.
    """
    out: dict[str, Any] = {}
    for name, text in raw.items():
        if name == "help":
            continue
        if name not in options:
            flag = {"cfg_scale": "--cfg-scale", "steps": "--steps"}.get(name, f"--sample {name}")
            takes = ", ".join(options) if options else "none"
            close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpatialgenError(
                f"{flag}: --model {model} has no sampling option {name!r}{hint}; it takes: {takes} "
                "(set them with --sample NAME=VALUE)"
            )
        out[name] = options[name].parse(name, text)
    return out


def collect_videos(inputs: Sequence[Path], out: Path) -> list[VideoJob]:
    """The input videos and their output folders (module docstring); refuses missing or empty inputs."""
    jobs: list[VideoJob] = []
    out_resolved = out.resolve()
    for item in inputs:
        if item.is_dir():
            found = sorted(
                p
                for p in item.rglob("*")
                if p.is_file()
                and p.suffix.lower() in VIDEO_SUFFIXES
                and not p.resolve().is_relative_to(out_resolved)  # never re-read our own outputs
            )
            if not found:
                raise SpatialgenError(
                    f"{item}: folder holds no video ({', '.join(VIDEO_SUFFIXES)}) below it; pass video files "
                    "or another folder"
                )
            jobs += [VideoJob(p, out / p.relative_to(item).parent) for p in found]
        elif item.exists():
            jobs.append(VideoJob(item, out))
        else:
            raise SpatialgenError(f"{item}: file not found; check the input path")
    return jobs


def output_names(stem: str, model_format: str, fmt: str, mp4: bool) -> list[str]:
    """File names written for a video ``stem`` by a ``model_format`` ("foa"/"binaural") model."""
    suffixes = []
    if model_format == "foa" and fmt in ("foa", "both"):
        suffixes.append("foa")
    if model_format == "binaural" or fmt in ("binaural", "both"):
        suffixes.append("binaural")
    exts = (".wav", ".mp4") if mp4 else (".wav",)
    return [f"{stem}.{s}{ext}" for s in suffixes for ext in exts]


def check_outputs(jobs: Sequence[VideoJob], model_format: str, fmt: str, mp4: bool, overwrite: bool) -> None:
    """Refuse, before any generation, outputs that two inputs share or that exist without --overwrite."""
    owner: dict[Path, Path] = {}
    for job in jobs:
        for name in output_names(job.video.stem, model_format, fmt, mp4):
            path = job.out_dir / name
            key = path.resolve()
            if key in owner:
                same = owner[key].resolve() == job.video.resolve()
                raise SpatialgenError(
                    f"{job.video}: given twice; pass each video once"
                    if same
                    else f"{owner[key]} and {job.video} would both write {path}; rename one or pass their "
                    "common parent folder as the input (outputs then keep their relative paths)"
                )
            owner[key] = job.video
            if path.exists() and not overwrite:
                raise SpatialgenError(
                    f"{path} exists; pass --overwrite to replace it or choose another --out"
                )
