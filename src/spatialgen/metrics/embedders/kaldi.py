"""Kaldi-style and torchaudio-style filterbanks in torch (float64), for ImageBind, PaSST and Synchformer.

- :func:`kaldi_mel_banks`: ``torchaudio.compliance.kaldi.get_mel_banks`` without VTLN warping (mel =
  ``1127 ln(1 + f/700)``, triangles linear in mel, bins at ``k·sr/n_fft`` for ``k < n_fft/2``), plus the
  zero Nyquist column both users append: ``[n_mels, n_fft//2 + 1]``.
- :func:`kaldi_fbank`: ``torchaudio.compliance.kaldi.fbank`` as ImageBind calls it (htk_compat, Hanning
  = symmetric Hann, 25 ms / 10 ms, ``snip_edges``, per-frame DC removal, pre-emphasis 0.97 with the first
  sample replicated, FFT padded to a power of two, power spectrum, ``log(max(mel, float32 eps))``,
  dither 0, no energy).
- :func:`htk_mel_filterbank`: ``torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk")``
  (triangles linear in Hz between HTK-mel-spaced edges), used by ``torchaudio.transforms.MelSpectrogram``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["htk_mel_filterbank", "kaldi_fbank", "kaldi_mel_banks"]

_F32_EPS = torch.finfo(torch.float32).eps  # kaldi's log floor (torchaudio uses the float32 epsilon)


def _kaldi_mel(f: Tensor | float) -> Tensor | float:
    return 1127.0 * (torch.log1p(f / 700.0) if isinstance(f, Tensor) else math.log1p(f / 700.0))


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> Tensor:
    """``[n_mels, n_fft//2 + 1]`` Kaldi triangular mel filters (last column zero); ``high_freq <= 0`` means
    ``nyquist + high_freq``."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"mel band edges must satisfy 0 <= low ({low_freq}) < high ({high_freq}) <= nyquist")
    lo, hi = _kaldi_mel(low_freq), _kaldi_mel(high_freq)
    delta = (hi - lo) / (n_mels + 1)
    i = torch.arange(n_mels, dtype=torch.float64)[:, None]
    left, center, right = lo + i * delta, lo + (i + 1) * delta, lo + (i + 2) * delta
    mel = _kaldi_mel(sample_rate / n_fft * torch.arange(n_fft // 2, dtype=torch.float64))[None]
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1))


def kaldi_fbank(
    wave: Tensor,
    sample_rate: float,
    n_mels: int = 128,
    frame_ms: float = 25.0,
    shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> Tensor:
    """Kaldi log-mel filterbank ``[..., frames, n_mels]`` of waveforms ``[..., T]`` (float64 inside).

    ``frames = 1 + (T - win) // hop`` (``snip_edges``); a clip shorter than one window raises ValueError.
    """
    win, hop = int(sample_rate * frame_ms / 1000), int(sample_rate * shift_ms / 1000)
    if wave.shape[-1] < win:
        raise ValueError(f"kaldi_fbank: {wave.shape[-1]} samples are shorter than one {win}-sample window")
    n_fft = 1 << (win - 1).bit_length()
    x = wave.to(torch.float64).unfold(-1, win, hop)  # [..., frames, win]
    x = x - x.mean(-1, keepdim=True)
    prev = torch.cat([x[..., :1], x[..., :-1]], dim=-1)  # x[-1] := x[0], as Kaldi does
    x = x - preemphasis * prev
    n = torch.arange(win, dtype=torch.float64, device=x.device)
    x = x * (0.5 - 0.5 * torch.cos(2 * math.pi * n / (win - 1)))  # Kaldi "hanning": symmetric
    power = torch.fft.rfft(x, n=n_fft).abs().square()
    banks = kaldi_mel_banks(n_mels, n_fft, sample_rate, low_freq, high_freq).to(x.device)
    return (power @ banks.T).clamp_min(_F32_EPS).log()


def htk_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> Tensor:
    """``[n_freqs, n_mels]`` as ``torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")``."""

    def htk(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(htk(f_min), htk(f_max), n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts.diff()
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)
