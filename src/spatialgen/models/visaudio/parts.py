"""Building a ViSAudio pipeline's parts and the network config they imply.

Split from :mod:`spatialgen.models.visaudio.pipeline`, which uses both (and re-exports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from spatialgen.codecs import create_codec
from spatialgen.codecs.base import AudioCodec
from spatialgen.encoders import SynchformerEncoder, VisualEncoder, create_encoder
from spatialgen.models.visaudio.config import ViSAudioConfig

__all__ = ["ROLES", "build_part", "derive_network_config"]

#: the visual roles of the conditional spacetime module
ROLES = ("clip", "sync", "pe")


def build_part(
    kind: str, name: str, kwargs: Mapping[str, Any] | None, pretrained: bool | str, seed: int
) -> nn.Module:
    """Build encoder/codec ``name`` with ``torch.manual_seed(seed)`` scoped to the build.

    Randomly initialised parts (``tiny`` encoders, ``pretrained=False`` towers) thus get the same
    weights every time, the same as :class:`spatialgen.data.features.Featurizer` with that seed builds
    for a cache of a single encoder.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "codec":
            return create_codec(name, pretrained=pretrained, **dict(kwargs or {}))
        return create_encoder(name, pretrained=pretrained, **dict(kwargs or {}))


def derive_network_config(
    base: ViSAudioConfig,
    codec: AudioCodec,
    encoders: Mapping[str, VisualEncoder],
    clip_seconds: float,
) -> ViSAudioConfig:
    """``base`` with the latent size/rate of ``codec`` and the widths/rates/grid of the role ``encoders``.

    A Synchformer in the ``sync`` role keeps its 16-frame segments (hop 8, 8 tokens); any other encoder
    there gives one token per frame (segments of one frame) at its output rate.
    """
    clip, sync, pe = (encoders[r] for r in ROLES)
    if pe.patch_dim is None or pe.patch_grid is None:
        raise ValueError(f"the 'pe' role needs an encoder with patch tokens; {pe.name!r} has none")
    changes: dict[str, Any] = {
        "latent_dim": codec.latent_dim,
        "latent_rate": codec.frame_rate,
        "clip_dim": clip.embed_dim,
        "clip_fps": clip.output_fps,
        "sync_dim": sync.embed_dim,
        "pe_dim": pe.patch_dim,
        "pe_grid": tuple(pe.patch_grid),
        "pe_fps": pe.output_fps,
        "duration": float(clip_seconds),
    }
    if isinstance(sync, SynchformerEncoder):
        sc = sync.config
        changes.update(
            sync_fps=sync.fps,
            sync_segment=sc.segment_frames,
            sync_stride=sc.segment_stride,
            sync_tokens_per_segment=sc.slots,
        )
    else:
        changes.update(sync_fps=sync.output_fps, sync_segment=1, sync_stride=1, sync_tokens_per_segment=1)
    return base.replace(**changes)
