"""Rotary position embeddings (RoPE) with real-valued, possibly fractional, positions.

Pairs are *interleaved* (channels ``2i`` and ``2i+1`` form pair ``i``), the layout MMAudio's released
weights were trained with; pair ``i`` rotates by ``pos * theta ** (-2i / dim)``. Positions are floats, so
streams at different rates can share one time axis (a video token at ``t`` seconds gets position
``t * latent_rate``), which is what time-aligned multimodal attention needs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_rope", "rope_angles", "rope_frequencies"]


def rope_frequencies(dim: int, theta: float = 10000.0, *, device: torch.device | str | None = None) -> Tensor:
    """Angular frequency of each of the ``dim // 2`` rotation pairs, float64 ``[dim // 2]``."""
    if dim <= 0 or dim % 2:
        raise ValueError(f"RoPE dim must be a positive even number, got {dim}")
    exponent = torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim
    return float(theta) ** (-exponent)


def rope_angles(positions: Tensor, dim: int, theta: float = 10000.0) -> Tensor:
    """Rotation angles ``[..., N, dim // 2]`` (float64) for positions ``[..., N]`` (any real values)."""
    freqs = rope_frequencies(dim, theta, device=positions.device)
    return positions.to(torch.float64)[..., None] * freqs


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of ``x [..., N, dim]`` by ``angles [..., N, dim // 2]``.

    ``angles`` broadcasts against ``x`` without its last axis (e.g. ``[N, d/2]`` against
    ``[B, H, N, d]``). The rotation runs in float32 (float64 for float64 inputs) and returns ``x.dtype``.
    """
    if x.shape[-1] != 2 * angles.shape[-1]:
        raise ValueError(f"angles last dim {angles.shape[-1]} must be half of x last dim {x.shape[-1]}")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    pairs = x.to(work).unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    cos, sin = torch.cos(angles).to(work), torch.sin(angles).to(work)
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
