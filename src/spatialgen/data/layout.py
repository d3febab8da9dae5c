"""Reader of the common on-disk layout (synthetic scenes, BiAudio-style builds, converted datasets).

Layout and metadata: :mod:`spatialgen.data.synthetic.metadata`. Items: :mod:`spatialgen.data.clips`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spatialgen.data.clips import (
    ClipDataset,
    ClipOptions,
    DatasetError,
    SampleError,
    crop_window,
    read_clip_audio,
    read_clip_video,
)
from spatialgen.data.synthetic.metadata import SPLITS, ClipMeta, read_manifest, read_meta
from spatialgen.errors import MediaError

__all__ = ["LayoutDataset", "frame_times", "keyframe_pose", "wrap_angle"]


def wrap_angle(x: torch.Tensor | float) -> torch.Tensor:
    """Angles (radians) wrapped to (−π, π]."""
    x = torch.as_tensor(x, dtype=torch.float64)
    return math.pi - torch.remainder(math.pi - x, 2 * math.pi)


def frame_times(n_frames: int, fps: float, start: float = 0.0) -> np.ndarray:
    """Centre times ``start + (k + ½)/fps`` of ``n_frames`` frames."""
    return start + (np.arange(n_frames) + 0.5) / fps


def keyframe_pose(meta: ClipMeta, times: np.ndarray) -> torch.Tensor:
    """Camera ``(yaw, pitch, roll)`` radians ``[len(times), 3]`` from the clip's piecewise-linear keyframes."""
    keys = meta.camera_keyframes
    t = np.asarray(keys["time"], dtype=np.float64)
    cols = [
        np.interp(times, t, np.radians(np.asarray(keys[k], dtype=np.float64)))
        for k in ("yaw_deg", "pitch_deg", "roll_deg")
    ]
    return torch.from_numpy(np.stack(cols, axis=-1))


def _split_entries(root: Path, split: str | None) -> list[Any]:
    manifest = read_manifest(root)
    entries = manifest.clips if split in (None, "all") else manifest.split(split)
    if not entries:
        raise DatasetError(f"{root}: split {split!r} has no clips (splits: {SPLITS} or 'all')")
    return entries


class LayoutDataset(ClipDataset):
    """Clips of a dataset root in the common layout (``manifest.json`` + clip folders).

    Args:
        root: dataset folder (holds ``manifest.json``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        options: :class:`~spatialgen.data.clips.ClipOptions`.
    """

    name = "layout"

    def __init__(
        self, root: str | os.PathLike[str], split: str | None = "train", options: ClipOptions | None = None
    ) -> None:
        super().__init__(options or ClipOptions())
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: dataset root not found (expected manifest.json + clip folders, the common "
                f"layout): make a synthetic one with `spatialgen data synth --out {self.root} --n-clips 50` "
                f"or build one from 360° videos with FOA with `spatialgen data biaudio --src DIR --out {self.root}`"
            )
        self.entries = _split_entries(self.root, split)
        self.split = split

    def __len__(self) -> int:
        return len(self.entries)

    def clip_id(self, index: int) -> str:
        return self.entries[index].clip_id

    def clip_dir(self, index: int) -> Path:
        """Folder of clip ``index``."""
        return self.root / self.entries[index].path

    def _audio_role(self, meta: ClipMeta) -> tuple[str, int]:
        fmt = self.options.format
        if fmt == "binaural":
            return "binaural", 2
        foa_role = "foa" if self.options.foa_frame == "camera" else "foa_world"
        if fmt == "mono" and foa_role not in meta.files:
            return "binaural", 2  # no FOA: the mid channel of the binaural pair
        return foa_role, 4

    def load(self, index: int) -> dict[str, Any]:
        opts = self.options
        folder = self.clip_dir(index)
        meta = read_meta(folder)
        start = crop_window(meta.duration, opts, index, self.epoch)
        seconds = opts.clip_seconds if opts.clip_seconds is not None else meta.duration
        item: dict[str, Any] = {
            "clip_id": meta.clip_id if not opts.random_crop else f"{meta.clip_id}@{start:g}",
            "start": float(start),
            "labels": list(self.entries[index].labels),
        }
        n_frames = math.floor(seconds * opts.fps + 1e-6)
        if opts.load_video:
            item["video"] = read_clip_video(meta.path(folder, "video"), opts, start)
            n_frames = item["video"].shape[0]
            item["video_fps"] = float(opts.fps)
        if opts.load_audio:
            role, channels = self._audio_role(meta)
            audio = read_clip_audio(meta.path(folder, role), opts, start, channels=channels)
            if opts.format == "mono":
                audio = audio[:1] if channels == 4 else audio.mean(0, keepdim=True)
            item.update(audio=audio, sample_rate=int(opts.sample_rate), audio_format=opts.format)
        if n_frames < 1:
            raise SampleError(f"{folder}: too short for one frame at {opts.fps:g} fps")
        if opts.format == "foa" and opts.foa_frame == "world":
            pose = keyframe_pose(meta, frame_times(n_frames, opts.fps, start))
            mid = pose[n_frames // 2]
            direction = torch.stack([wrap_angle(mid[0]), mid[1]])
        else:  # camera-frame audio: the camera looks along +x of its own frame
            pose = torch.zeros(n_frames, 3, dtype=torch.float64)
            direction = torch.zeros(2, dtype=torch.float64)
        item["camera_pose"] = pose.float()
        item["camera_direction"] = direction.float()
        return item


def check_roles(meta: ClipMeta, folder: Path, roles: tuple[str, ...]) -> None:
    """Raise :class:`MediaError` unless every role in ``roles`` is present and its file exists."""
    for role in roles:
        path = meta.path(folder, role)
        if not path.is_file():
            raise MediaError(path, f"file for role {role!r} not found")
