"""Binaural audio latents: each ear coded by the same mono codec, the pair normalised jointly.

Joint normalisation is what keeps the interaural level difference (ILD): both ears are peak-normalised
by the *stereo* peak, and the latent statistics are one per-channel mean/std shared by left and right
(computed over both ears' latents together), so a level difference between the ears is never
normalised away (ViSAudio, arXiv 2512.03036; the codecs are MMAudio's, hkchengrex/MMAudio ``mmaudio/ext``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spatialgen.codecs.base import AudioCodec
from spatialgen.errors import InvalidAudioError

__all__ = ["BinauralLatentCoder", "LatentNormalizer", "joint_peak_normalize"]


def joint_peak_normalize(audio: Tensor, peak: float = 0.95, eps: float = 1e-8) -> Tensor:
    """Scale each clip ``[B, C, T]`` so its largest absolute sample over *all* channels is ``peak``.

    One gain per clip keeps channel ratios (the ILD); silent clips are returned unchanged.
    """
    if audio.ndim != 3:
        raise InvalidAudioError(f"audio must be [batch, channels, samples], got shape {tuple(audio.shape)}")
    m = audio.abs().amax(dim=(1, 2), keepdim=True)
    return torch.where(m > eps, audio * (peak / m.clamp_min(eps)), audio)


class LatentNormalizer(nn.Module):
    """Per-latent-channel mean/std shared by both ears, stored as buffers (saved with the model).

    ``normalize`` maps ``[B, 2, D, F]`` latents to roughly unit scale; ``denormalize`` inverts it. Until
    :meth:`fit` (or a loaded checkpoint) sets them, the statistics are the identity (mean 0, std 1).
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("std", torch.ones(latent_dim))

    def _view(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim < 3 or x.shape[-2] != self.mean.numel():
            raise ValueError(
                f"latents must be [..., {self.mean.numel()}, frames], got shape {tuple(x.shape)}"
            )
        return self.mean.to(x.dtype)[:, None], self.std.to(x.dtype)[:, None]

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per latent channel (not in place)."""
        mean, std = self._view(x)
        return (x - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """``x * std + mean`` per latent channel (not in place)."""
        mean, std = self._view(x)
        return x * std + mean

    @torch.no_grad()
    def fit(self, latents: Tensor, eps: float = 1e-5) -> LatentNormalizer:
        """Set mean/std from latents ``[B, C, D, F]`` pooled over clips, ears *and* frames (float64)."""
        self._view(latents)
        flat = latents.to(torch.float64).transpose(-2, -1).reshape(-1, latents.shape[-2])
        self.mean.copy_(flat.mean(dim=0))
        self.std.copy_(flat.std(dim=0).clamp_min(eps))
        return self


class BinauralLatentCoder(nn.Module):
    """Codes ``[B, 2, T]`` binaural audio with one mono codec per ear and normalises the pair jointly.

    Args:
        codec: any continuous codec from the registry (``create_codec("stft")``, DAC latents, ...); its
            channels are coded independently, so left and right share the same weights.
        peak: joint peak target applied before encoding (None to skip).
        normalizer: the statistics to use; pass ``net.normalizer`` to share the ones stored with a
            :class:`~spatialgen.models.visaudio.network.ViSAudioNet` (a fresh identity one otherwise).
    """

    def __init__(
        self, codec: AudioCodec, peak: float | None = None, normalizer: LatentNormalizer | None = None
    ) -> None:
        super().__init__()
        self.codec = codec
        self.peak = peak
        self.normalizer = normalizer if normalizer is not None else LatentNormalizer(codec.latent_dim)
        if self.normalizer.mean.numel() != codec.latent_dim:
            raise ValueError(
                f"normalizer has {self.normalizer.mean.numel()} channels but the codec has {codec.latent_dim}"
            )

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.codec.frame_rate

    def encode(self, audio: Tensor, sample_rate: int | None = None, normalize: bool = True) -> Tensor:
        """``[B, 2, T]`` binaural audio -> ``[B, 2, D, F]`` latents (jointly normalised by default)."""
        if audio.ndim != 3 or audio.shape[1] != 2:
            raise InvalidAudioError(
                f"binaural audio must be [batch, 2, samples] (left, right), got shape {tuple(audio.shape)}"
            )
        if self.peak is not None:
            audio = joint_peak_normalize(audio, self.peak)
        z = self.codec.encode_latents(audio, sample_rate)
        return self.normalizer.normalize(z) if normalize else z

    def decode(self, latents: Tensor, length: int | None = None, normalized: bool = True) -> Tensor:
        """``[B, 2, D, F]`` latents -> ``[B, 2, T]`` audio (``length`` crops to the original length)."""
        if latents.ndim != 4 or latents.shape[1] != 2:
            raise ValueError(
                f"binaural latents must be [batch, 2, D, frames], got shape {tuple(latents.shape)}"
            )
        z = self.normalizer.denormalize(latents) if normalized else latents
        return self.codec.decode_latents(z, length=length)
