"""VGGSound adapter: the official ``vggsound.csv`` and each clip's video with its own audio.

Expected layout under ``root``::

    vggsound.csv                 no header; rows ``<ytid>,<start sec>,<label>,<train|test>`` (official)
    video/<ytid>_<start:06d>.mp4 the 10-s clip (its audio track is used unless an audio file exists)
    audio/<ytid>_<start:06d>.wav | .flac   optional extracted audio

VGGSound has no ``val`` split: ``split="val"`` takes a fixed 5 % of ``train`` (by a hash of the id,
so it never changes) and ``train`` excludes them. Audio is mono (``format="mono"``, channels
averaged) or, for ``format="binaural"``, the two channels as recorded (mono files are skipped as
having the wrong channel count). There is no FOA and no camera direction: ``camera_direction = (0, 0)``.
"""

from __future__ import annotations

import csv
import math
import os
import zlib
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
from spatialgen.io import audio_info, probe_video, read_audio_track

__all__ = ["VAL_FRACTION", "VGGSoundDataset", "read_vggsound_csv"]

VAL_FRACTION = 0.05


def read_vggsound_csv(path: Path) -> list[tuple[str, str, str]]:
    """``[(clip_id, label, split)]`` from the official headerless CSV; ids are ``<ytid>_<start:06d>``."""
    if not path.is_file():
        raise DatasetError(f"{path}: vggsound.csv not found")
    rows = []
    with path.open(newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), 1):
            if not row:
                continue
            if len(row) != 4:
                raise DatasetError(
                    f"{path}:{line_no}: expected 4 columns (ytid,start,label,split), got {len(row)}"
                )
            ytid, start, label, split = (v.strip() for v in row)
            try:
                sec = int(float(start))
            except ValueError:
                raise DatasetError(f"{path}:{line_no}: start must be seconds, got {start!r}") from None
            rows.append((f"{ytid}_{sec:06d}", label, split))
    return rows


def _is_val(clip_id: str) -> bool:
    return zlib.crc32(clip_id.encode()) % 10_000 < VAL_FRACTION * 10_000


class VGGSoundDataset(ClipDataset):
    """VGGSound clips (layout: module docstring); ``split`` is ``train``/``val``/``test``."""

    name = "vggsound"

    def __init__(
        self, root: str | os.PathLike[str], split: str | None = "train", options: ClipOptions | None = None
    ) -> None:
        options = options or ClipOptions(format="mono")
        if options.format == "foa":
            raise ValueError("VGGSound has no FOA audio: use format='mono' or 'binaural'")
        super().__init__(options)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: dataset root not found. VGGSound: vggsound.csv and the list of 10-s YouTube "
                "clips are published at www.robots.ox.ac.uk/~vgg/data/vggsound/; expected under root: "
                "vggsound.csv, video/<ytid>_<start:06d>.mp4 [, audio/<ytid>_<start:06d>.wav]"
            )
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        rows = read_vggsound_csv(self.root / "vggsound.csv")
        if split == "test":
            rows = [r for r in rows if r[2] == "test"]
        else:
            rows = [r for r in rows if r[2] == "train" and _is_val(r[0]) == (split == "val")]
        if not rows:
            raise DatasetError(f"{self.root / 'vggsound.csv'}: split {split!r} has no clips")
        self.rows = rows
        self.split = split

    def __len__(self) -> int:
        return len(self.rows)

    def clip_id(self, index: int) -> str:
        return self.rows[index][0]

    def _audio_file(self, clip: str) -> Path | None:
        for ext in (".wav", ".flac"):
            path = self.root / "audio" / f"{clip}{ext}"
            if path.is_file():
                return path
        return None

    def load(self, index: int) -> dict[str, Any]:
        opts = self.options
        clip, label, _ = self.rows[index]
        video = self.root / "video" / f"{clip}.mp4"
        audio_file = self._audio_file(clip)
        if not video.is_file() and (opts.load_video or audio_file is None):
            raise MediaError(video, "video not found")
        duration = audio_info(audio_file).duration if audio_file is not None else probe_video(video).duration
        start = crop_window(duration, opts, index, self.epoch)
        item: dict[str, Any] = {
            "clip_id": clip if not opts.random_crop else f"{clip}@{start:g}",
            "start": start,
            "labels": [label],
        }
        n_frames = math.floor((opts.clip_seconds or duration - start) * opts.fps + 1e-6)
        if opts.load_video:
            item["video"] = read_clip_video(video, opts, start)
            item["video_fps"] = float(opts.fps)
            n_frames = item["video"].shape[0]
        if n_frames < 1:
            raise SampleError(f"{video}: too short for one frame at {opts.fps:g} fps")
        if opts.load_audio:
            channels = 2 if opts.format == "binaural" else None
            if audio_file is not None:
                audio = read_clip_audio(audio_file, opts, start, channels=channels) if channels else None
                if audio is None:
                    info = audio_info(audio_file)
                    audio = read_clip_audio(audio_file, opts, start, channels=info.channels)
            else:
                audio, sr = read_audio_track(video, opts.sample_rate, channels=channels)
                audio = fit_length(audio[:, round(start * sr) :], opts, video)
            if opts.format == "mono":
                audio = audio.mean(0, keepdim=True)
            item.update(audio=audio.float(), sample_rate=int(opts.sample_rate), audio_format=opts.format)
        item["camera_pose"] = torch.zeros(n_frames, 3)
        item["camera_direction"] = torch.zeros(2)
        return item
