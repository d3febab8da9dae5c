"""Analytic STFT latent codec: no weights, exactly invertible, any length, any float dtype.

Analysis frames the (hop-padded) signal with a periodic sqrt-Hann window of ``n_fft`` samples every
``hop_length`` samples and takes an orthonormal real FFT. Synthesis applies the same window again and
overlap-adds, dividing by the summed squared window (weighted overlap-add), so the inverse is exact
wherever that envelope is non-zero; the input is zero-padded by ``(n_fft - hop)/2`` on both sides so
every kept sample lies under frames whose envelope is bounded away from zero, and exactly one frame
is produced per hop (``F = ceil(T / hop)``), like the neural codecs.

Latent layout per frame: ``D = 2 * (n_fft // 2 + 1)`` channels, real parts of bins ``0..K-1`` then
imaginary parts. With ``compression=c < 1`` the magnitude is compressed, ``|X|^c · e^{i∠X}``
(a common target for generative models), and expanded back exactly on decode.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.nn import functional as F

from spatialgen.codecs.base import AudioCodec
from spatialgen.codecs.registry import register_codec

__all__ = ["STFTCodec"]


class STFTCodec(AudioCodec):
    """Weight-free continuous codec: stacked real/imag STFT bins.

    Args:
        sample_rate: audio sample rate in Hz.
        n_fft: window and FFT length (even).
        hop_length: frame step; must be at most ``n_fft // 2`` so that the sqrt-Hann frames overlap.
        compression: magnitude exponent ``c`` in (0, 1]; 1 keeps the plain complex STFT.
    """

    def __init__(
        self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 128, compression: float = 1.0
    ) -> None:
        if n_fft < 2 or n_fft % 2:
            raise ValueError(f"n_fft must be an even integer >= 2, got {n_fft}")
        if not 1 <= hop_length <= n_fft // 2:
            raise ValueError(
                f"hop_length={hop_length} must be in [1, n_fft/2={n_fft // 2}]: sqrt-Hann frames must "
                "overlap by at least half for the inverse to exist everywhere"
            )
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        super().__init__(
            sample_rate=sample_rate, hop_length=hop_length, latent_dim=2 * (n_fft // 2 + 1), frozen=True
        )
        self.n_fft = int(n_fft)
        self.compression = float(compression)
        self._pad_left = (n_fft - hop_length) // 2
        self._pad_right = n_fft - hop_length - self._pad_left
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).sqrt()
        self.register_buffer("window", window, persistent=False)
        self._check_envelope()

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"compression={self.compression}"
        )

    def _analyze(self, audio: torch.Tensor) -> torch.Tensor:
        x = F.pad(audio, (self._pad_left, self._pad_right))
        frames = x.unfold(-1, self.n_fft, self.hop_length) * self.window.to(x)  # [N, F, n_fft]
        spec = torch.fft.rfft(frames, norm="ortho")  # [N, F, K]
        if self.compression != 1.0:
            mag = spec.abs()
            spec = spec * torch.where(mag > 0, mag, 1).pow(self.compression - 1.0)
        return torch.cat([spec.real, spec.imag], dim=-1).transpose(1, 2)  # [N, 2K, F]

    def _synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        k = self.latent_dim // 2
        z = latents.transpose(1, 2)  # [N, F, 2K]
        spec = torch.complex(z[..., :k], z[..., k:])
        if self.compression != 1.0:
            mag = spec.abs()
            spec = spec * torch.where(mag > 0, mag, 1).pow(1.0 / self.compression - 1.0)
        window = self.window.to(z)
        frames = torch.fft.irfft(spec, n=self.n_fft, norm="ortho") * window  # [N, F, n_fft]
        n_frames = frames.shape[1]
        y = self._overlap_add(frames.transpose(1, 2), n_frames)
        env = self._overlap_add((window * window).expand(1, n_frames, -1).transpose(1, 2), n_frames)
        start = self._pad_left
        stop = start + n_frames * self.hop_length
        return y[:, start:stop] / env[:, start:stop]

    def _overlap_add(self, frames: torch.Tensor, n_frames: int) -> torch.Tensor:
        """``[N, n_fft, F]`` frames -> ``[N, (F - 1) * hop + n_fft]`` summed signal."""
        total = (n_frames - 1) * self.hop_length + self.n_fft
        out = F.fold(frames, output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        return out.reshape(frames.shape[0], total)

    def _check_envelope(self) -> None:
        # The weighted overlap-add divides by this envelope: make sure it never vanishes on kept samples.
        n_frames = 2 * (self.n_fft // self.hop_length) + 2
        w2 = (self.window * self.window).expand(1, n_frames, -1).transpose(1, 2)
        env = self._overlap_add(w2, n_frames)[0, self._pad_left : self._pad_left + n_frames * self.hop_length]
        if float(env.min()) < 1e-3 * float(env.max()):
            raise ValueError(
                f"n_fft={self.n_fft}, hop_length={self.hop_length}: window overlap too small to invert"
            )


@register_codec("stft")
def _stft_factory(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> STFTCodec:
    """Analytic STFT codec (16 kHz, n_fft 512, hop 128 by default); it has no weights to load."""
    if not isinstance(pretrained, bool):
        raise ValueError(f"codec 'stft' is analytic and has no weights; got pretrained={pretrained!r}")
    return STFTCodec(**kwargs)
