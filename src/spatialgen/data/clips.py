"""The dataset item format shared by every dataset, and the skip-and-count base dataset.

Item format (a ``dict``; both LightningModules consume exactly this, batched by
:func:`spatialgen.data.collate.collate_items`)::

    clip_id           str      unique id of the clip (with the crop start when clips are cut)
    start             float    crop start in seconds inside the source clip
    labels            list[str] sound-class labels (may be empty)
    video             uint8 [T, 3, H, W]   RGB frames, frame k shows time start + (k + ½)/video_fps
    video_fps         float
    audio             float32 [C, S]       C = 4 (AmbiX [W, Y, Z, X] SN3D), 2 ([L, R]) or 1 (mono)
    sample_rate       int
    audio_format      "foa" | "binaural" | "mono"
    camera_direction  float32 [2]          (azimuth, elevation) in radians of the camera's optical
                                           axis *in the frame of ``audio``*: (0, 0) for camera-frame
                                           audio, the look direction for world-frame FOA (ViSAGe)
    camera_pose       float32 [T, 3]       (yaw, pitch, roll) radians per video frame, same frame
    features          {encoder name: float [T_e, D_e]}   optional, at ``features_fps[name]``
    patch_tokens      {encoder name: float [T_e, N, D_p]} optional
    features_fps      {encoder name: float}
    codes             int64 [C, Q, F]      optional (discrete codec), or
    latents           float32 [C, D, F]    optional (continuous codec), at ``codec_frame_rate``

``video``/``audio`` are absent when a dataset is built without them (``load_video=False``, or the
feature-cache source). A bad sample (missing/corrupt media, wrong channel count, too short) is never
zero-filled: :class:`ClipDataset` logs and counts it, then serves the next good clip; when every clip
fails it raises :class:`DatasetError`.
"""

from __future__ import annotations

import logging
import math
import random
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from spatialgen.errors import InvalidAudioError, MediaError, SpatialgenError
from spatialgen.io import read_audio, read_video

__all__ = [
    "AUDIO_FORMATS",
    "ClipDataset",
    "ClipOptions",
    "DatasetError",
    "SampleError",
    "crop_window",
    "fit_length",
    "read_clip_audio",
    "read_clip_video",
]

log = logging.getLogger("spatialgen.data")

AudioFormat = Literal["foa", "binaural", "mono"]
AUDIO_FORMATS = ("foa", "binaural", "mono")
_CHANNELS = {"foa": 4, "binaural": 2, "mono": 1}


class DatasetError(SpatialgenError):
    """A dataset cannot be used at all (bad root/layout, or every clip fails)."""


class SampleError(SpatialgenError):
    """One clip is unusable (too short, wrong channels, ...); the dataset skips it."""


@dataclass(frozen=True)
class ClipOptions:
    """How clips are read: crop length, rates, sizes, audio format and frame.

    Attributes:
        clip_seconds: crop length in seconds; ``None`` uses each clip whole. Shorter clips are skipped.
        sample_rate: audio rate in Hz (files at another rate are resampled).
        fps: video frame rate.
        video_size: ``(height, width)`` of the frames; ``None`` keeps the stored size.
        format: ``"foa"``, ``"binaural"`` or ``"mono"``.
        foa_frame: ``"camera"`` (FOA heard by the camera) or ``"world"`` (FOA in the 360° frame, with
            ``camera_direction`` the look direction, as ViSAGe trains).
        random_crop: random crop start (training) instead of the start of the clip.
        load_video / load_audio: skip decoding one of them.
        seed: base seed of the random crops (combined with the index and epoch).
    """

    clip_seconds: float | None = 5.0
    sample_rate: int = 16000
    fps: float = 8.0
    video_size: tuple[int, int] | None = None
    format: AudioFormat = "foa"
    foa_frame: Literal["camera", "world"] = "camera"
    random_crop: bool = False
    load_video: bool = True
    load_audio: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ValueError(f"clip_seconds must be > 0 or None, got {self.clip_seconds!r}")
        if int(self.sample_rate) != self.sample_rate or self.sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {self.sample_rate!r}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if self.video_size is not None and (len(self.video_size) != 2 or min(self.video_size) < 1):
            raise ValueError(f"video_size must be (height, width) or None, got {self.video_size!r}")
        if self.format not in AUDIO_FORMATS:
            raise ValueError(f"format must be one of {AUDIO_FORMATS}, got {self.format!r}")
        if self.foa_frame not in ("camera", "world"):
            raise ValueError(f"foa_frame must be 'camera' or 'world', got {self.foa_frame!r}")

    @property
    def channels(self) -> int:
        """Audio channels of the chosen format."""
        return _CHANNELS[self.format]


