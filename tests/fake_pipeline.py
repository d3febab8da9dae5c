"""A fake FOA generation pipeline and a test video writer shared by the ``spatialgen generate`` tests."""

from __future__ import annotations

from pathlib import Path

import torch

from spatialgen.io import write_video
from spatialgen.models.pipeline import GenerationPipeline


class FakeFoaPipeline(GenerationPipeline):
    """2 s windows of 8 kHz FOA from 4 fps ``enc`` frames; subclasses set ``kind`` and ``generate``.

    ``calls`` records what ``generate`` was called with (each subclass chooses what to record).
    """

    output_format = "foa"
    sample_rate = 8000
    clip_seconds = 2.0
    frame_rates = {"enc": 4.0}  # noqa: RUF012

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def pipeline_config(self):
        return {"kind": self.kind}

    @classmethod
    def from_pipeline_config(cls, config):
        return cls()


def make_video(path: Path, seconds: float, fps: float = 8.0) -> Path:
    """A 32x48 video of ``seconds`` (at least one frame) with a constant red level, parents created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = torch.zeros(max(1, int(seconds * fps)), 3, 32, 48, dtype=torch.uint8)
    frames[:, 0] = 200
    return write_video(path, frames, fps)
