"""``PredictionWriter``: the one prediction writer of both models (``spatialgen predict`` / ``trainer.predict``).

``predict_step`` (:meth:`spatialgen.training.base.SpatialAudioModule.predict_step`) returns
``{"clip_id", "audio" [B, C, T], "lengths", "sample_rate"}``; each clip is written as
``<output_dir>/<clip_id>.wav`` with all its channels (AmbiX FOA ``[W, Y, Z, X]`` for ViSAGe, ``[L, R]``
for ViSAudio), cropped to its length. A clip id met again in the same run (e.g. two ``.../video.mp4``)
gets ``_1``, ``_2``, ... appended, so no output overwrites another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter

from spatialgen.io import write_audio

__all__ = ["PredictionWriter"]


class PredictionWriter(BasePredictionWriter):
    """Writes each predicted clip as a WAV ``<output_dir>/<clip_id>.wav`` (all channels).

    Args:
        output_dir: folder for the files (created).
        subtype: libsndfile subtype (``FLOAT`` keeps generated peaks above 1.0; ``PCM_16`` clips them).
    """

    def __init__(self, output_dir: str = "predictions", subtype: str = "FLOAT") -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.subtype = subtype
        self._seen: dict[str, int] = {}

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Write the batch's clips (cropped to each video's length)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        sr = int(prediction["sample_rate"])
        for clip_id, audio, n in zip(
            prediction["clip_id"], prediction["audio"], prediction["lengths"], strict=True
        ):
            count = self._seen.get(str(clip_id), 0)
            self._seen[str(clip_id)] = count + 1
            name = f"{clip_id}_{count}" if count else str(clip_id)
            write_audio(
                self.output_dir / f"{name}.wav", audio[:, : int(n)].float().cpu(), sr, subtype=self.subtype
            )