def crop_window(duration: float, options: ClipOptions, index: int, epoch: int = 0) -> float:
    """Crop start (s) inside a clip of ``duration`` s; raises :class:`SampleError` when it is too short."""
    if options.clip_seconds is None:
        return 0.0
    # 1 ms slack: container durations are rounded.
    spare = duration - options.clip_seconds
    if spare < -1e-3:
        raise SampleError(f"too short: {duration:.3f} s < clip_seconds={options.clip_seconds:g}")
    if not options.random_crop or spare <= 1.0 / options.fps:
        return 0.0
    rng = random.Random(hash((options.seed, index, epoch)))
    # whole video frames, so the crop and the stored frame grid line up
    return math.floor(rng.uniform(0.0, spare) * options.fps) / options.fps


def read_clip_audio(path: Any, options: ClipOptions, start: float, *, channels: int) -> torch.Tensor:
    """Audio ``[channels, S]`` float32 at ``options.sample_rate`` from ``start`` (exact crop length)."""
    audio, _ = read_audio(
        path,
        channels=channels,
        sample_rate=options.sample_rate,
        resample=True,
        start=start,
        duration=options.clip_seconds,
    )
    return fit_length(audio, options, path)


def fit_length(audio: torch.Tensor, options: ClipOptions, path: Any) -> torch.Tensor:
    """Cut ``audio`` to the crop length; more than 1 ms missing is a :class:`SampleError`."""
    if options.clip_seconds is None:
        return audio
    n = round(options.clip_seconds * options.sample_rate)
    if audio.shape[-1] < n - max(1, options.sample_rate // 1000):
        raise SampleError(f"{path}: too short: {audio.shape[-1]} samples, expected {n}")
    if audio.shape[-1] < n:  # sub-millisecond shortfall from rounding: repeat the last sample
        audio = torch.cat([audio, audio[..., -1:].expand(*audio.shape[:-1], n - audio.shape[-1])], -1)
    return audio[..., :n].contiguous()


def read_clip_video(path: Any, options: ClipOptions, start: float) -> torch.Tensor:
    """Frames uint8 ``[T, 3, H, W]`` at ``options.fps`` from ``start`` (exactly ``⌊clip·fps⌋`` frames)."""
    frames, _ = read_video(
        path, fps=options.fps, size=options.video_size, start=start, duration=options.clip_seconds
    )
    if options.clip_seconds is not None:
        n = math.floor(options.clip_seconds * options.fps + 1e-6)
        if frames.shape[0] < n:
            raise SampleError(f"{path}: too short: {frames.shape[0]} frames, expected {n}")
        frames = frames[:n]
    return frames


_SKIPPABLE = (MediaError, InvalidAudioError, SampleError, OSError)


class ClipDataset(Dataset, ABC):
    """Map-style base dataset: subclasses implement ``__len__``, :meth:`clip_id` and :meth:`load`.

    ``dataset[i]`` returns :meth:`load` ``(i)``; if that clip is bad it is logged, counted in
    :attr:`skipped` (``{clip_id: reason}``, per process) and the next good clip is served instead.
    Every clip failing raises :class:`DatasetError` listing the reasons.
    """

    name = "dataset"

    def __init__(self, options: ClipOptions) -> None:
        self.options = options
        self.epoch = 0
        self.skipped: dict[str, str] = {}
        self._bad: set[int] = set()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def clip_id(self, index: int) -> str:
        """Id of clip ``index``."""

    @abstractmethod
    def load(self, index: int) -> dict[str, Any]:
        """Item of clip ``index`` (format: module docstring); raises on a bad clip."""

    def with_options(self, **changes: Any) -> ClipDataset:
        """A shallow copy reading clips with ``changes`` applied to :attr:`options`."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.options = replace(self.options, **changes)
        other.skipped, other._bad = {}, set()
        return other

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops (called by the DataModule at every epoch)."""
        self.epoch = int(epoch)

    def skip_counts(self) -> Counter[str]:
        """Number of skipped clips per reason kind (the text before the first ':' of the reason)."""
        return Counter(reason.split(":")[0] for reason in self.skipped.values())

    def try_load(self, index: int) -> tuple[dict[str, Any] | None, str | None]:
        """``(item, None)`` or ``(None, reason)``: one clip without substitution (feature cache)."""
        try:
            return self.load(index), None
        except _SKIPPABLE as e:
            return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            item, reason = self.try_load(i)
            if item is not None:
                return item
            self._bad.add(i)
            clip = self.clip_id(i)
            self.skipped[clip] = reason or "unknown"
            log.warning(
                "%s: skipping clip %s (%s); %d skipped so far", self.name, clip, reason, len(self._bad)
            )
        reasons = "; ".join(f"{k}: {v}" for k, v in list(self.skipped.items())[:3])
        raise DatasetError(f"{self.name}: all {n} clips failed to load (e.g. {reasons})")
