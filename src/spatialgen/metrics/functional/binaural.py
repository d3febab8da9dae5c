"""Binaural metrics of ``[B, 2, T]`` (``[L, R]``) predictions against ground truth, per clip ``[B]``.

Exact formulas (facebookresearch/2.5D-Visual-Sound ``evaluate.py``; CCStereo's ``util/eval.py``):

- 2.5D Visual Sound (Gao & Grauman 2019): STFT distance ``Σ_ch ½·mean|ΔX|²`` (the mean over stacked
  re/im planes) with ``n_fft=512, hop=160, win=400`` (periodic Hann, centred, zero padding as librosa ≥
  0.10), and envelope distance ``Σ_ch sqrt(mean_t (|H x_g| − |H x_p|)²)`` (H: analytic signal).
- CCStereo: waveform ``Σ_ch mean(Δx²)``, SNR ``10·log10((mean g² + 1e-4)/(mean Δ² + 1e-4))`` over both
  channels, "Mag" ``Σ_ch mean|X_p − X_g|²`` (complex difference, despite the name), phase ``mean_{t,f}
  min(|Δ∠|, 2π − |Δ∠|)`` of the STFT of ``L − R``.
- Cue errors (project definitions): ILD ``mean_{t,f} |ILD_p − ILD_g|`` with ``ILD = 10·log10((|L|²+ε)/
  (|R|²+ε))``; ITD ``|ITD_p − ITD_g|`` (GCC-PHAT 50–1500 Hz, seconds); IPD the ``|L_g R_g|``-weighted mean
  of the wrapped ``|∠(L R*)_p − ∠(L R*)_g|``; left-right confusion: on clips whose truth is clearly
  lateral (``|ILD_g| > 1 dB``, else ``|ITD_g| > 50 µs``), whether the prediction's cue has the other sign.

Signs follow :mod:`spatialgen.spatial.cues` (positive = left). Audio is used as given (the 2.5D code's
optional peak normalisation is the caller's choice). Work is in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spatialgen.errors import InvalidAudioError
from spatialgen.metrics.functional._common import warn_nan
from spatialgen.spatial.checks import check_binaural
from spatialgen.spatial.cues import ild, itd

__all__ = [
    "analytic_envelope",
    "envelope_distance",
    "ild_error",
    "ipd_error",
    "itd_error",
    "lateral_angle",
    "lateral_error",
    "left_right_confusion",
    "magnitude_distance",
    "phase_distance",
    "snr",
    "stft",
    "stft_distance",
    "waveform_distance",
]

HEAD_RADIUS = 0.0875  # m, Woodworth spherical head
SPEED_OF_SOUND = 343.0  # m/s


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    check_binaural(pred, "pred")
    check_binaural(target, "target")
    if pred.shape != target.shape:
        raise InvalidAudioError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape; "
            "pad or truncate both to one length"
        )
    return pred.to(torch.float64), target.to(torch.float64)


def stft(x: Tensor, n_fft: int = 512, hop: int = 160, win: int = 400) -> Tensor:
    """Complex STFT ``[..., T] -> [..., n_fft//2+1, frames]`` as ``librosa.stft`` (periodic Hann of
    ``win`` centred in ``n_fft``, ``center=True``, zero padding), in float64."""
    window = torch.hann_window(win, dtype=torch.float64, device=x.device)
    flat = x.to(torch.float64).reshape(-1, x.shape[-1])
    spec = torch.stft(
        flat, n_fft, hop, win, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return spec.reshape(*x.shape[:-1], *spec.shape[-2:])


def analytic_envelope(x: Tensor) -> Tensor:
    """``|hilbert(x)|`` along the last axis (FFT method, as :func:`scipy.signal.hilbert`)."""
    n = x.shape[-1]
    h = torch.zeros(n, dtype=torch.float64, device=x.device)
    h[0] = 1.0
    if n % 2 == 0:
        h[n // 2] = 1.0
        h[1 : n // 2] = 2.0
    else:
        h[1 : (n + 1) // 2] = 2.0
    return torch.fft.ifft(torch.fft.fft(x.to(torch.float64), dim=-1) * h, dim=-1).abs()


def stft_distance(pred: Tensor, target: Tensor) -> Tensor:
    """2.5D Visual Sound STFT distance ``Σ_ch mean[(Re ΔX)², (Im ΔX)²]`` ``[B]``."""
    p, g = _pair(pred, target)
    d = stft(p) - stft(g)
    return (0.5 * d.abs().square().mean((-2, -1))).sum(-1)


def envelope_distance(pred: Tensor, target: Tensor) -> Tensor:
    """2.5D Visual Sound envelope distance ``Σ_ch sqrt(mean_t (|H g| − |H p|)²)`` ``[B]``."""
    p, g = _pair(pred, target)
    return (analytic_envelope(g) - analytic_envelope(p)).square().mean(-1).sqrt().sum(-1)


def waveform_distance(pred: Tensor, target: Tensor) -> Tensor:
    """CCStereo WAV distance ``Σ_ch mean(Δx²)`` ``[B]``."""
    p, g = _pair(pred, target)
    return (p - g).square().mean(-1).sum(-1)


def magnitude_distance(pred: Tensor, target: Tensor) -> Tensor:
    """CCStereo "Mag" distance ``Σ_ch mean_{t,f} |X_p − X_g|²`` (complex difference) ``[B]``."""
    p, g = _pair(pred, target)
    return (stft(p) - stft(g)).abs().square().mean((-2, -1)).sum(-1)


def phase_distance(pred: Tensor, target: Tensor) -> Tensor:
    """CCStereo "Angle_Diff": ``mean_{t,f} min(|Δ∠|, 2π − |Δ∠|)`` on the STFT of ``L − R`` ``[B]``."""
    p, g = _pair(pred, target)
    sp, sg = stft(p[:, 0] - p[:, 1]), stft(g[:, 0] - g[:, 1])
    d = (torch.angle(sp) - torch.angle(sg)).abs()
    return torch.minimum(d, 2 * math.pi - d).mean((-2, -1))


def snr(pred: Tensor, target: Tensor) -> Tensor:
    """CCStereo SNR in dB over both channels: ``10·log10((mean g² + 1e-4)/(mean (p−g)² + 1e-4))`` ``[B]``."""
    p, g = _pair(pred, target)
    signal = g.square().mean((-2, -1)) + 1e-4
    noise = (p - g).square().mean((-2, -1)) + 1e-4
    return 10.0 * torch.log10(signal / noise)


def ild_error(pred: Tensor, target: Tensor, eps: float = 1e-10) -> Tensor:
    """Mean absolute per-bin ILD difference in dB, ``ILD = 10·log10((|L|²+ε)/(|R|²+ε))`` ``[B]``."""
    p, g = _pair(pred, target)

    def bin_ild(x: Tensor) -> Tensor:
        power = stft(x).abs().square()
        return 10.0 * torch.log10((power[:, 0] + eps) / (power[:, 1] + eps))

    return (bin_ild(p) - bin_ild(g)).abs().mean((-2, -1))


def itd_error(pred: Tensor, target: Tensor, sample_rate: int) -> Tensor:
    """``|ITD_p − ITD_g|`` in seconds (band-limited GCC-PHAT, :func:`spatialgen.spatial.cues.itd`) ``[B]``."""
    p, g = _pair(pred, target)
    return (itd(p, sample_rate) - itd(g, sample_rate)).abs()


def ipd_error(pred: Tensor, target: Tensor) -> Tensor:
    """``|L_g R_g|``-weighted mean of the wrapped IPD error ``|∠(z_p z_g*)|``, ``z = L R*``, radians ``[B]``."""
    p, g = _pair(pred, target)
    sp, sg = stft(p), stft(g)
    zp, zg = sp[:, 0] * sp[:, 1].conj(), sg[:, 0] * sg[:, 1].conj()
    err = torch.angle(zp * zg.conj()).abs()
    w = zg.abs()
    return (w * err).sum((-2, -1)) / w.sum((-2, -1)).clamp_min(torch.finfo(w.dtype).tiny)


def left_right_confusion(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    ild_threshold_db: float = 1.0,
    itd_threshold_s: float = 50e-6,
) -> tuple[Tensor, Tensor]:
    """Per clip ``(confused, decisive)`` booleans ``[B]``.

    A clip is decisive when the truth is clearly lateral: ``|ILD_g| > ild_threshold_db`` (then the ILD
    signs are compared) or else ``|ITD_g| > itd_threshold_s`` (then the ITD signs). The confusion rate is
    ``Σ confused / Σ decisive``.
    """
    p, g = _pair(pred, target)
    ild_p, ild_g = ild(p, sample_rate), ild(g, sample_rate)
    itd_p, itd_g = itd(p, sample_rate), itd(g, sample_rate)
    by_ild = ild_g.abs() > ild_threshold_db
    by_itd = ~by_ild & (itd_g.abs() > itd_threshold_s)
    confused = (by_ild & (ild_p * ild_g <= 0)) | (by_itd & (itd_p * itd_g <= 0))
    return confused, by_ild | by_itd


def lateral_angle(itd_seconds: Tensor, radius: float = HEAD_RADIUS, c: float = SPEED_OF_SOUND) -> Tensor:
    """Lateral angle (radians, + = left) from an ITD by inverting Woodworth's ``ITD = (a/c)(θ + sin θ)``.

    ITDs beyond the model's ±(a/c)(π/2 + 1) clamp to ±π/2. Newton's method on a monotone function.
    """
    k = (itd_seconds.to(torch.float64) * c / radius).clamp(-(math.pi / 2 + 1), math.pi / 2 + 1)
    theta = k / 2
    for _ in range(30):
        theta = theta - (theta + torch.sin(theta) - k) / (1 + torch.cos(theta))
    return theta.clamp(-math.pi / 2, math.pi / 2)


def lateral_error(pred: Tensor, target: Tensor, sample_rate: int, *, frame: float | None = 0.2) -> Tensor:
    """Binaural DOA error: mean ``|lateral_p − lateral_g|`` (radians) per clip ``[B]``.

    The lateral angle comes from the ITD (:func:`lateral_angle`) of each block of ``frame`` seconds
    (None: the whole clip); a trailing partial block is dropped, and so are blocks silent in either
    signal (a clip with none left is NaN with a warning).
    """
    p, g = _pair(pred, target)
    if frame is not None:
        block = max(1, round(frame * sample_rate))
        n = p.shape[-1] // block
        if n == 0:
            raise InvalidAudioError(f"clips of {p.shape[-1]} samples are shorter than one {frame} s frame")
        p = p[..., : n * block].unflatten(-1, (n, block)).movedim(-2, -3)  # [B, n, 2, block]
        g = g[..., : n * block].unflatten(-1, (n, block)).movedim(-2, -3)
    err = (lateral_angle(itd(p, sample_rate)) - lateral_angle(itd(g, sample_rate))).abs()
    # a block silent at either pair of ears has no lateral angle (silence is NaN, never a number)
    if frame is None:
        p, g, err = p[:, None], g[:, None], err[:, None]
    loud = _audible(p) & _audible(g)
    count = loud.sum(-1)
    mean = torch.where(loud, err, torch.zeros_like(err)).sum(-1) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    warn_nan("lateral_error", int(mean.isnan().sum()), mean.numel(), "silent prediction or ground truth")
    return mean


def _audible(x: Tensor, silence_db: float = -60.0) -> Tensor:
    """``[B, n, 2, T]`` -> bool ``[B, n]``: mean-square energy above −100 dBFS and within ``silence_db``
    of the clip's loudest block."""
    power = x.square().mean((-2, -1))
    ref = power.amax(-1, keepdim=True)
    return (power > 1e-10) & (power > ref * 10 ** (silence_db / 10))
