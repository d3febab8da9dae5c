"""MMAudio's log-mel front end (the input of its mel VAE and of the BigVGAN vocoders).

Re-implemented from hkchengrex/MMAudio ``mmaudio/ext/mel_converter.py`` (itself from
bytedance/Make-An-Audio-2): clamp the waveform to [-1, 1], reflect-pad ``(n_fft - hop) / 2`` samples on
each side, STFT with ``center=False`` and a periodic Hann window of ``win_length`` (not normalised),
magnitude ``sqrt(re² + im² + 1e-9)``, a Slaney-style mel filterbank (librosa's default: Slaney mel
scale and Slaney area normalisation), then ``log(max(x, 1e-5))`` with ``log10`` at 16 kHz and the
natural log at 44.1 kHz. With that padding a ``T``-sample clip (``T`` a multiple of the hop) gives
exactly ``T / hop`` frames: 128000 samples -> 500 frames at 16 kHz, 353280 -> 690 at 44.1 kHz.

The filterbank is computed here from the formulas (no librosa dependency) in float64 and stored in
float32, as librosa returns it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MelConfig", "MelFrontEnd", "hz_to_slaney_mel", "slaney_mel_filterbank", "slaney_mel_to_hz"]

# Slaney's mel scale (Auditory Toolbox; librosa htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mel
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_slaney_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel of frequencies in Hz (float64 in, float64 out)."""
    lin = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, log, lin)


def slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_slaney_mel`."""
    lin = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, lin)


def slaney_mel_filterbank(
    sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float64), Slaney scale and area norm.

    Filter ``m`` rises from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` (``n_mels + 2`` points
    evenly spaced in mel between ``fmin`` and ``fmax``), scaled by ``2 / (f[m + 2] - f[m])`` so every
    filter has the same area in Hz.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    f64 = {"dtype": torch.float64, "device": "cpu"}  # always computed on the CPU, also under a meta device
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, **f64)
    lo, hi = hz_to_slaney_mel(torch.tensor([float(fmin), fmax], **f64)).tolist()
    edges = slaney_mel_to_hz(torch.linspace(lo, hi, n_mels + 2, **f64))
    widths = edges.diff()
    rising = (freqs[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - freqs[None, :]) / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


@dataclass(frozen=True)
class MelConfig:
    """One MMAudio mel mode (``get_mel_converter('16k' | '44k')`` in MMAudio)."""

    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float
    log: Literal["log10", "ln"]


class MelFrontEnd(nn.Module):
    """Waveform ``[N, T]`` -> log-mel ``[N, n_mels, T // hop]`` exactly as MMAudio computes it.

    The filterbank and window are non-persistent buffers: MMAudio's VAE checkpoints do not hold them.
    """

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        if config.log not in ("log10", "ln"):
            raise ValueError(f"mel log must be 'log10' or 'ln', got {config.log!r}")
        if (config.n_fft - config.hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even, got {config.n_fft} - {config.hop_length}")
        self.config = config
        basis = slaney_mel_filterbank(
            config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax
        )
        self.register_buffer("mel_basis", basis.float(), persistent=False)
        # Kept in float64 and cast at use: float32 runs see MMAudio's float32 window, float64 runs are exact.
        window = torch.hann_window(config.win_length, dtype=torch.float64, device="cpu")
        self.register_buffer("window", window, persistent=False)

    @property
    def pad(self) -> int:
        """Reflect padding on each side: ``(n_fft - hop) / 2``."""
        return (self.config.n_fft - self.config.hop_length) // 2

    def num_frames(self, n_samples: int) -> int:
        """Mel frames of ``n_samples``: ``floor(n_samples / hop)`` (the padding makes it exact)."""
        return n_samples // self.config.hop_length

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if audio.shape[-1] <= self.pad:
            raise ValueError(
                f"the mel front end needs more than {self.pad} samples for its reflect padding, "
                f"got {audio.shape[-1]}"
            )
        x = F.pad(audio.clamp(-1.0, 1.0).unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.to(x.dtype),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = torch.view_as_real(spec)
        mag = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        mel = torch.matmul(self.mel_basis.to(mag.dtype), mag).clamp(min=1e-5)
        return torch.log10(mel) if cfg.log == "log10" else torch.log(mel)
