"""YT-Ambigen adapter: the official split CSVs, ``ambi.json`` camera directions, 360° video + FOA.

Expected layout under ``root`` (CSV columns and ``ambi.json`` exactly as published)::

    csv/yt_ambigen/train.csv | valid.csv | test.csv   header ``file_path``; rows ``<ytid>_<sec>.npy``
    ambi.json              {"<ytid>_<sec>": [e, a], ...}  2° bins (jaeyeonkim99/visage README)
    video/<ytid>_<sec>.mp4 the 5-s 360° equirect clip (the official ``clip`` step: 4 fps, 896×448)
    audio/<ytid>_<sec>.wav | .flac | .opus | .ogg     its FOA, AmbiX [W, Y, Z, X]; when absent the
                           4-channel audio track of the mp4 is used

The camera looks at ``φ = 179 − 2a``, ``θ = 89 − 2e`` degrees
(:func:`spatialgen.spatial.geometry.ambigen_bins_to_angles`); frames are the 90° perspective crop
there. ``foa_frame="world"`` keeps the FOA as recorded with ``camera_direction = (φ, θ)`` (ViSAGe);
``"camera"`` rotates it into the camera frame; ``format="binaural"`` renders that camera-frame FOA.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from spatialgen.data.clips import (
    ClipDataset,
    ClipOptions,
    DatasetError,
    SampleError,
    crop_window,
    fit_length,
    read_clip_audio,
    read_clip_video,
)
from spatialgen.errors import MediaError
from spatialgen.io import audio_info, read_audio_track
from spatialgen.spatial import binaural, foa, projection
from spatialgen.spatial.geometry import ambigen_bins_to_angles

__all__ = [
    "AUDIO_EXTENSIONS",
    "HFOV_DEG",
    "SPLIT_FILES",
    "YTAmbigenDataset",
    "read_ambi_json",
    "read_split_csv",
]

SPLIT_FILES = {"train": "train.csv", "val": "valid.csv", "test": "test.csv"}
AUDIO_EXTENSIONS = (".wav", ".flac", ".opus", ".ogg")
HFOV_DEG = 90.0  # the official NFoV crop (prepare_dataset.py: 90° × 90°)
DEFAULT_VIEW = (224, 224)


def read_split_csv(path: Path) -> list[str]:
    """Clip ids (``<ytid>_<sec>``) of an official split CSV (column ``file_path``, ``.npy`` names)."""
    if not path.is_file():
        raise DatasetError(f"{path}: split CSV not found (expected the official csv/yt_ambigen files)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "file_path" not in reader.fieldnames:
            raise DatasetError(f"{path}: expected a 'file_path' column, got {reader.fieldnames}")
        return [Path(row["file_path"].strip()).stem for row in reader if row["file_path"].strip()]


def read_ambi_json(path: Path) -> dict[str, tuple[int, int]]:
    """``{clip_id: (e, a)}`` from ``ambi.json`` (``[elevation bin, azimuth bin]`` per clip)."""
    if not path.is_file():
        raise DatasetError(f"{path}: ambi.json not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    out = {}
    for key, value in data.items():
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            raise DatasetError(
                f"{path}: entry {key!r} must be [elevation_bin, azimuth_bin] integers, got {value!r}"
            )
        out[key] = (value[0], value[1])
    return out


class YTAmbigenDataset(ClipDataset):
    """YT-Ambigen clips (layout: module docstring); ``split`` is ``train``/``val``/``test``."""

    name = "ytambigen"

    def __init__(
        self, root: str | os.PathLike[str], split: str | None = "train", options: ClipOptions | None = None
    ) -> None:
        super().__init__(options or ClipOptions())
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: dataset root not found. YT-Ambigen: the split CSVs (csv/yt_ambigen/"
                "{train,valid,test}.csv) and ambi.json come with ViSAGe (github.com/jaeyeonkim99/visage), the "
                "5-s 360° clips with FOA are fetched from YouTube by its utils/ scripts; expected under root: "
                "csv/yt_ambigen/*.csv, ambi.json, video/<ytid>_<sec>.mp4 [, audio/<ytid>_<sec>.wav]"
            )
        if split not in SPLIT_FILES:
            raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
        ids = read_split_csv(self.root / "csv" / "yt_ambigen" / SPLIT_FILES[split])
        directions = read_ambi_json(self.root / "ambi.json")
        missing = [i for i in ids if i not in directions]
        if missing:
            raise DatasetError(
                f"{self.root / 'ambi.json'}: no camera direction for {len(missing)} clips, e.g. {missing[0]}"
            )
        if not ids:
            raise DatasetError(f"{self.root}: split {split!r} lists no clips")
        self.ids = ids
        self.bins = [directions[i] for i in ids]
        self.split = split

    def __len__(self) -> int:
        return len(self.ids)

    def clip_id(self, index: int) -> str:
        return self.ids[index]

    def camera_angles(self, index: int) -> tuple[float, float]:
        """Camera (azimuth, elevation) in radians of clip ``index`` from its ``ambi.json`` bins."""
        e, a = self.bins[index]
        az, el = ambigen_bins_to_angles(e, a)
        return float(az), float(el)

    def _audio(self, clip: str, start: float) -> torch.Tensor:
        for ext in AUDIO_EXTENSIONS:
            path = self.root / "audio" / f"{clip}{ext}"
            if path.is_file():
                return read_clip_audio(path, self.options, start, channels=4)
        video = self.root / "video" / f"{clip}.mp4"
        audio, sr = read_audio_track(video, self.options.sample_rate, channels=4)
        first = round(start * sr)
        return fit_length(audio[:, first:], self.options, video)

    def _duration(self, clip: str) -> float:
        for ext in AUDIO_EXTENSIONS:
            path = self.root / "audio" / f"{clip}{ext}"
            if path.is_file():
                return audio_info(path).duration
        from spatialgen.io import probe_video

        return probe_video(self.root / "video" / f"{clip}.mp4").duration

    def load(self, index: int) -> dict[str, Any]:
        opts, clip = self.options, self.ids[index]
        video_path = self.root / "video" / f"{clip}.mp4"
        if not video_path.is_file() and opts.load_video:
            raise MediaError(video_path, "360° video not found")
        start = crop_window(self._duration(clip), opts, index, self.epoch)
        az, el = self.camera_angles(index)
        item: dict[str, Any] = {
            "clip_id": clip if not opts.random_crop else f"{clip}@{start:g}",
            "start": start,
            "labels": [],
        }
        n_frames = math.floor((opts.clip_seconds or self._duration(clip) - start) * opts.fps + 1e-6)
        if opts.load_video:
            equirect = read_clip_video(video_path, replace(opts, video_size=None), start)
            item["video"] = projection.equirect_to_perspective(
                equirect, az, el, 0.0, hfov=math.radians(HFOV_DEG), size=opts.video_size or DEFAULT_VIEW
            )
            item["video_fps"] = float(opts.fps)
            n_frames = equirect.shape[0]
        if n_frames < 1:
            raise SampleError(f"{video_path}: too short for one frame at {opts.fps:g} fps")
        world = opts.format == "foa" and opts.foa_frame == "world"
        if opts.load_audio:
            audio = self._audio(clip, start).double()
            if opts.format == "mono":
                audio = audio[:1]
            elif not world:
                audio = foa.rotate(audio, az, el, 0.0)
                if opts.format == "binaural":
                    audio = binaural.render_foa(audio, opts.sample_rate)
            item.update(audio=audio.float(), sample_rate=int(opts.sample_rate), audio_format=opts.format)
        pose = torch.tensor([az, el, 0.0]) if world else torch.zeros(3)
        item["camera_pose"] = pose.expand(n_frames, 3).clone()
        item["camera_direction"] = pose[:2].clone()
        return item
