"""Helpers shared by the functional metrics: degenerate-input detection and NaN warnings."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = ["is_constant", "warn_nan"]


def is_constant(v: Tensor, rtol: float = 1e-9) -> Tensor:
    """True where the vector ``[..., n]`` is constant up to ``rtol`` of its largest magnitude (or all 0).

    Used before z-scoring or min-max normalising: a constant map (silence, W only) would otherwise give
    0/0 or a score made of round-off.
    """
    span = v.amax(-1) - v.amin(-1)
    scale = v.abs().amax(-1)
    return span <= rtol * scale.clamp_min(torch.finfo(v.dtype).tiny)


def warn_nan(what: str, count: int, total: int, why: str) -> None:
    """One warning naming how many of ``total`` values became NaN and why."""
    if count:
        warnings.warn(f"{what}: {count} of {total} value(s) are NaN ({why})", RuntimeWarning, stacklevel=3)
