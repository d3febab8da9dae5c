"""``VisualDirectionModule``: pretrain a visual encoder to see where the sound comes from.

The pretext task of :mod:`spatialgen.data.frame_direction`: from one video frame, predict the unit
direction (camera frame) of the sound heard during that frame, measured from the clip's FOA. A linear
head on the encoder's global feature predicts it; the loss is the reliability-weighted squared error.
Horizontal flips (``flip_prob``) mirror the picture and negate the left component (+y) of the label:
the mirrored scene is an equally valid one.

After training, only the encoder is kept (``export_path``, or :meth:`VisualDirectionModule.export_encoder`):
a plain state dict that ``create_encoder(name, pretrained=<path>)`` — and so the ViSAudio / ViSAGe
recipes' ``encoder_pretrained`` — load strictly. The generative models then
train on top of an encoder that, like the published ones, knows where things are in the picture.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from safetensors.torch import save_file
from torch import Tensor, nn

from spatialgen.encoders import VisualEncoder, create_encoder
from spatialgen.io.audio import atomic_output
from spatialgen.training.base import SpatialAudioModule

__all__ = ["DirectionHead", "VisualDirectionModule", "angle_errors_deg"]

LATERAL = math.sin(math.radians(20.0))  # |left component| above this: the source is clearly on one side


class DirectionHead(nn.Module):
    """Encoder + linear read-out of a direction ``[N, 3]`` from single frames ``[N, 3, H, W]``."""

    def __init__(self, encoder: VisualEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, 3)

    def forward(self, frames: Tensor) -> Tensor:
        """Frames uint8 (0..255) or float (0..1) -> predicted direction vectors (not normalised)."""
        return self.head(self.encoder(frames[:, None]).global_features[:, 0])


def angle_errors_deg(pred: Tensor, target: Tensor) -> Tensor:
    """Great-circle angle in degrees between the directions of ``pred`` and unit ``target`` ``[N, 3]``."""
    cos = (nn.functional.normalize(pred, dim=-1) * target).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


class VisualDirectionModule(SpatialAudioModule):
    """Trains ``encoder`` (all of it) and a linear head on the frame-direction task.

    Args:
        encoder: visual encoder registry name (``tiny`` for the CPU recipes).
        encoder_kwargs: its options (e.g. ``{embed_dim: 32, input_size: [64, 64]}``).
        encoder_pretrained: start from published weights (True), random (False) or a weights path.
        flip_prob: probability of the mirrored training example (picture flipped, label's +y negated).
        reliable_weight: validation scores count frames of at least this label weight.
        export_path: write the trained encoder's weights here (``.safetensors``) when ``fit`` ends.
        optimizer, lr_scheduler, lr_interval, compile, max_bad_steps: see :class:`SpatialAudioModule`.
    """

    def __init__(
        self,
        encoder: str = "tiny",
        encoder_kwargs: Mapping[str, Any] | None = None,
        encoder_pretrained: bool | str = False,
        flip_prob: float = 0.5,
        reliable_weight: float = 0.5,
        export_path: str | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, lr_interval, compile, max_bad_steps)
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        built = create_encoder(encoder, pretrained=encoder_pretrained, **dict(encoder_kwargs or {}))
        self.network = DirectionHead(built.unfreeze())
        self.flip_prob = float(flip_prob)
        self.reliable_weight = float(reliable_weight)
        self.export_path = export_path

    @property
    def encoder(self) -> VisualEncoder:
        """The encoder being trained."""
        return self.network.encoder

    def compute_loss(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted squared error of the predicted direction; logs angle error and side error."""
        frames, target, weight = batch
        if self.training and self.flip_prob > 0:
            flip = torch.rand(frames.shape[0], device=frames.device) < self.flip_prob
            frames = torch.where(flip[:, None, None, None], frames.flip(-1), frames)
            target = torch.where(flip[:, None], target * target.new_tensor([1.0, -1.0, 1.0]), target)
        pred = self.network(frames)
        loss = (weight * (pred - target).square().sum(-1)).sum() / weight.sum().clamp_min(1e-8)
        with torch.no_grad():
            good = weight >= self.reliable_weight
            logs = (
                {"angle_error_deg": angle_errors_deg(pred[good], target[good]).mean()} if good.any() else {}
            )
            lateral = good & (target[:, 1].abs() > LATERAL)
            if lateral.any():
                logs["side_error"] = (pred[lateral, 1].sign() != target[lateral, 1].sign()).float().mean()
        return loss, logs

    def export_encoder(self, path: str | os.PathLike) -> Path:
        """Write the encoder's state dict (safetensors, atomically) for ``create_encoder(pretrained=path)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
        with atomic_output(path) as tmp:
            save_file(state, str(tmp), metadata={"encoder": self.hparams.encoder, "format": "pt"})
        return path

    def on_fit_end(self) -> None:
        """Export the encoder when ``export_path`` is set (rank 0 only)."""
        if self.export_path and self.trainer.is_global_zero:
            self.export_encoder(self.export_path)
