"""Log-mel front-ends of the official embedders, written in torch (float64 filterbanks).

- :func:`slaney_mel_filterbank`: ``librosa.filters.mel`` defaults (Slaney mel scale, area-normalised),
  used by PANNs through torchlibrosa.
- :func:`vggish_mel_filterbank`: VGGish's ``mel_features.spectrogram_to_mel_matrix`` (HTK mel scale,
  unnormalised triangles, DC bin zeroed).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["hz_to_mel_slaney", "mel_to_hz_slaney", "slaney_mel_filterbank", "vggish_mel_filterbank"]

_F_SP = 200.0 / 3  # Slaney: linear 66.67 Hz per mel below 1 kHz
_MIN_LOG_HZ, _MIN_LOG_MEL, _LOGSTEP = 1000.0, 15.0, math.log(6.4) / 27.0


def hz_to_mel_slaney(f: Tensor) -> Tensor:
    """Slaney mel scale (librosa ``htk=False``)."""
    lin = f / _F_SP
    log = _MIN_LOG_MEL + torch.log(f.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz_slaney(m: Tensor) -> Tensor:
    """Inverse of :func:`hz_to_mel_slaney`."""
    lin = m * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL))
    return torch.where(m >= _MIN_LOG_MEL, log, lin)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    """``[n_mels, n_fft//2 + 1]`` as ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (float64)."""
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)

    def mel(f: float) -> float:  # scalar Slaney mel (python floats: works under a meta device too)
        return _MIN_LOG_MEL + math.log(f / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else f / _F_SP

    mels = torch.linspace(mel(fmin), mel(fmax), n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz_slaney(mels)
    fdiff = hz.diff()
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0)
    return weights * (2.0 / (hz[2:] - hz[:-2]))[:, None]


def vggish_mel_filterbank(
    num_spectrogram_bins: int, sample_rate: int, n_mels: int = 64, fmin: float = 125.0, fmax: float = 7500.0
) -> Tensor:
    """``[num_spectrogram_bins, n_mels]`` HTK-mel triangles as VGGish builds them (DC row zeroed)."""

    def htk(f: Tensor) -> Tensor:
        return 1127.0 * torch.log1p(f / 700.0)

    spec_mel = htk(torch.linspace(0.0, sample_rate / 2, num_spectrogram_bins, dtype=torch.float64))
    edges = torch.linspace(
        1127.0 * math.log1p(fmin / 700.0), 1127.0 * math.log1p(fmax / 700.0), n_mels + 2, dtype=torch.float64
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slope = (spec_mel[:, None] - lower) / (center - lower)
    upper_slope = (upper - spec_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(lower_slope, upper_slope), min=0)
    weights[0] = 0.0  # VGGish excludes the DC bin
    return weights
