"""Small ViSAGe networks and inputs shared by the tests."""

import pytest
import torch

from spatialgen.models.visage import ViSAGe, get_config


def make_inputs(cfg, batch, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    T = cfg.source_length
    visual = torch.randn(batch, T, cfg.d_visual, generator=g, dtype=dtype)
    energy = (
        torch.rand(batch, T, cfg.energy_map_dim, generator=g, dtype=dtype) if cfg.energy_map_dim else None
    )
    direction = None
    if cfg.use_direction:
        direction = torch.nn.functional.normalize(torch.randn(batch, 3, generator=g, dtype=dtype), dim=-1)
    codes = torch.randint(
        0, cfg.codebook_size, (batch, cfg.num_channels, cfg.num_codebooks, cfg.num_frames), generator=g
    )
    return visual, energy, direction, codes


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one intra-op thread (see ``tests/conftest.py``)."""


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model = ViSAGe(get_config("visage_tiny", dropout=0.0)).eval()
    # Bigger weights than the 0.02 init so that logits (and guidance) are far from uniform.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.decoder.token_embedding[:, model.config.pad_token].zero_()
    return model
