"""``spatialgen data synth``: write a synthetic 360° dataset (see :func:`generate_dataset`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from spatialgen.errors import SpatialgenError, run_cli

__all__ = ["build_parser", "main"]


def _bounded(cast: Callable[[str], float], what: str, *, strict: bool = True) -> Callable[[str], float]:
    """An argparse ``type=``: ``cast(text)`` that must be > 0 (``strict``) or >= 0, else "expected {what}"."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value > 0 if strict else value >= 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _bounded(int, "a positive integer")
_non_negative_int = _bounded(int, "a non-negative integer", strict=False)
_positive_float = _bounded(float, "a positive number")


def build_parser(prog: str = "spatialgen data synth") -> argparse.ArgumentParser:
    """The argument parser of ``spatialgen data synth``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write synthetic 360° clips (equirect video, world/camera FOA, perspective video, "
        "binaural, per-frame ground truth) and a manifest with train/val/test splits.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-clips", type=_positive_int, required=True, help="number of clips")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--duration", type=_positive_float, default=5.0, help="clip length in seconds (5)")
    parser.add_argument("--sample-rate", type=_positive_int, default=16000, help="audio rate in Hz (16000)")
    parser.add_argument("--fps", type=_positive_float, default=8.0, help="video frame rate (8)")
    parser.add_argument(
        "--camera",
        choices=("trajectory", "fixed"),
        default="trajectory",
        help="random piecewise-linear yaw/pitch/roll (BiAudio-style) or one fixed direction (YT-Ambigen-style)",
    )
    parser.add_argument(
        "--max-sources", type=_positive_int, default=3, help="visible sources per clip, 1..N (3)"
    )
    parser.add_argument("--no-distractors", action="store_true", help="no off-screen distractor sounds")
    parser.add_argument("--reverb", action="store_true", help="add early reflections and a diffuse tail")
    parser.add_argument(
        "--hrir", default="spherical-head", help="HRIR set name or SOFA path for binaural.wav"
    )
    parser.add_argument("--workers", type=_positive_int, default=1, help="parallel processes (1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spatialgen data synth``; returns the exit code (2 with a one-line message on bad input)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from spatialgen.data.synthetic.generate import generate_dataset

    def run() -> None:
        manifest = generate_dataset(
            args.out,
            args.n_clips,
            args.seed,
            duration=args.duration,
            sample_rate=args.sample_rate,
            fps=args.fps,
            camera=args.camera,
            max_sources=args.max_sources,
            distractors=not args.no_distractors,
            reverb=args.reverb,
            hrir=args.hrir,
            workers=args.workers,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
        counts = {name: len(manifest.split(name)) for name in ("train", "val", "test")}
        print(
            f"wrote {len(manifest.clips)} clips to {args.out} "
            f"(train {counts['train']}, val {counts['val']}, test {counts['test']})"
        )

    errors = (SpatialgenError, ValueError, FileExistsError)
    return run_cli("spatialgen data synth", run, catch=errors, first_line=True)


if __name__ == "__main__":
    raise SystemExit(main())
