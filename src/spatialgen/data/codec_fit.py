"""Fit the ``stft_vq`` codec on a dataset (``spatialgen data fit-codec``).

The codec itself (:mod:`spatialgen.codecs.stft_vq`) knows nothing about datasets; this module reads a
dataset's manifest and camera-frame FOA (``foa.wav``) and fits the codebooks in seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialgen.codecs.stft_vq import STFTVQCodec
from spatialgen.data.synthetic.metadata import read_manifest
from spatialgen.errors import SpatialgenError
from spatialgen.io import read_audio

__all__ = ["fit_stft_vq", "main"]


def fit_stft_vq(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_clips: int | None = None,
    split: str | None = "train",
    codebook_size: int = 1024,
    num_codebooks: int = 4,
    seed: int = 0,
    iters: int = 15,
    max_frames: int | None = 40000,
    **codec_kwargs: Any,
) -> STFTVQCodec:
    """Fit an ``stft_vq`` codec on a synthetic dataset's camera-frame FOA (``foa.wav``) and save it.

    Args:
        root: dataset root with ``manifest.json`` (``spatialgen data synth``).
        out_dir: where ``model.safetensors`` + ``config.json`` go.
        n_clips: use the first ``n_clips`` clips of the split (None: all).
        split: manifest split to fit on (``None``: every clip).
        codebook_size, num_codebooks, seed, iters, max_frames: see :class:`STFTVQCodec` and ``fit``.
        codec_kwargs: other constructor kwargs (``sample_rate``, ``n_fft``, ``hop_length``, ``gain_range_db``).
    """
    manifest = read_manifest(root)
    clips = manifest.clips if split is None else manifest.split(split)
    clips = clips if n_clips is None else clips[: int(n_clips)]
    if not clips:
        raise ValueError(f"{root}: no clips in split {split!r} to fit on")
    codec = STFTVQCodec(codebook_size=codebook_size, num_codebooks=num_codebooks, **codec_kwargs)
    audio = [
        read_audio(Path(root) / c.path / "foa.wav", channels=4, sample_rate=codec.sample_rate, resample=True)[
            0
        ]
        for c in clips
    ]
    codec.fit(audio, iters=iters, max_frames=max_frames, seed=seed)
    codec.save_pretrained(out_dir)
    codec.name = "stft_vq"
    return codec


def main(argv: Sequence[str] | None = None) -> int:
    """``spatialgen data fit-codec --data ROOT --out DIR [...]``."""
    p = argparse.ArgumentParser(
        prog="spatialgen data fit-codec",
        description="Fit the k-means codebooks of the stft_vq codec on a dataset's camera-frame FOA.",
    )
    p.add_argument("--data", required=True, help="dataset root (with manifest.json)")
    p.add_argument("--out", required=True, help="output folder (model.safetensors + config.json)")
    p.add_argument("--clips", type=int, default=None, help="use at most this many clips")
    p.add_argument("--split", default="train", help="manifest split, or 'all' (default: train)")
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--num-codebooks", type=int, default=4)
    p.add_argument("--shape-size", type=int, default=None, help="entries per shape codebook (default: V)")
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--max-frames", type=int, default=40000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        codec = fit_stft_vq(
            args.data,
            args.out,
            n_clips=args.clips,
            split=None if args.split == "all" else args.split,
            codebook_size=args.codebook_size,
            num_codebooks=args.num_codebooks,
            seed=args.seed,
            iters=args.iters,
            max_frames=args.max_frames,
            shape_size=args.shape_size,
        )
    except (SpatialgenError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fitted {codec.extra_repr()} in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0
