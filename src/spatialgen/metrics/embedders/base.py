"""The audio-embedder interface and the multi-channel reductions used by semantic metrics."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spatialgen.errors import InvalidAudioError

__all__ = ["CHANNEL_REDUCTIONS", "AudioEmbedder", "EmbedderOutput", "reduce_channels"]

#: How multi-channel audio meets a mono embedder (ViSAGe averages the metric over W, Y, Z, X):
#: "mean_channels": every channel embedded separately, the metric computed per channel and averaged;
#: "first": FOA's W (channel 0), or the mid (L+R)/2 for 2-channel audio;
#: "all": every channel embedded separately and pooled into one distribution (channels = more samples);
#: "mono": the mean of all channels (av-benchmark's ``waveform.mean(dim=0)``);
#: "mid" / "side": (L + R)/2 and (L − R)/2 of 2-channel audio (the side carries what stereo adds).
CHANNEL_REDUCTIONS = ("mean_channels", "first", "all", "mono", "mid", "side")


@dataclass
class EmbedderOutput:
    """``embeddings [N, K, D]`` (K examples per clip: 1 for CNN14, one per 0.96 s for VGGish) and
    pre-activation class ``logits [N, C]`` (None for an embedder without a classifier)."""

    embeddings: Tensor
    logits: Tensor | None


def reduce_channels(audio: Tensor, reduction: str) -> Tensor:
    """``[B, C, T]`` -> ``[B, C', T]``: C' = C for "mean_channels"/"all", 1 for the others."""
    if reduction not in CHANNEL_REDUCTIONS:
        raise ValueError(f"channel reduction must be one of {CHANNEL_REDUCTIONS}, got {reduction!r}")
    if audio.ndim != 3:
        raise InvalidAudioError(f"audio must be [batch, channels, samples], got shape {tuple(audio.shape)}")
    if reduction in ("mean_channels", "all"):
        return audio
    if reduction == "mono":
        return audio.mean(1, keepdim=True)
    if reduction in ("mid", "side"):
        if audio.shape[1] != 2:
            raise InvalidAudioError(
                f"channel reduction {reduction!r} needs 2-channel [L, R] audio, got {audio.shape[1]}"
            )
        left, right = audio[:, :1], audio[:, 1:]
        return (left + right) / 2 if reduction == "mid" else (left - right) / 2
    return audio.mean(1, keepdim=True) if audio.shape[1] == 2 else audio[:, :1]


class AudioEmbedder(nn.Module):
    """Base class: mono waveforms ``[N, T]`` at :attr:`sample_rate` -> :class:`EmbedderOutput`.

    Subclasses implement :meth:`features` (front-end, float32 log-mel) and :meth:`network`. ``forward``
    removes the DC offset per clip as av-benchmark's loader does and runs without gradients in eval mode.
    """

    name: str = "embedder"
    sample_rate: int = 16000
    embed_dim: int = 0
    num_classes: int = 0
    min_samples: int = 1  # shorter clips are zero-padded to this length

    @abstractmethod
    def features(self, wave: Tensor) -> Tensor:
        """Front-end: ``[N, T]`` float waveform -> the network's input."""

    @abstractmethod
    def network(self, features: Tensor) -> EmbedderOutput:
        """The network on front-end features."""

    def forward(self, wave: Tensor) -> EmbedderOutput:
        """Embed mono waveforms ``[N, T]`` (float, at :attr:`sample_rate`)."""
        if wave.ndim != 2 or not wave.is_floating_point():
            raise InvalidAudioError(
                f"{self.name}: expected float mono audio [N, samples], got {tuple(wave.shape)}"
            )
        if wave.shape[-1] < self.min_samples:
            wave = nn.functional.pad(wave, (0, self.min_samples - wave.shape[-1]))
        param = next(self.parameters())
        wave = wave.to(param.device, torch.float32)
        wave = wave - wave.mean(-1, keepdim=True)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.network(self.features(wave))
        finally:
            self.train(was_training)

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map a released checkpoint's keys to this module's (identity unless overridden)."""
        return state_dict

    def load_weights(self, path) -> AudioEmbedder:
        """Load a ``.pth``/``.pt``/``.safetensors`` file strictly, converting the official key layout."""
        from pathlib import Path

        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # PANNs checkpoints wrap the weights
        state = {k.removeprefix("module."): v for k, v in state.items()}
        self.load_state_dict(self.convert_state_dict(state), strict=True)
        return self
