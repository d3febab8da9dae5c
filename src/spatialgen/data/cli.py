"""``spatialgen data biaudio`` and ``spatialgen data features`` (argv in, exit code out)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from spatialgen.errors import SpatialgenError, run_cli

__all__ = ["main_biaudio", "main_features"]


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 112x112, got {text!r}") from None
    return h, w


def _run(fn: Callable[[], None], prog: str) -> int:
    return run_cli(prog, fn, catch=(SpatialgenError, FileExistsError, ValueError), first_line=True)


def main_biaudio(argv: Sequence[str] | None = None) -> int:
    """``spatialgen data biaudio --src DIR --out DIR``: perspective clips + FOA + binaural from 360° inputs."""
    prog = "spatialgen data biaudio"
    p = argparse.ArgumentParser(
        prog=prog,
        description="Render BiAudio-style clips (random camera trajectories) from 360° videos with FOA.",
    )
    p.add_argument(
        "--src",
        required=True,
        help="360° inputs: a common-layout dataset (e.g. `data synth` output) or a folder of videos",
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--clips-per-video", type=int, default=1, help="clips cut from each input (1)")
    p.add_argument("--clip-seconds", type=float, default=None, help="clip length (default: whole input)")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the input's)")
    p.add_argument("--sample-rate", type=int, default=None, help="output audio rate (default: the input's)")
    p.add_argument("--size", type=_size, default=(112, 112), help="perspective view HEIGHTxWIDTH (112x112)")
    p.add_argument("--hfov", type=float, default=90.0, help="horizontal field of view in degrees (90)")
    p.add_argument("--hrir", default="spherical-head", help="HRIR set name or SOFA path")
    p.add_argument("--seed", type=int, default=0, help="trajectory seed (0)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (1)")
    p.add_argument("--no-360", action="store_true", help="do not copy the 360° video/world FOA segments")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))

    def run() -> None:
        from spatialgen.data.biaudio import BiAudioConfig, build_biaudio

        config = BiAudioConfig(
            clips_per_video=args.clips_per_video,
            clip_seconds=args.clip_seconds,
            fps=args.fps,
            sample_rate=args.sample_rate,
            view_size=args.size,
            hfov_deg=args.hfov,
            hrir=args.hrir,
            keep_360=not args.no_360,
            seed=args.seed,
        )
        manifest = build_biaudio(
            args.src,
            args.out,
            config,
            workers=args.workers,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
        failed = len(manifest.config.get("failures", {}))
        print(
            f"wrote {len(manifest.clips)} clips to {args.out}"
            + (f" ({failed} inputs skipped)" if failed else "")
        )

    return _run(run, prog)


def _weights(specs: list[str], parts: list[str | None]) -> dict[str, str]:
    """``["NAME=PATH", ...]`` -> ``{NAME: PATH}``; NAME must be one of ``parts``."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(
                f"--weights {spec!r}: use NAME=PATH, e.g. tiny=runs/visual_direction/tiny.safetensors"
            )
        if name not in parts:
            known = ", ".join(p for p in parts if p) or "none"
            raise ValueError(f"--weights {spec!r}: {name!r} is not among --encoders/--codec ({known})")
        out[name] = path
    return out


def main_features(argv: Sequence[str] | None = None) -> int:
    """``spatialgen data features --dataset NAME --root DIR --out DIR --encoders a,b --codec C``."""
    prog = "spatialgen data features"
    p = argparse.ArgumentParser(
        prog=prog, description="Precompute visual features and audio codes/latents into a resumable cache."
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="registered dataset name (synthetic, biaudio, ytambigen, vggsound, layout)",
    )
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--out", required=True, help="cache folder (one subfolder per split)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits (train,val,test)")
    p.add_argument(
        "--encoders", default="", help="comma-separated encoder names, e.g. clip_vit_b32,synchformer"
    )
    p.add_argument("--codec", default=None, help="audio codec name, e.g. dac_44khz")
    p.add_argument("--format", choices=("foa", "binaural", "mono"), default="foa", help="audio format (foa)")
    p.add_argument("--foa-frame", choices=("camera", "world"), default="camera", help="FOA frame (camera)")
    p.add_argument("--clip-seconds", type=float, default=None, help="crop length (default: whole clips)")
    p.add_argument("--patch-tokens", action="store_true", help="also store patch tokens")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="seeded random weights instead of published ones (tests)",
    )
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="weights file for one of the encoders or the codec, e.g. "
        "tiny=runs/visual_direction/tiny.safetensors (repeatable)",
    )
    p.add_argument("--device", default="cpu", help="device for the models (cpu)")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes (0)")
    p.add_argument("--shard-size", type=int, default=1000, help="clips per shard folder (1000)")
    p.add_argument("--retry-failed", action="store_true", help="retry clips that failed in an earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))

    def run() -> None:
        from pathlib import Path

        from spatialgen.codecs import create_codec
        from spatialgen.data.clips import ClipOptions
        from spatialgen.data.features import Featurizer, build_feature_cache
        from spatialgen.data.registry import create_dataset
        from spatialgen.encoders import create_encoder

        encoders: list = [e for e in args.encoders.split(",") if e]
        weights = _weights(args.weights, [*encoders, args.codec])
        # parts with a weights file are built here; the others by the featurizer (published / seeded random)
        encoders = [create_encoder(e, pretrained=weights[e]) if e in weights else e for e in encoders]
        codec = (
            create_codec(args.codec, pretrained=weights[args.codec]) if args.codec in weights else args.codec
        )
        featurizer = Featurizer(
            encoders,
            codec,
            pretrained=not args.random_weights,
            patch_tokens=args.patch_tokens,
            device=args.device,
        )
        options = ClipOptions(clip_seconds=args.clip_seconds, format=args.format, foa_frame=args.foa_frame)
        for split in (s for s in args.splits.split(",") if s):
            dataset = create_dataset(args.dataset, args.root, split, options)
            counts = build_feature_cache(
                dataset,
                Path(args.out) / split,
                featurizer,
                shard_size=args.shard_size,
                workers=args.workers,
                retry_failed=args.retry_failed,
                progress=not args.quiet,
            )
            print(
                f"{split}: {counts['done']} cached, {counts['skipped']} already done, {counts['failed']} failed"
            )

    return _run(run, prog)
