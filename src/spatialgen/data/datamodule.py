"""``SpatialDataModule``: every dataset, raw media or feature cache or tar shards, one batch format."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from spatialgen.data.augment import Augment
from spatialgen.data.clips import ClipDataset, ClipOptions, DatasetError
from spatialgen.data.collate import collate_items
from spatialgen.data.resumable import ResumableDataLoader
from spatialgen.errors import MediaError
from spatialgen.io import read_video

__all__ = ["PredictVideos", "SpatialDataModule"]


class _Augmented(Dataset):
    def __init__(self, dataset: ClipDataset, augment: Augment) -> None:
        self.dataset, self.augment = dataset, augment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.augment(self.dataset[index], self.dataset.epoch)


class PredictVideos(Dataset):
    """Arbitrary video files as items (``video``, ``video_fps``, camera at (0, 0)) for ``predict``.

    Args:
        paths: video files; each is read whole (or its first ``clip_seconds``) at ``fps``.
        fps: frame rate; video_size: ``(height, width)`` or None.
    """

    def __init__(
        self,
        paths: Sequence[str],
        fps: float,
        video_size: tuple[int, int] | None = None,
        clip_seconds: float | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise MediaError(missing[0], "video not found")
        self.fps, self.video_size, self.clip_seconds = float(fps), video_size, clip_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        video, fps = read_video(path, fps=self.fps, size=self.video_size, duration=self.clip_seconds)
        return {
            "clip_id": path.stem,
            "path": str(path),
            "start": 0.0,
            "video": video,
            "video_fps": fps,
            "camera_direction": torch.zeros(2),
            "camera_pose": torch.zeros(video.shape[0], 3),
        }


class SpatialDataModule(pl.LightningDataModule):
    """Clips of a registered dataset as padded, masked batches for ViSAGe (FOA) and ViSAudio (binaural).

    Batches are dicts (keys: :mod:`spatialgen.data.clips`, masks: :mod:`spatialgen.data.collate`).
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str = "data/synthetic",
        *,
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = "test",
        clip_seconds: float | None = 5.0,
        sample_rate: int = 16000,
        fps: float = 8.0,
        video_size: tuple[int, int] | None = None,
        format: Literal["foa", "binaural", "mono"] = "foa",
        foa_frame: Literal["camera", "world"] = "camera",
        batch_size: int = 8,
        num_workers: int = 0,
        source: Literal["raw", "cache", "stream"] = "raw",
        cache_dir: str | None = None,
        encoders: list[str] | None = None,
        codec: str | None = None,
        pretrained: bool = True,
        keep_media: bool = False,
        shards_dir: str | None = None,
        shuffle_buffer: int = 1000,
        rotate_prob: float = 0.0,
        rotate_angles_deg: list[float] | None = None,
        swap_prob: float = 0.0,
        predict_files: list[str] | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        synthesize: dict[str, Any] | None = None,
    ) -> None:
        """Configure the data (every argument is a YAML key under ``data.init_args``).

        Args:
            dataset: registered dataset name (``synthetic``, ``biaudio``, ``layout``, ``ytambigen``,
                ``vggsound``; see ``spatialgen.data.registry.list_datasets``).
            root: dataset root folder in that dataset's layout.
            train_split: split used for ``fit``.
            val_split: split for validation (None: no validation loader).
            test_split: split for ``test`` (None: no test loader).
            clip_seconds: crop length in seconds (training crops start at random whole frames); None
                uses whole clips. Clips shorter than this are skipped and counted.
            sample_rate: audio rate in Hz (resampled on load).
            fps: video frame rate of ``video``.
            video_size: ``[height, width]`` of the frames; None keeps the stored size.
            format: audio target: ``foa`` (4-ch AmbiX), ``binaural`` ([L, R]) or ``mono``.
            foa_frame: FOA in the ``camera`` frame, or the ``world`` (360°) frame with the camera's
                look direction in ``camera_direction`` (ViSAGe's YT-Ambigen setting).
            batch_size: clips per batch (per process).
            num_workers: DataLoader worker processes.
            source: ``raw`` decodes media on the fly; ``cache`` reads a feature cache built by
                ``spatialgen data features`` from ``cache_dir/<split>``; ``stream`` reads tar shards
                from ``shards_dir/<split>`` split across nodes and workers.
            cache_dir: feature cache root (``source: cache``).
            encoders: with ``source: raw``, visual encoders whose features are computed on the fly
                (the same items the cache holds), e.g. ``[clip_vit_b32]``.
            codec: with ``source: raw``, audio codec whose codes/latents are computed on the fly.
            pretrained: load published weights for ``encoders``/``codec`` (False: seeded random init).
            keep_media: with on-the-fly features, also keep ``video``/``audio`` in the items.
            shards_dir: tar shard root (``source: stream``).
            shuffle_buffer: example shuffle buffer of the streamed training split.
            rotate_prob: probability of a random FOA yaw rotation (label moved with it); raw FOA only.
            rotate_angles_deg: rotation angles to draw from (degrees); None: any angle.
            swap_prob: probability of a left/right mirror with a horizontal video flip (binaural: ears
                swapped; FOA: Y negated); raw only.
            predict_files: video files for ``predict`` (any length; read whole at ``fps``).
            seed: seed of random crops, augmentation and shuffling.
            pin_memory: DataLoader ``pin_memory``.
            synthesize: with ``dataset: synthetic``, generator settings (``generate_dataset``
                arguments, e.g. ``{n_clips: 80, duration: 2.0}``): a missing ``root`` is synthesised
                there on first use (:mod:`spatialgen.data.synthetic.ensure`). None: ``root`` must exist.
        """
        super().__init__()
        if source not in ("raw", "cache", "stream"):
            raise ValueError(f"source must be 'raw', 'cache' or 'stream', got {source!r}")
        if source == "cache" and not cache_dir:
            raise ValueError("source='cache' needs cache_dir (build it with `spatialgen data features`)")
        if source == "stream" and not shards_dir:
            raise ValueError(
                "source='stream' needs shards_dir (tar shards written by spatialgen.data.streaming.write_shards)"
            )
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        if synthesize is not None:
            if dataset != "synthetic":
                raise ValueError(f"synthesize is for dataset: synthetic, not {dataset!r}; remove it")
            from spatialgen.data.synthetic.ensure import check_synth_settings

            synthesize = check_synth_settings(synthesize, "data.init_args.synthesize")
        self.augment = Augment(rotate_prob, rotate_angles_deg, swap_prob, seed)
        if self.augment.active and (source == "cache" or encoders or codec):
            raise ValueError("rotate_prob/swap_prob need raw media: use source='raw' without encoders/codec")
        self.save_hyperparameters()
        self.options = ClipOptions(
            clip_seconds=clip_seconds,
            sample_rate=sample_rate,
            fps=fps,
            video_size=tuple(video_size) if video_size is not None else None,
            format=format,
            foa_frame=foa_frame,
            seed=seed,
        )
        self.datasets: dict[str, Any] = {}

    # ------------------------------------------------------------------ datasets
    def prepare_data(self) -> None:
        """Synthesise the synthetic dataset into ``root`` on first use (``synthesize`` set; rank 0)."""
        if self.hparams.synthesize is not None:
            from spatialgen.data.synthetic.ensure import ensure_synthetic

            ensure_synthetic(self.hparams.root, self.hparams.synthesize)

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def build_split(self, split: str, train: bool = False) -> Any:
        """The dataset of ``split`` for the configured source (training: random crops, augmentation)."""
        hp = self.hparams
        if hp.source == "cache":
            from spatialgen.data.features import CachedDataset

            return CachedDataset(Path(hp.cache_dir) / split)
        if hp.source == "stream":
            from spatialgen.data.streaming import ShardStream

            rank, world = self._rank()
            return ShardStream(
                Path(hp.shards_dir) / split,
                rank=rank,
                world_size=world,
                shuffle_buffer=hp.shuffle_buffer if train else 0,
                seed=hp.seed,
                transform=self.augment if train and self.augment.active else None,
            )
        from spatialgen.data.registry import create_dataset

        self.prepare_data()  # no-op when the dataset is there (setup() may run without a Trainer)
        options = ClipOptions(**{**self.options.__dict__, "random_crop": train})
        dataset = create_dataset(hp.dataset, hp.root, split, options)
        if hp.encoders or hp.codec:
            from spatialgen.data.features import FeatureDataset

            kwargs = {
                "encoders": list(hp.encoders or []),
                "codec": hp.codec,
                "pretrained": hp.pretrained,
                "seed": hp.seed,
            }
            return FeatureDataset(dataset, kwargs, keep_media=hp.keep_media)
        if train and self.augment.active:
            return _Augmented(dataset, self.augment)
        return dataset

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``, ``validate``, ``test``, ``predict``)."""
        hp = self.hparams
        if stage in (None, "fit"):
            self.datasets["train"] = self.build_split(hp.train_split, train=True)
        if stage in (None, "fit", "validate") and hp.val_split:
            self.datasets["val"] = self.build_split(hp.val_split)
        if stage in (None, "test") and hp.test_split:
            self.datasets["test"] = self.build_split(hp.test_split)
        if stage in (None, "predict"):
            if not hp.predict_files:
                if stage == "predict":
                    raise DatasetError("predict needs data.predict_files (a list of video files)")
            else:
                self.datasets["predict"] = PredictVideos(
                    hp.predict_files, hp.fps, self.options.video_size, None
                )

    # ------------------------------------------------------------------ loaders
    def _loader(self, key: str, train: bool = False) -> DataLoader:
        if key not in self.datasets:
            raise DatasetError(f"no {key} dataset: call setup() first or set the {key} split")
        dataset = self.datasets[key]
        trainer = getattr(self, "trainer", None)
        epoch = trainer.current_epoch if trainer is not None else 0
        target = getattr(dataset, "dataset", dataset)
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
        streaming = isinstance(dataset, torch.utils.data.IterableDataset)
        common = {
            "batch_size": self.hparams.batch_size,
            "num_workers": self.hparams.num_workers,
            "collate_fn": collate_items,
            "pin_memory": self.hparams.pin_memory,
            "drop_last": False,
            "persistent_workers": False,
        }
        if train:
            # Shuffle order is a function of (seed, epoch) and the position (streams too) survives a resume.
            return ResumableDataLoader(dataset, shuffle=not streaming, seed=self.hparams.seed, **common)
        return DataLoader(dataset, shuffle=False, **common)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (reshuffled and re-cropped each epoch)."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches (clip starts, no augmentation)."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Batches of the ``predict_files`` videos (padded to the longest, with ``video_mask``)."""
        return self._loader("predict")

    def num_batches(self, key: str = "train") -> int:
        """Batches per epoch of a map-style split."""
        return math.ceil(len(self.datasets[key]) / self.hparams.batch_size)
