"""The one interface every audio codec implements.

Shapes (B batch, C channels, T samples, F frames, Q codebooks, D latent channels):

- ``encode(audio [B, C, T]) -> codes [B, C, Q, F]`` (discrete, int64) or ``latents [B, C, D, F]``
  (continuous); ``decode(...) -> audio [B, C, T']``.
- ``encode_latents`` / ``decode_latents``: the continuous latents of any codec (for a discrete codec,
  its pre-quantisation encoder output); ``codes_to_latents`` / ``latents_to_codes`` move between the
  two for discrete codecs.

Multi-channel audio (FOA: 4, binaural: 2) is coded per channel: channels are folded into the batch, so
channel c of the output depends on channel c of the input only (ViSAGe codes each FOA channel as mono).

Lengths: the input is zero-padded on the right to a multiple of ``hop_length`` before encoding, giving
``num_frames(T) = ceil(T / hop_length)`` frames. ``decode`` returns ``num_samples(F)`` samples; pass
``length=T`` to get exactly the original ``T`` samples back (the padding is cropped).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from spatialgen.errors import InvalidAudioError

__all__ = ["AudioCodec", "DiscreteAudioCodec"]


class AudioCodec(nn.Module, ABC):
    """Base class: a (possibly analytic) audio codec with continuous latents at ``frame_rate`` Hz.

    Subclasses implement the mono hooks ``_analyze`` ([N, T_pad] -> [N, D, F]) and ``_synthesize``
    ([N, D, F] -> [N, T_out]); this class does validation, channel folding, padding and cropping.

    Args:
        sample_rate: audio sample rate in Hz (inputs must match; resample before encoding).
        hop_length: samples per frame.
        latent_dim: D, channels of the continuous latents.
        frozen: freeze parameters and keep the codec in eval mode even under ``.train()``.
    """

    kind: ClassVar[str] = "continuous"

    def __init__(self, *, sample_rate: int, hop_length: int, latent_dim: int, frozen: bool = True) -> None:
        super().__init__()
        if sample_rate <= 0 or hop_length <= 0 or latent_dim <= 0:
            raise ValueError(
                f"sample_rate, hop_length and latent_dim must be positive, got {sample_rate}, "
                f"{hop_length}, {latent_dim}"
            )
        self._sample_rate = int(sample_rate)
        self._hop_length = int(hop_length)
        self._latent_dim = int(latent_dim)
        self.frozen = bool(frozen)
        self.name = type(self).__name__

    # ---------------------------------------------------------------- properties
    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz."""
        return self._sample_rate

    @property
    def hop_length(self) -> int:
        """Audio samples per latent/code frame."""
        return self._hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second of codes/latents (``sample_rate / hop_length``; 86.13 for 44.1 kHz DAC)."""
        return self._sample_rate / self._hop_length

    @property
    def latent_dim(self) -> int:
        """D: channels of the continuous latents."""
        return self._latent_dim

    @property
    def num_codebooks(self) -> int | None:
        """Q for discrete codecs, None for continuous ones."""
        return None

    @property
    def codebook_size(self) -> int | None:
        """Entries per codebook for discrete codecs, None for continuous ones."""
        return None

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` input samples: ``ceil(n_samples / hop_length)``."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        return math.ceil(n_samples / self._hop_length)

    def num_samples(self, n_frames: int) -> int:
        """Samples that ``decode`` returns for ``n_frames`` frames when no ``length`` is given."""
        if n_frames < 0:
            raise ValueError(f"n_frames must be >= 0, got {n_frames}")
        return n_frames * self._hop_length

    # ---------------------------------------------------------------- mode
    def train(self, mode: bool = True) -> AudioCodec:
        """Like ``nn.Module.train``, but a frozen codec stays in eval mode."""
        return super().train(mode and not self.frozen)

    def freeze(self) -> AudioCodec:
        """Stop gradients to the parameters and keep eval mode from now on."""
        self.frozen = True
        self.requires_grad_(False)
        return self.eval()

    # ---------------------------------------------------------------- continuous API
    def encode_latents(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Continuous latents ``[B, C, D, F]`` of ``audio [B, C, T]`` (pre-quantisation for DAC).

        The latents have the input's floating dtype; ``F = num_frames(T)``.
        """
        x = self._check_audio(audio, sample_rate)
        b, c, t = x.shape
        flat = self._pad_to_hop(x.reshape(b * c, t))
        z = self._analyze(flat.to(self._compute_dtype(flat)))
        return z.to(audio.dtype).reshape(b, c, *z.shape[1:])

    def decode_latents(self, latents: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio ``[B, C, T']`` from latents ``[B, C, D, F]``; ``length`` crops to the original length."""
        z = self._check_latents(latents)
        b, c, d, f = z.shape
        flat = z.reshape(b * c, d, f)
        y = self._synthesize(flat.to(self._compute_dtype(flat)))
        y = self._fit_length(y, f, length)
        out_dtype = latents.dtype if latents.is_floating_point() else y.dtype
        return y.to(out_dtype).reshape(b, c, -1)

    def encode(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Continuous codecs: latents ``[B, C, D, F]`` (same as :meth:`encode_latents`)."""
        return self.encode_latents(audio, sample_rate)

    def decode(self, x: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Continuous codecs: audio ``[B, C, T']`` from latents (same as :meth:`decode_latents`)."""
        return self.decode_latents(x, length)

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """Discrete codecs only: the quantised latents ``[B, C, D, F]`` of ``codes [B, C, Q, F]``."""
        raise TypeError(f"codec {self.name!r} is continuous: it has no codes; use encode_latents")

    def latents_to_codes(self, latents: torch.Tensor) -> torch.Tensor:
        """Discrete codecs only: quantise latents ``[B, C, D, F]`` to codes ``[B, C, Q, F]``."""
        raise TypeError(f"codec {self.name!r} is continuous: it has no codes; use encode_latents")

    # ---------------------------------------------------------------- hooks
    @abstractmethod
    def _analyze(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono analysis: ``[N, T_pad]`` (T_pad a multiple of hop_length) -> ``[N, D, T_pad / hop]``."""

    @abstractmethod
    def _synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        """Mono synthesis: ``[N, D, F]`` -> ``[N, num_samples(F)]``."""

    def _compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The dtype the hooks run in: the parameters' dtype if any, else the input's."""
        p = next(self.parameters(), None)
        return p.dtype if p is not None else x.dtype

    # ---------------------------------------------------------------- checks and lengths
    def _check_audio(self, audio: torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor):
            raise InvalidAudioError(f"audio must be a torch.Tensor [B, C, T], got {type(audio).__name__}")
        if audio.ndim != 3:
            raise InvalidAudioError(
                f"audio must be [batch, channels, samples], got shape {tuple(audio.shape)}; "
                "add missing dims with unsqueeze"
            )
        if not audio.is_floating_point():
            raise InvalidAudioError(f"audio must be floating point, got {audio.dtype}")
        if audio.shape[-1] == 0 or audio.shape[0] == 0 or audio.shape[1] == 0:
            raise InvalidAudioError(f"audio is empty: shape {tuple(audio.shape)}")
        if sample_rate is not None and int(sample_rate) != self._sample_rate:
            raise InvalidAudioError(
                f"audio sample_rate {sample_rate} Hz does not match codec {self.name!r} at "
                f"{self._sample_rate} Hz; resample it first"
            )
        if not bool(torch.isfinite(audio).all()):
            raise InvalidAudioError("audio contains NaN or Inf values")
        return audio

    def _check_latents(self, latents: torch.Tensor) -> torch.Tensor:
        if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents must be [batch, channels, {self._latent_dim}, frames], got {shape}")
        if latents.shape[2] != self._latent_dim:
            raise ValueError(
                f"latents have {latents.shape[2]} channels in dim 2, codec {self.name!r} expects "
                f"latent_dim={self._latent_dim}"
            )
        if not latents.is_floating_point():
            raise ValueError(f"latents must be floating point, got {latents.dtype}")
        return latents

    def _pad_to_hop(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.num_frames(x.shape[-1]) * self._hop_length - x.shape[-1]
        return nn.functional.pad(x, (0, pad)) if pad else x

    def _fit_length(self, y: torch.Tensor, n_frames: int, length: int | None) -> torch.Tensor:
        """Crop ``y [N, T']`` to ``length``; a tail short of ``n_frames * hop`` is zero-filled.

        Only decoders whose transposed convs lose a few samples (DAC with stride 5) need the fill, and
        it is at most a few samples at the very end.
        """
        if length is None:
            return y
        length = int(length)
        if length < 0 or length > n_frames * self._hop_length:
            raise ValueError(
                f"length={length} needs num_frames({length}) = {self.num_frames(max(length, 0))} frames "
                f"but {n_frames} were given (max length {n_frames * self._hop_length})"
            )
        if y.shape[-1] >= length:
            return y[..., :length]
        return nn.functional.pad(y, (0, length - y.shape[-1]))


class DiscreteAudioCodec(AudioCodec):
    """A codec with residual-VQ codes ``[B, C, Q, F]`` (int64, values in ``[0, codebook_size)``).

    Subclasses implement ``_quantize`` ([N, D, F] -> [N, Q, F]) and ``_dequantize`` ([N, Q, F] ->
    [N, D, F]) on top of the continuous hooks.
    """

    kind: ClassVar[str] = "discrete"

    def __init__(
        self,
        *,
        sample_rate: int,
        hop_length: int,
        latent_dim: int,
        num_codebooks: int,
        codebook_size: int,
        frozen: bool = True,
    ) -> None:
        super().__init__(sample_rate=sample_rate, hop_length=hop_length, latent_dim=latent_dim, frozen=frozen)
        self._num_codebooks = int(num_codebooks)
        self._codebook_size = int(codebook_size)

    @property
    def num_codebooks(self) -> int:
        """Q: codebooks that ``encode`` emits per frame."""
        return self._num_codebooks

    @property
    def codebook_size(self) -> int:
        """Entries per codebook (valid codes are ``0 .. codebook_size - 1``)."""
        return self._codebook_size

    def encode(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Codes ``[B, C, Q, F]`` (int64) of ``audio [B, C, T]``; ``F = num_frames(T)``."""
        return self.latents_to_codes(self.encode_latents(audio, sample_rate))

    def decode(self, x: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio ``[B, C, T']`` from codes ``[B, C, Q', F]`` (Q' <= Q uses the first Q' levels)."""
        return self.decode_latents(self.codes_to_latents(x), length)

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantised latents ``[B, C, D, F]`` (the decoder's input) of ``codes [B, C, Q', F]``."""
        c = self._check_codes(codes)
        b, ch, q, f = c.shape
        z = self._dequantize(c.reshape(b * ch, q, f))
        return z.reshape(b, ch, *z.shape[1:])

    def latents_to_codes(self, latents: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, C, Q, F]`` of continuous latents ``[B, C, D, F]`` (from :meth:`encode_latents`)."""
        z = self._check_latents(latents)
        b, ch, d, f = z.shape
        flat = z.reshape(b * ch, d, f)
        codes = self._quantize(flat.to(self._compute_dtype(flat)))
        return codes.long().reshape(b, ch, *codes.shape[1:])

    @abstractmethod
    def _quantize(self, latents: torch.Tensor) -> torch.Tensor:
        """``[N, D, F]`` -> codes ``[N, Q, F]``."""

    @abstractmethod
    def _dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[N, Q', F]`` -> quantised latents ``[N, D, F]``."""

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor) or codes.ndim != 4:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be [batch, channels, codebooks, frames], got {shape}")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
        if not 1 <= codes.shape[2] <= self._num_codebooks:
            raise ValueError(
                f"codes have {codes.shape[2]} codebooks in dim 2, codec {self.name!r} has "
                f"1..{self._num_codebooks}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self._codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self._codebook_size}), got range "
                f"[{int(codes.min())}, {int(codes.max())}] (strip padding tokens before decoding)"
            )
        return codes.long()
