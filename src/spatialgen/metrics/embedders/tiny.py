"""A tiny deterministic audio embedder for tests and the CPU demo (same interface as CNN14)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.metrics.embedders.base import AudioEmbedder, EmbedderOutput
from spatialgen.metrics.embedders.frontends import slaney_mel_filterbank

__all__ = ["TinyEmbedder"]


class TinyEmbedder(AudioEmbedder):
    """Log-mel (32 bands, 16 kHz) -> two small convs -> ``max_t + mean_t`` -> embedding + logits.

    Weights are drawn from ``seed`` (no file), so every process builds the same embedder.
    """

    name = "tiny"

    def __init__(
        self, embed_dim: int = 16, num_classes: int = 10, sample_rate: int = 16000, seed: int = 0
    ) -> None:
        super().__init__()
        self.sample_rate, self.embed_dim, self.num_classes = sample_rate, embed_dim, num_classes
        self.n_fft, self.hop = 400, 160
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, embed_dim, 3, padding=1)
            self.proj = nn.Linear(embed_dim, embed_dim)
            self.head = nn.Linear(embed_dim, num_classes)
        self.register_buffer("hann", torch.hann_window(self.n_fft), persistent=False)
        mel = slaney_mel_filterbank(sample_rate, self.n_fft, 32, 0.0, sample_rate / 2)
        self.register_buffer("mel", mel.T.float().contiguous(), persistent=False)

    def features(self, wave: Tensor) -> Tensor:
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop,
            window=self.hann,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return torch.log(spec.abs().square().transpose(-1, -2) @ self.mel + 1e-6).unsqueeze(1)

    def network(self, features: Tensor) -> EmbedderOutput:
        x = F.avg_pool2d(F.gelu(self.conv1(features)), 2)
        x = F.gelu(self.conv2(x)).mean(3)  # [N, D, frames]
        emb = self.proj(x.amax(2) + x.mean(2))
        return EmbedderOutput(emb[:, None], self.head(emb))
