"""Binaural cues measured from ``[..., 2, T]`` signals (ears ``[L, R]``), shared by tests and metrics.

Sign conventions (the README's conventions), all "positive = left":

- ILD ``= 10·log10(E_L / E_R)`` dB: positive when the left ear is louder.
- ITD in seconds: positive when the left ear leads (hears the sound earlier).
- IPD ``= ∠(L · R*)`` radians: positive when the left ear's phase leads (a left lead of ``d`` seconds
  gives ``+2π f d`` at frequency ``f``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spatialgen.spatial.checks import check_binaural

__all__ = ["check_binaural", "ild", "ipd", "itd"]

Band = tuple[float, float] | None


def _band_mask(n_fft: int, sample_rate: float, band: Band, device: torch.device) -> Tensor:
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate, device=device, dtype=torch.float64)
    if band is None:
        return torch.ones_like(freqs, dtype=torch.bool)
    lo, hi = band
    if not 0 <= lo < hi:
        raise ValueError(f"band must be (low, high) Hz with 0 <= low < high, got {band}")
    mask = (freqs >= lo) & (freqs <= hi)
    if not bool(mask.any()):
        raise ValueError(f"band {band} Hz contains no frequency bin at sample_rate={sample_rate}")
    return mask


def ild(binaural: Tensor, sample_rate: float, band: Band = None, eps: float = 1e-20) -> Tensor:
    """Interaural level difference in dB ``[...]``: ``10·log10(E_L / E_R)`` (> 0: left louder).

    ``band=(low, high)`` Hz restricts the energies to that band (from one FFT of the whole signal).
    """
    check_binaural(binaural)
    x = binaural.to(torch.float64)
    if band is None:
        energy = x.square().sum(-1)
    else:
        n = x.shape[-1]
        spec = torch.fft.rfft(x, n=n)
        energy = (spec.abs().square() * _band_mask(n, sample_rate, band, x.device)).sum(-1)
    out = 10.0 * torch.log10((energy[..., 0] + eps) / (energy[..., 1] + eps))
    return out.to(binaural.dtype)


def itd(
    binaural: Tensor,
    sample_rate: float,
    max_lag_ms: float = 1.0,
    band: Band = (50.0, 1500.0),
    upsample: int = 16,
) -> Tensor:
    """Interaural time difference in seconds ``[...]`` by band-limited GCC-PHAT (> 0: left leads).

    The PHAT-weighted cross-spectrum ``R·L*`` (restricted to ``band``, default 50–1500 Hz where the
    phase is unambiguous) is inverse-transformed with ``upsample``× zero padding (band-limited
    interpolation), the peak is searched within ±``max_lag_ms`` and refined by a parabola.
    """
    check_binaural(binaural)
    if max_lag_ms <= 0 or upsample < 1:
        raise ValueError(f"itd: max_lag_ms must be > 0 and upsample >= 1, got {max_lag_ms}, {upsample}")
    x = binaural.to(torch.float64)
    n = 1 << (2 * x.shape[-1] - 1).bit_length()  # linear (not circular) correlation
    spec = torch.fft.rfft(x, n=n)
    cross = spec[..., 1, :] * spec[..., 0, :].conj()
    cross = cross / cross.abs().clamp_min(1e-30) * _band_mask(n, sample_rate, band, x.device)
    m = n * upsample
    cc = torch.fft.irfft(cross, n=m)
    rate = sample_rate * upsample
    max_lag = min(math.ceil(max_lag_ms * 1e-3 * rate), m // 2 - 1)
    window = torch.cat([cc[..., m - max_lag :], cc[..., : max_lag + 1]], dim=-1)  # lags -max..+max
    peak = window.argmax(-1, keepdim=True)
    left = window.gather(-1, (peak - 1).clamp_min(0))
    mid = window.gather(-1, peak)
    right = window.gather(-1, (peak + 1).clamp_max(window.shape[-1] - 1))
    denom = left - 2 * mid + right
    shift = torch.where(denom.abs() > 1e-30, 0.5 * (left - right) / denom, torch.zeros_like(denom))
    lag = (peak.to(torch.float64) + shift.clamp(-0.5, 0.5) - max_lag).squeeze(-1)
    return (lag / rate).to(binaural.dtype)


def ipd(
    binaural: Tensor,
    sample_rate: float,
    n_fft: int = 512,
    hop_length: int | None = None,
    band: Band = None,
) -> Tensor:
    """Interaural phase difference ``∠(L·R*)`` in radians, per STFT bin: ``[..., F, frames]``.

    Hann-windowed STFT (``center=True``); ``band=(low, high)`` Hz keeps only the bins inside it.
    Weight by ``|L|·|R|`` when averaging, since the phase of near-silent bins is noise.
    """
    check_binaural(binaural)
    hop = hop_length or n_fft // 4
    x = binaural.to(torch.float64)
    flat = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(n_fft, dtype=torch.float64, device=x.device)
    pad_mode = "reflect" if flat.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode=pad_mode, return_complex=True)
    spec = spec.reshape(*x.shape[:-1], *spec.shape[-2:])
    phase = torch.angle(spec[..., 0, :, :] * spec[..., 1, :, :].conj())
    phase = phase[..., _band_mask(n_fft, sample_rate, band, x.device), :]
    return phase.to(binaural.dtype)
