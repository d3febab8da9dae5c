"""Shared helpers for the ViSAudio tests: tiny configs, random features, fully random weights."""

from __future__ import annotations

import pytest
import torch

from spatialgen.models.visaudio import ViSAudioNet, visaudio_config


def randomize_(net: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Overwrite every parameter with random values (zero-init adaLN/outputs would hide all behaviour)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            p.copy_(1 + scale * noise if name.endswith(("q_norm.weight", "k_norm.weight")) else scale * noise)
    return net


def make_features(cfg, batch: int, duration: float | None = None, seed: int = 1, dtype=torch.float64):
    """Random (clip, sync, pe) features at the config's rates for ``duration`` (default: the config's) seconds."""
    duration = duration or cfg.duration
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    return (
        r(batch, cfg.clip_len(duration), cfg.clip_dim),
        r(batch, cfg.sync_len(duration), cfg.sync_dim),
        r(batch, cfg.pe_len(duration), cfg.pe_tokens, cfg.pe_dim),
    )


@pytest.fixture
def tiny_cfg():
    """The "tiny" CPU config at 1 s (keeps every test fast)."""
    return visaudio_config("tiny", duration=1.0)


@pytest.fixture
def tiny_net(tiny_cfg):
    """A float64 tiny network with all weights random."""
    return randomize_(ViSAudioNet(tiny_cfg).double()).eval()
