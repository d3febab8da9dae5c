"""Video frames paired with the direction their sound comes from, for pretraining a visual encoder.

A randomly initialised visual encoder (the ``tiny`` CNN of the CPU recipes) does not know where the
objects in a picture are; published encoders (CLIP, Perception Encoder) do. This module builds the
audio-visual pretext task that teaches a small one: every video frame is labelled with the direction of
arrival of the sound during that frame, measured from the clip's own **camera-frame FOA** by
pseudo-intensity vectors (:func:`spatialgen.spatial.doa.intensity_doa`). No annotation is used —
only the training clips' audio, the same signal the generative models learn from — so it is
self-supervised in the sense of audio-visual correspondence pretraining.

Each frame gets a weight in [0, 1]: ``1 − diffuseness`` of its block (a single plane wave -> 1, a
diffuse field -> 0) times a level gate (blocks more than ``level_range_db`` below the clip's loudest
block get 0: silence has no direction). Frames of weight 0 are dropped.

The whole split is decoded once into memory (frames as uint8 at the encoder's input size), so
training epochs cost no decoding.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from spatialgen.data.clips import ClipOptions, DatasetError
from spatialgen.data.synthetic.ensure import check_synth_settings, ensure_synthetic
from spatialgen.spatial.doa import diffuseness, intensity_doa
from spatialgen.spatial.geometry import direction

__all__ = ["FrameDirectionDataModule", "frame_directions", "load_frame_directions"]


def frame_directions(
    foa: Tensor,
    sample_rate: int,
    fps: float,
    num_frames: int,
    *,
    level_range_db: float = 30.0,
    n_fft: int = 512,
) -> tuple[Tensor, Tensor]:
    """Sound direction and its reliability for each video frame of a clip.

    Frame ``k`` is paired with the audio block ``[k / fps, (k + 1) / fps)``.

    Args:
        foa: ``[4, T]`` AmbiX FOA in the camera frame (+x the look direction, +y left, +z up).
        sample_rate: audio rate in Hz.
        fps: video frame rate.
        num_frames: video frames of the clip (blocks beyond the audio get weight 0).
        level_range_db: blocks this far below the loudest one get weight 0.
        n_fft: STFT size of the intensity analysis (hop ``n_fft // 2``).

    Returns:
        ``(directions [num_frames, 3] unit vectors (float32), weights [num_frames] in [0, 1])``.
    """
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"foa must be [4, samples] AmbiX, got shape {tuple(foa.shape)}")
    if not fps > 0 or num_frames < 1:
        raise ValueError(f"need fps > 0 and num_frames >= 1, got fps={fps}, num_frames={num_frames}")
    block = 1.0 / fps
    azimuth, elevation = intensity_doa(foa, sample_rate, n_fft=n_fft, per_frame=block)
    directness = (1.0 - diffuseness(foa, sample_rate, n_fft=n_fft, per_frame=block)).clamp(0.0, 1.0)
    # level of each block from the omni channel (blocks as intensity_doa pools them)
    length = max(1, round(block * sample_rate))
    w = foa[0].to(torch.float64)
    n_blocks = azimuth.shape[-1]
    padded = torch.nn.functional.pad(w, (0, n_blocks * length - w.shape[-1]))
    level = 10 * torch.log10(padded.reshape(n_blocks, length).square().mean(-1).clamp_min(1e-20))
    weight = directness.to(torch.float64) * (level > level.max() - level_range_db)
    dirs = direction(azimuth.to(torch.float64), elevation.to(torch.float64))
    out_dirs = torch.zeros(num_frames, 3, dtype=torch.float64)
    out_weight = torch.zeros(num_frames, dtype=torch.float64)
    n = min(num_frames, n_blocks)
    out_dirs[:n], out_weight[:n] = dirs[:n], weight[:n]
    return out_dirs.float(), out_weight.float()


def load_frame_directions(
    dataset: str,
    root: str,
    split: str,
    *,
    fps: float,
    sample_rate: int = 16000,
    video_size: tuple[int, int] | None = None,
    clip_seconds: float | None = None,
    level_range_db: float = 30.0,
    progress: bool = True,
) -> tuple[TensorDataset, dict[str, Any]]:
    """Decode every clip of a split once: ``TensorDataset(frames uint8 [N, 3, H, W], directions [N, 3],
    weights [N])`` over the frames of nonzero weight, and a summary (clips, frames, skipped clips)."""
    from spatialgen.data.registry import create_dataset

    options = ClipOptions(
        clip_seconds=clip_seconds,
        sample_rate=sample_rate,
        fps=fps,
        video_size=tuple(video_size) if video_size is not None else None,
        format="foa",
        foa_frame="camera",
    )
    clips = create_dataset(dataset, root, split, options)
    frames, dirs, weights, seen = [], [], [], set()
    for index in tqdm(
        range(len(clips)), desc=f"frames+directions {split}", unit="clip", disable=not progress
    ):
        item = clips[index]
        if item["clip_id"] in seen:  # a skipped clip is replaced by the next good one
            continue
        seen.add(item["clip_id"])
        video = item["video"]
        if video.dtype != torch.uint8:
            video = (video.clamp(0, 1) * 255).round().to(torch.uint8)
        d, w = frame_directions(
            item["audio"], sample_rate, fps, video.shape[0], level_range_db=level_range_db
        )
        keep = w > 0
        frames.append(video[keep])
        dirs.append(d[keep])
        weights.append(w[keep])
    summary = {"clips": len(seen), "skipped": dict(clips.skipped), "frames": sum(len(f) for f in frames)}
    if not frames or summary["frames"] == 0:
        raise DatasetError(
            f"{root} split {split!r}: no frame with a directional sound (clips read: {len(seen)}, "
            f"skipped: {len(clips.skipped)}); the task needs camera-frame FOA audio"
        )
    return TensorDataset(torch.cat(frames), torch.cat(dirs), torch.cat(weights)), summary


class FrameDirectionDataModule(pl.LightningDataModule):
    """Frames and the direction of their sound (see the module docstring), held in memory.

    Batches are ``(frames uint8 [B, 3, H, W], directions [B, 3], weights [B])``.

    Args:
        dataset: registered dataset name with FOA audio (``synthetic``, ``layout``, ``ytambigen``).
        root: dataset root folder.
        train_split / val_split: splits (val None: no validation).
        fps: frame rate the frames are sampled at (one label per frame).
        sample_rate: audio rate in Hz.
        video_size: ``[height, width]`` of the stored frames (None: as decoded); the encoder resizes
            anyway, so the encoder's input size saves memory.
        clip_seconds: crop of each clip from its start (None: whole clips).
        level_range_db: see :func:`frame_directions`.
        batch_size: frames per batch.
        num_workers: DataLoader workers (the data is in memory; 0 is usually fastest).
        progress: show a progress bar while decoding.
        synthesize: with ``dataset: synthetic``, generator settings: a missing ``root`` is
            synthesised there on first use (see :class:`~spatialgen.data.datamodule.SpatialDataModule`).
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str = "data/synthetic",
        *,
        train_split: str = "train",
        val_split: str | None = "val",
        fps: float = 8.0,
        sample_rate: int = 16000,
        video_size: tuple[int, int] | None = (64, 64),
        clip_seconds: float | None = None,
        level_range_db: float = 30.0,
        batch_size: int = 64,
        num_workers: int = 0,
        progress: bool = True,
        synthesize: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if synthesize is not None:
            if dataset != "synthetic":
                raise ValueError(f"synthesize is for dataset: synthetic, not {dataset!r}; remove it")
            synthesize = check_synth_settings(synthesize, "data.init_args.synthesize")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.save_hyperparameters()
        self.datasets: dict[str, TensorDataset] = {}
        self.summaries: dict[str, dict[str, Any]] = {}

    def prepare_data(self) -> None:
        """Synthesise the synthetic dataset into ``root`` on first use (``synthesize`` set; rank 0)."""
        if self.hparams.synthesize is not None:
            ensure_synthetic(self.hparams.root, self.hparams.synthesize)

    def _load(self, key: str, split: str) -> None:
        if key in self.datasets:
            return
        self.prepare_data()
        hp = self.hparams
        self.datasets[key], self.summaries[key] = load_frame_directions(
            hp.dataset,
            hp.root,
            split,
            fps=hp.fps,
            sample_rate=hp.sample_rate,
            video_size=hp.video_size,
            clip_seconds=hp.clip_seconds,
            level_range_db=hp.level_range_db,
            progress=hp.progress,
        )

    def setup(self, stage: str | None = None) -> None:
        """Decode the splits ``stage`` needs (once; later calls reuse them)."""
        if stage in (None, "fit"):
            self._load("train", self.hparams.train_split)
        if stage in (None, "fit", "validate") and self.hparams.val_split:
            self._load("val", self.hparams.val_split)

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        if key not in self.datasets:
            raise DatasetError(f"no {key} frames: call setup() first or set the {key} split")
        return DataLoader(
            self.datasets[key],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=shuffle and len(self.datasets[key]) > self.hparams.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training frames."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        """Validation frames in order."""
        return self._loader("val", False)
