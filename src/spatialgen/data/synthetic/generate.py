"""Generate a synthetic dataset on disk: clips in parallel, then the manifest with seeded splits.

Clip ``i`` depends only on ``(seed, i)`` and the settings, never on ``n_clips``, ``workers`` or the
caller's torch thread count: each clip is drawn from its own random generator, rendered with torch
intra-op threads set to 1 (in every process), and its videos are encoded by one x264 thread without
macroblock-tree rate control (see :func:`spatialgen.io.write_video`), so every file is byte-identical
for any worker count with one FFmpeg/x264 build.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from spatialgen.data.synthetic.metadata import (
    MANIFEST_JSON,
    Manifest,
    ManifestEntry,
    assign_splits,
    write_manifest,
    write_meta,
)
from spatialgen.data.synthetic.render import RenderedClip, clip_id, render_clip
from spatialgen.data.synthetic.scene import SynthConfig, sample_scene
from spatialgen.io import write_audio, write_video
from spatialgen.spatial import binaural

__all__ = ["generate_clip", "generate_dataset", "write_clip"]


def write_clip(clip_dir: str | os.PathLike[str], clip: RenderedClip) -> Path:
    """Write every file of a rendered clip into ``clip_dir`` (created if needed); returns the folder."""
    folder = Path(clip_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta = clip.meta
    sr, fps = meta.sample_rate, meta.fps
    write_audio(meta.path(folder, "foa_world"), clip.foa_world, sr)
    write_audio(meta.path(folder, "foa"), clip.foa, sr)
    write_audio(meta.path(folder, "binaural"), clip.binaural, sr)
    # One encoder thread: x264's frame threads change the bitstream with the machine's CPU count.
    write_video(meta.path(folder, "equirect"), clip.equirect, fps, threads=1)
    write_video(meta.path(folder, "video"), clip.video, fps, threads=1)
    write_meta(folder, meta)  # last: a clip folder with meta.json is complete
    return folder


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Torch intra-op threads = 1 inside the block (determinism across processes; no oversubscription)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def generate_clip(
    out_dir: str | os.PathLike[str], config: SynthConfig, seed: int, index: int
) -> ManifestEntry:
    """Sample, render and write clip ``index`` under ``out_dir``; returns its manifest entry (split unset)."""
    with _single_thread():
        scene = sample_scene(config, seed, index)
        clip = render_clip(scene, config)
        write_clip(Path(out_dir) / clip_id(index), clip)
    labels = [s.label for s in clip.meta.sources]
    return ManifestEntry(clip_id(index), "", clip_id(index), float(config.duration), labels)


def _worker(args: tuple[str, SynthConfig, int, int]) -> ManifestEntry:
    return generate_clip(*args)


def _worker_init() -> None:
    torch.set_num_threads(1)


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_clips: int,
    seed: int,
    *,
    duration: float = 5.0,
    sample_rate: int = 16000,
    fps: float = 8.0,
    equirect_size: tuple[int, int] = (256, 512),
    view_size: tuple[int, int] = (112, 112),
    hfov_deg: float = 90.0,
    camera: str = "trajectory",
    max_sources: int = 3,
    distractors: bool = True,
    reverb: bool = False,
    hrir: str = "spherical-head",
    split_ratios: dict[str, float] | None = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Manifest:
    """Write ``n_clips`` synthetic 360° clips and ``manifest.json``/``manifest.csv`` into ``out_dir``.

    Layout and metadata schema: :mod:`spatialgen.data.synthetic.metadata`. Scenes: see
    :mod:`~spatialgen.data.synthetic.scene`; rendering: :mod:`~spatialgen.data.synthetic.render`.
    ``workers > 1`` renders clips in a process pool (same files as ``workers=1``). An existing dataset
    (``manifest.json`` present) is only replaced with ``overwrite=True``. Returns the manifest.
    """
    if isinstance(n_clips, bool) or int(n_clips) != n_clips or n_clips < 1:
        raise ValueError(f"n_clips must be a positive integer, got {n_clips!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    config = SynthConfig(
        duration=duration,
        sample_rate=sample_rate,
        fps=fps,
        equirect_size=tuple(equirect_size),
        view_size=tuple(view_size),
        hfov_deg=hfov_deg,
        camera=camera,
        max_sources=max_sources,
        distractors=distractors,
        reverb=reverb,
        hrir=hrir,
        **({"split_ratios": dict(split_ratios)} if split_ratios is not None else {}),
    )
    splits = assign_splits(int(n_clips), int(seed), config.split_ratios)  # validates the ratios early
    binaural.foa_decoder_filters(config.hrir, config.sample_rate)  # a bad HRIR fails now, not in a worker
    root = Path(out_dir)
    if (root / MANIFEST_JSON).exists() and not overwrite:
        raise FileExistsError(
            f"{root}: already holds a dataset ({MANIFEST_JSON}); pass overwrite=True (--overwrite)"
        )
    root.mkdir(parents=True, exist_ok=True)

    jobs = [(str(root), config, int(seed), i) for i in range(int(n_clips))]
    bar = tqdm(total=len(jobs), desc="synth clips", unit="clip", disable=not progress)
    entries: list[ManifestEntry] = []
    with bar:
        if workers == 1:
            for job in jobs:
                entries.append(_worker(job))
                bar.update()
        else:
            # fork starts workers in milliseconds (like torch's DataLoader workers); spawn elsewhere.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            with context.Pool(min(int(workers), len(jobs)), initializer=_worker_init) as pool:
                for entry in pool.imap(_worker, jobs):
                    entries.append(entry)
                    bar.update()
    for entry, split in zip(entries, splits):
        entry.split = split
    run_config: dict[str, Any] = {**config.to_dict(), "seed": int(seed), "n_clips": int(n_clips)}
    manifest = Manifest("synthetic", entries, dict(config.split_ratios), run_config)
    write_manifest(root, manifest)
    return manifest
