"""Input validation shared by every spatial function: one place, one wording for bad audio."""

from __future__ import annotations

import torch
from torch import Tensor

from spatialgen.errors import InvalidAudioError

__all__ = ["all_finite", "check_audio", "check_binaural", "check_foa", "check_sample_rate"]

_LAYOUTS = {
    None: "audio [..., samples]",
    2: "2 ear channels, binaural [..., 2, samples] ([L, R])",
    4: "4 FOA channels [..., 4, samples] (AmbiX W, Y, Z, X)",
}


def all_finite(x: Tensor) -> bool:
    """True when ``x`` holds no NaN or Inf; one cheap reduction instead of a full ``isfinite`` scan.

    A NaN or Inf anywhere makes the sum NaN or Inf (IEEE: Inf + finite = Inf, Inf - Inf = NaN, NaN
    absorbs), so a finite sum proves a finite tensor. A non-finite sum can also come from finite values
    overflowing, so only then is the exact elementwise test run. ``torch.isfinite(x).all()`` allocates a
    boolean tensor the size of ``x`` and costs 20-50x more than ``x.sum()`` on a minute of audio.
    """
    if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
        return True
    if bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())


def check_audio(x: object, name: str = "x", channels: int | None = None) -> Tensor:
    """Return ``x`` unchanged if it is a finite, non-empty floating tensor with ``channels`` at dim -2.

    Raises:
        InvalidAudioError: a one-line message starting with ``name`` that says what is wrong.
    """
    layout = _LAYOUTS.get(channels, f"[..., {channels}, samples]")
    if not isinstance(x, Tensor):
        raise InvalidAudioError(f"{name}: expected a torch.Tensor {layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidAudioError(
            f"{name}: expected a floating-point tensor, got {x.dtype}; convert with .float()"
        )
    min_dim = 1 if channels is None else 2
    if x.dim() < min_dim or (channels is not None and x.shape[-2] != channels):
        raise InvalidAudioError(f"{name}: expected {layout}, got shape {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise InvalidAudioError(f"{name}: has zero samples (shape {tuple(x.shape)}); pass non-empty audio")
    if not all_finite(x):
        raise InvalidAudioError(f"{name}: contains NaN or Inf values; clean or drop this audio")
    return x


def check_foa(x: object, name: str = "x") -> Tensor:
    """Validate AmbiX FOA ``[..., 4, T]`` (see :func:`check_audio`)."""
    return check_audio(x, name, 4)


def check_binaural(x: object, name: str = "binaural") -> Tensor:
    """Validate binaural ``[..., 2, T]`` (see :func:`check_audio`)."""
    return check_audio(x, name, 2)


def check_sample_rate(sample_rate: float, name: str = "sample_rate") -> int:
    """A positive integer rate in Hz, else ``ValueError``."""
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"{name} must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)
