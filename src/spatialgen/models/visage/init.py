"""Stage-2 initialisation: a FOA ViSAGe from the stage-1 mono checkpoint.

As jaeyeonkim99/visage ``modeling/visage.py`` ``init_spatial_from_pretrained`` does.

Every mono weight loads by name; the per-stream token tables and heads of level q are copied to all
channels (``stream c * Q + q <- mono stream q``), so Y/Z/X start as copies of W. Modules the mono
model lacks (direction MLP, energy-map MLP and their nulls) keep their fresh init.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from spatialgen.models.visage.model import ViSAGe

__all__ = ["init_foa_from_mono"]

_STREAM_KEYS = ("decoder.token_embedding", "heads.weight", "heads.bias")


@torch.no_grad()
def init_foa_from_mono(foa_model: ViSAGe, mono_state_dict: Mapping[str, Tensor]) -> ViSAGe:
    """Load ``mono_state_dict`` (our layout, 1 channel; convert an official one with ``convert_official``)
    into ``foa_model`` and replicate W's stream tables/heads to every channel. Returns ``foa_model``.

    Raises:
        ValueError: a mono key the FOA model does not have, or a shape that does not match.
    """
    cfg = foa_model.config
    Q = cfg.num_codebooks
    target = foa_model.state_dict()
    unknown = sorted(set(mono_state_dict) - set(target))
    if unknown:
        raise ValueError(f"init_foa_from_mono: mono keys not in the FOA model: {unknown}")
    new: dict[str, Tensor] = {}
    for key, value in mono_state_dict.items():
        want = target[key].shape
        if key in _STREAM_KEYS:
            if value.shape[0] != Q or value.shape[1:] != want[1:]:
                raise ValueError(
                    f"init_foa_from_mono: {key} has shape {tuple(value.shape)}, expected {Q} mono streams "
                    f"of {tuple(want[1:])}"
                )
            value = value.repeat(cfg.num_channels, *([1] * (value.ndim - 1)))  # stream c*Q+q <- q
        elif value.shape != want:
            raise ValueError(
                f"init_foa_from_mono: {key} has shape {tuple(value.shape)}, expected {tuple(want)}"
            )
        new[key] = value
    foa_model.load_state_dict(new, strict=False)
    return foa_model
