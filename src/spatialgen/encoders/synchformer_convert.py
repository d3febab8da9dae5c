"""Convert the released Synchformer checkpoint to :class:`~spatialgen.encoders.synchformer.SynchformerVisual`.

Official layout (MMAudio ``ext_weights/synchformer_state_dict.pth``; the visual branch is everything
under ``vfeat_extractor.``, a MotionFormer; other prefixes such as the audio branch are dropped):

================================================  ====================================
official key (after ``vfeat_extractor.``)         ours
================================================  ====================================
``patch_embed_3d.proj.{weight,bias}`` (Conv3d)    ``patch_embed.{weight,bias}``
``patch_embed.proj.{weight,bias}`` (2-D, unused)  dropped
``cls_token``, ``pos_embed``, ``norm.*``          same
``temp_embed``                                    ``time_embed``
``blocks.i.norm3`` / ``timeattn.{qkv,proj}``      ``blocks.i.norm_time`` / ``time_attn.*``
``blocks.i.norm1`` / ``attn.{qkv,proj}``          ``blocks.i.norm_space`` / ``space_attn.*``
``blocks.i.norm2`` / ``mlp.fc{1,2}``              ``blocks.i.norm_mlp`` / ``mlp.fc{1,2}``
``spatial_attn_agg.cls_token``                    ``spatial_pool.cls_token``
``spatial_attn_agg.self_attn.in_proj_{weight,b}`` ``spatial_pool.qkv.{weight,bias}``
``spatial_attn_agg.self_attn.out_proj.*``         ``spatial_pool.proj.*``
``spatial_attn_agg.norm{1,2}.*``                  ``spatial_pool.norm{1,2}.*``
``spatial_attn_agg.linear{1,2}.*``                ``spatial_pool.mlp.fc{1,2}.*``
================================================  ====================================

``nn.MultiheadAttention.in_proj_weight`` stacks [q; k; v] along the output axis, the same layout as a
fused ``qkv`` Linear, so tensors are copied unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

__all__ = ["convert_synchformer_state_dict", "is_official_layout"]

_PREFIX = "vfeat_extractor."
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^patch_embed_3d\.proj\.", "patch_embed."),
        (r"^temp_embed$", "time_embed"),
        (r"^blocks\.(\d+)\.norm3\.", r"blocks.\1.norm_time."),
        (r"^blocks\.(\d+)\.timeattn\.", r"blocks.\1.time_attn."),
        (r"^blocks\.(\d+)\.norm1\.", r"blocks.\1.norm_space."),
        (r"^blocks\.(\d+)\.attn\.", r"blocks.\1.space_attn."),
        (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm_mlp."),
        (r"^spatial_attn_agg\.self_attn\.in_proj_(weight|bias)$", r"spatial_pool.qkv.\1"),
        (r"^spatial_attn_agg\.self_attn\.out_proj\.", "spatial_pool.proj."),
        (r"^spatial_attn_agg\.linear(\d)\.", r"spatial_pool.mlp.fc\1."),
        (r"^spatial_attn_agg\.", "spatial_pool."),
    ]
]
_DROP = re.compile(r"^patch_embed\.proj\.")


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True for a Synchformer/MotionFormer checkpoint (with or without the ``vfeat_extractor.`` prefix)."""
    return any(
        k.startswith(_PREFIX) or k.startswith("patch_embed_3d.") or ".timeattn." in k for k in state_dict
    )


def convert_synchformer_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official Synchformer keys -> ``SynchformerVisual`` keys (see the module table)."""
    if any(k.startswith(_PREFIX) for k in state_dict):
        state_dict = {k[len(_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(_PREFIX)}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if _DROP.match(key):
            continue
        new = key
        for pattern, repl in _RULES:
            new, hits = pattern.subn(repl, key)
            if hits:
                break
        out[new] = value
    return out
