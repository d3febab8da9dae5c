"""Interaural metrics binaural papers report after ViSAudio: IACC, per-band ILD / IPD errors, and the
per-second left/right balance agreement of stereo or binaural ``[B, 2, T]`` (``[L, R]``) audio.

- IACC (ISO 3382-1): ``max_{|τ| ≤ 1 ms} |Σ_t L(t) R(t+τ)| / sqrt(Σ L² Σ R²)``; the error is
  ``|IACC_p − IACC_g|``.
- Per-band ILD / IPD errors: the per-bin errors of :func:`~spatialgen.metrics.functional.binaural.ild_error`
  and :func:`~spatialgen.metrics.functional.binaural.ipd_error` restricted to the STFT bins of one band
  (:data:`BANDS`: below 500 Hz, 0.5–1.5 kHz where IPD still codes direction, 1.5–4 kHz, above 4 kHz where
  ILD dominates).
- Left/right balance ``b = (E_L − E_R)/(E_L + E_R)`` per block of ``frame`` seconds; the agreement is the
  fraction of blocks where the truth is clearly lateral (``|b_g| ≥ threshold``; 0.1 ≈ 0.87 dB) whose
  prediction leans the same way.

Blocks or clips silent in either signal (below −100 dBFS, or ``silence_db`` under the clip's loudest
block) have no cue: they are skipped, and a clip without any cue is NaN with a warning, never a number.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spatialgen.metrics.functional._common import warn_nan
from spatialgen.metrics.functional.binaural import _pair, stft

__all__ = [
    "BANDS",
    "band_ild_error",
    "band_ipd_error",
    "band_key",
    "iacc",
    "iacc_error",
    "lr_balance",
    "lr_balance_agreement",
]

#: (low, high) Hz; None = Nyquist
BANDS: tuple[tuple[float, float | None], ...] = (
    (0.0, 500.0),
    (500.0, 1500.0),
    (1500.0, 4000.0),
    (4000.0, None),
)
_FLOOR = 1e-10  # -100 dBFS mean square


def band_key(band: tuple[float, float | None]) -> str:
    """``(500, 1500)`` -> ``"500_1500hz"``; ``(4000, None)`` -> ``"4000hz_up"``."""
    lo, hi = band
    return f"{lo:g}hz_up" if hi is None else f"{lo:g}_{hi:g}hz"


def _silent(x: Tensor) -> Tensor:
    return x.square().mean((-2, -1)) <= _FLOOR


def iacc(x: Tensor, sample_rate: int, max_lag_ms: float = 1.0) -> Tensor:
    """Interaural cross-correlation coefficient of ``[..., 2, T]`` -> ``[...]`` float64 (NaN if silent)."""
    a = x.to(torch.float64)
    n = a.shape[-1]
    size = 1 << (2 * n - 1).bit_length()  # linear correlation
    spec = torch.fft.rfft(a, n=size)
    cc = torch.fft.irfft(spec[..., 1, :] * spec[..., 0, :].conj(), n=size)  # lag τ: Σ L(t) R(t+τ)
    lag = min(math.ceil(max_lag_ms * 1e-3 * sample_rate), n - 1)
    window = torch.cat([cc[..., size - lag :], cc[..., : lag + 1]], -1)
    norm = (a[..., 0, :].square().sum(-1) * a[..., 1, :].square().sum(-1)).sqrt()
    out = window.abs().amax(-1) / norm.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(_silent(a) | (norm == 0), torch.full_like(out, math.nan), out)


def iacc_error(pred: Tensor, target: Tensor, sample_rate: int) -> Tensor:
    """``|IACC_p − IACC_g|`` per clip ``[B]``; NaN (with a warning) where either clip is silent."""
    p, g = _pair(pred, target)
    err = (iacc(p, sample_rate) - iacc(g, sample_rate)).abs()
    warn_nan("iacc_error", int(err.isnan().sum()), err.numel(), "silent prediction or ground truth")
    return err


def _band_bins(
    sample_rate: int, band: tuple[float, float | None], n_fft: int, device: torch.device
) -> Tensor:
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).to(device)
    lo, hi = band
    mask = (freqs >= lo) & (freqs < (hi if hi is not None else math.inf))
    if not bool(mask.any()):
        raise ValueError(f"band {band} Hz has no STFT bin at {sample_rate} Hz")
    return mask


def band_ild_error(
    pred: Tensor, target: Tensor, sample_rate: int, band: tuple[float, float | None], eps: float = 1e-10
) -> Tensor:
    """Mean ``|ILD_p − ILD_g|`` dB over the STFT bins (n_fft 512) in ``band`` ``[B]``; NaN if silent."""
    p, g = _pair(pred, target)
    sp, sg = stft(p), stft(g)
    mask = _band_bins(sample_rate, band, sp.shape[-2] * 2 - 2, p.device)

    def bin_ild(s: Tensor) -> Tensor:
        power = s[..., mask, :].abs().square()
        return 10.0 * torch.log10((power[:, 0] + eps) / (power[:, 1] + eps))

    err = (bin_ild(sp) - bin_ild(sg)).abs().mean((-2, -1))
    err = torch.where(_silent(p) | _silent(g), torch.full_like(err, math.nan), err)
    warn_nan("band_ild_error", int(err.isnan().sum()), err.numel(), "silent prediction or ground truth")
    return err


def band_ipd_error(
    pred: Tensor, target: Tensor, sample_rate: int, band: tuple[float, float | None]
) -> Tensor:
    """``|L_g R_g|``-weighted mean wrapped IPD error (radians) over the bins in ``band`` ``[B]``."""
    p, g = _pair(pred, target)
    sp, sg = stft(p), stft(g)
    mask = _band_bins(sample_rate, band, sp.shape[-2] * 2 - 2, p.device)
    sp, sg = sp[..., mask, :], sg[..., mask, :]
    zp, zg = sp[:, 0] * sp[:, 1].conj(), sg[:, 0] * sg[:, 1].conj()
    err = torch.angle(zp * zg.conj()).abs()
    w = zg.abs() * (zp.abs() > 0)  # a bin silent in the prediction has no phase to compare
    total = w.sum((-2, -1))
    out = (w * err).sum((-2, -1)) / total.clamp_min(torch.finfo(w.dtype).tiny)
    out = torch.where(_silent(p) | _silent(g) | (total == 0), torch.full_like(out, math.nan), out)
    warn_nan("band_ipd_error", int(out.isnan().sum()), out.numel(), "silent prediction or ground truth")
    return out


def lr_balance(x: Tensor, sample_rate: int, frame: float = 1.0, silence_db: float = -60.0) -> Tensor:
    """Balance ``(E_L − E_R)/(E_L + E_R)`` per block of ``frame`` s of ``[B, 2, T]`` -> ``[B, n]``;
    NaN for silent blocks. A trailing partial block counts if it holds at least half a block."""
    a = x.to(torch.float64)
    block = max(1, round(frame * sample_rate))
    n = max(1, round(a.shape[-1] / block))
    a = torch.nn.functional.pad(a, (0, max(0, n * block - a.shape[-1])))[..., : n * block]
    energy = a.unflatten(-1, (n, block)).square().mean(-1)  # [B, 2, n]
    total = energy.sum(-2)
    b = (energy[:, 0] - energy[:, 1]) / total.clamp_min(torch.finfo(total.dtype).tiny)
    audible = (total > 2 * _FLOOR) & (total > total.amax(-1, keepdim=True) * 10 ** (silence_db / 10))
    return torch.where(audible, b, torch.full_like(b, math.nan))


def lr_balance_agreement(
    pred: Tensor, target: Tensor, sample_rate: int, *, frame: float = 1.0, threshold: float = 0.1
) -> Tensor:
    """Fraction of clearly lateral truth blocks (``|b_g| ≥ threshold``) whose prediction leans the same
    way, per clip ``[B]`` (higher is better); NaN where no block is decisive and audible in both."""
    p, g = _pair(pred, target)
    bp, bg = lr_balance(p, sample_rate, frame), lr_balance(g, sample_rate, frame)
    decisive = (bg.abs() >= threshold) & ~bp.isnan()
    agree = (torch.sign(bp) == torch.sign(bg)) & decisive
    count = decisive.sum(-1)
    out = agree.sum(-1).to(torch.float64) / count.clamp_min(1)
    out = torch.where(count > 0, out, torch.full_like(out, math.nan))
    warn_nan(
        "lr_balance_agreement",
        int(out.isnan().sum()),
        out.numel(),
        "no clearly lateral block audible in both prediction and truth",
    )
    return out
