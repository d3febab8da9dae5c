"""Augmentations that keep labels true (applied to items of :mod:`spatialgen.data.clips`).

- :func:`rotate_foa_yaw`: rotate the sound field about the vertical axis by any angle δ (a source
  at azimuth φ moves to φ + δ) and move ``camera_direction``/``camera_pose`` by the same δ, so the
  scene relative to the camera is unchanged; the video is untouched (the view is the same, only the
  frame of reference turns). ViSAGe's only rotation is the special case δ = +90° of the label's yaw.
- :func:`swap_binaural`: swap ``[L, R]`` and flip the video horizontally: a mirrored scene.
- :func:`mirror_foa`: the same mirror for FOA: negate Y (the left-right dipole) and flip the video.
  Without it a small dataset lets a model recall each clip's side from its sound alone; with it the
  same sound comes from both sides and only the picture tells which.
CFG dropout of conditions is the model's job, not the data's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch

from spatialgen.spatial import foa

__all__ = ["Augment", "mirror_foa", "rotate_foa_yaw", "swap_binaural"]


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return math.pi - torch.remainder(math.pi - x, 2 * math.pi)


def rotate_foa_yaw(item: dict[str, Any], angle: float) -> dict[str, Any]:
    """A copy of a FOA ``item`` with the sound field and camera label turned by ``angle`` radians (left)."""
    if item.get("audio_format") != "foa" or "audio" not in item:
        raise ValueError("rotate_foa_yaw needs an item with FOA audio (format='foa', raw audio)")
    if "codes" in item or "latents" in item:
        raise ValueError("rotate_foa_yaw cannot rotate cached codes/latents; use source='raw' audio")
    out = dict(item)
    audio = item["audio"]
    # rotate() applies the camera pose Rᵀ: a camera turned by −δ hears every source δ further left.
    out["audio"] = foa.rotate(audio.double(), -float(angle)).to(audio.dtype)
    direction = item["camera_direction"].clone()
    direction[0] = _wrap(direction[0].double() + angle).to(direction.dtype)
    out["camera_direction"] = direction
    if "camera_pose" in item:
        pose = item["camera_pose"].clone()
        pose[:, 0] = pose[:, 0] + angle
        out["camera_pose"] = pose
    return out


def swap_binaural(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of a binaural ``item`` mirrored left/right: channels swapped, video flipped horizontally."""
    if item.get("audio_format") != "binaural" or "audio" not in item:
        raise ValueError("swap_binaural needs an item with binaural audio (format='binaural', raw audio)")
    if "features" in item or "codes" in item or "latents" in item:
        raise ValueError("swap_binaural cannot mirror cached features/codes; use source='raw' media")
    out = _mirror_labels(item)
    out["audio"] = item["audio"].flip(0)
    return out


def mirror_foa(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of a FOA ``item`` mirrored left/right (y -> -y): Y negated, video flipped horizontally.

    Works in both frames: a camera-frame field mirrors with its picture; a world-frame field mirrors
    with the camera label (its azimuth and the pose's yaw and roll change sign).
    """
    if item.get("audio_format") != "foa" or "audio" not in item:
        raise ValueError("mirror_foa needs an item with FOA audio (format='foa', raw audio)")
    if "features" in item or "codes" in item or "latents" in item:
        raise ValueError("mirror_foa cannot mirror cached features/codes; use source='raw' media")
    out = _mirror_labels(item)
    audio = item["audio"].clone()
    audio[1] = -audio[1]  # AmbiX [W, Y, Z, X]: Y is the only channel odd in y
    out["audio"] = audio
    return out


def _mirror_labels(item: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``item`` with the video flipped horizontally and the camera labels mirrored (audio untouched)."""
    out = dict(item)
    if "video" in item:
        out["video"] = item["video"].flip(-1)
    if "camera_pose" in item:  # a mirrored camera turns and rolls the other way
        pose = item["camera_pose"].clone()
        pose[:, 0], pose[:, 2] = -pose[:, 0], -pose[:, 2]
        out["camera_pose"] = pose
    direction = item["camera_direction"].clone()
    direction[0] = -direction[0]
    out["camera_direction"] = direction
    return out


class Augment:
    """Random label-preserving augmentation for training items.

    Args:
        rotate_prob: probability of a FOA yaw rotation (FOA items only).
        rotate_angles_deg: angles to choose from (degrees); ``None`` draws uniformly from [−180, 180).
        swap_prob: probability of a left/right mirror with a horizontal video flip: binaural channels
            swapped (:func:`swap_binaural`), FOA Y negated (:func:`mirror_foa`).
        seed: base seed; draws depend on ``(seed, clip_id, epoch)`` only, so workers agree.
    """

    def __init__(
        self,
        rotate_prob: float = 0.0,
        rotate_angles_deg: Sequence[float] | None = None,
        swap_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        for name, p in (("rotate_prob", rotate_prob), ("swap_prob", swap_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p!r}")
        if rotate_angles_deg is not None and len(rotate_angles_deg) == 0:
            raise ValueError("rotate_angles_deg must be a non-empty list of degrees or None")
        self.rotate_prob = float(rotate_prob)
        self.rotate_angles_deg = None if rotate_angles_deg is None else [float(a) for a in rotate_angles_deg]
        self.swap_prob = float(swap_prob)
        self.seed = int(seed)

    @property
    def active(self) -> bool:
        """Whether any augmentation can happen."""
        return self.rotate_prob > 0 or self.swap_prob > 0

    def __call__(self, item: dict[str, Any], epoch: int = 0) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}/{item.get('clip_id')}/{epoch}")
        fmt = item.get("audio_format")
        if fmt == "foa" and self.rotate_prob > 0 and rng.random() < self.rotate_prob:
            if self.rotate_angles_deg is None:
                angle = rng.uniform(-180.0, 180.0)
            else:
                angle = rng.choice(self.rotate_angles_deg)
            item = rotate_foa_yaw(item, math.radians(angle))
        if fmt in ("binaural", "foa") and self.swap_prob > 0 and rng.random() < self.swap_prob:
            item = swap_binaural(item) if fmt == "binaural" else mirror_foa(item)
        return item
