"""Batching of items (:mod:`spatialgen.data.clips`): pad every time axis to the longest and add masks.

Batch keys: the item keys, stacked, plus a boolean ``<key>_mask`` (``True`` = real data) for each
padded time axis: ``video_mask [B, T]`` (also for ``camera_pose``), ``audio_mask [B, S]``,
``codes_mask``/``latents_mask [B, F]``, and ``features_mask[name] [B, T_e]`` (also for
``patch_tokens``). Padding is zero, except ``codes`` which are padded with −1 (never a valid code).
Rates (``sample_rate``, ``video_fps``, ``codec_frame_rate``, ``features_fps``) must agree within a
batch and stay scalars; strings and label lists become lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["TIME_DIMS", "collate_items", "pad_stack"]

#: time axis of each padded tensor key
TIME_DIMS = {"video": 0, "camera_pose": 0, "audio": -1, "codes": -1, "latents": -1}
_MASK_OF = {
    "video": "video_mask",
    "camera_pose": "video_mask",
    "audio": "audio_mask",
    "codes": "codes_mask",
    "latents": "latents_mask",
}
_RATES = ("sample_rate", "video_fps", "codec_frame_rate")


def pad_stack(
    tensors: Sequence[torch.Tensor], dim: int, value: float = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors that differ only along ``dim``, padding with ``value``; returns ``(batch, mask [B, L])``."""
    dim = dim % tensors[0].dim()
    lengths = [t.shape[dim] for t in tensors]
    longest = max(lengths)
    shapes = {tuple(s for i, s in enumerate(t.shape) if i != dim) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"cannot batch tensors whose shapes differ outside dim {dim}: {sorted(shapes)}")
    out = tensors[0].new_full(
        (len(tensors), *tensors[0].shape[:dim], longest, *tensors[0].shape[dim + 1 :]), value
    )
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
    for i, (t, n) in enumerate(zip(tensors, lengths)):
        out[i].narrow(dim, 0, n).copy_(t)
        mask[i, :n] = True
    return out, mask


def _same(items: Sequence[dict[str, Any]], key: str) -> Any:
    values = {item[key] for item in items}
    if len(values) > 1:
        raise ValueError(f"items of one batch have different {key}: {sorted(values)}")
    return values.pop()


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch a list of items (see the module docstring); all items must have the same keys."""
    if not items:
        raise ValueError("collate_items: empty batch")
    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            raise ValueError(f"items of one batch have different keys: {sorted(keys ^ set(item))}")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in TIME_DIMS:
            batch[key], mask = pad_stack(values, TIME_DIMS[key], -1 if key == "codes" else 0)
            batch[_MASK_OF[key]] = mask
        elif key in _RATES:
            batch[key] = _same(items, key)
        elif key == "features_fps":
            batch[key] = {name: _same(values, name) for name in values[0]}
        elif key in ("features", "patch_tokens"):
            batch[key], masks = {}, {}
            for name in values[0]:
                batch[key][name], masks[name] = pad_stack([v[name] for v in values], 0)
            batch.setdefault("features_mask", masks)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch
