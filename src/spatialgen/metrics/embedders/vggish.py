"""VGGish (Hershey et al. 2017) as av-benchmark / ViSAGe's FAD use it: 128-d per 0.96 s, no PCA.

Front-end (``mel_features.py`` of the release): 16 kHz; frames of 25 ms (400 samples, periodic Hann,
no centring) every 10 ms; ``|rfft|`` with 512 points; 64 HTK mel bands 125–7500 Hz; ``log(mel + 0.01)``;
non-overlapping examples of 96 frames x 64 bands. Network: VGG (conv 64-M-128-M-256-256-M-512-512-M),
flatten in (H, W, C) order, ``Linear(12288, 4096)-ReLU-Linear(4096, 4096)-ReLU-Linear(4096, 128)``
without the final ReLU and without PCA / quantisation (hkchengrex/av-benchmark ``vggish/vggish.py``).
Weights: torchvggish's ``vggish-10086976.pth`` (same key layout; its ``pproc.*`` PCA keys are dropped).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spatialgen.metrics.embedders.base import AudioEmbedder, EmbedderOutput
from spatialgen.metrics.embedders.frontends import vggish_mel_filterbank

__all__ = ["VGGISH_URL", "VGGish"]

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


class VGGish(AudioEmbedder):
    """VGGish embedder: ``[N, T]`` 16 kHz -> embeddings ``[N, K, 128]`` with ``K = 1 + (frames − 96)//96``."""

    name = "vggish"
    sample_rate = 16000
    embed_dim = 128
    num_classes = 0
    window, hop, n_fft, n_mels, example_frames = 400, 160, 512, 64, 96
    min_samples = 400 + 95 * 160  # one full example

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features_net = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 128),
        )
        n = torch.arange(self.window, dtype=torch.float64)
        self.register_buffer(
            "hann", (0.5 - 0.5 * torch.cos(2 * math.pi * n / self.window)).float(), persistent=False
        )
        mel = vggish_mel_filterbank(self.n_fft // 2 + 1, self.sample_rate, self.n_mels, 125.0, 7500.0)
        self.register_buffer("mel", mel.float(), persistent=False)

    def features(self, wave: Tensor) -> Tensor:
        """``[N, T]`` -> log-mel examples ``[N, K, 1, 96, 64]``."""
        frames = wave.unfold(-1, self.window, self.hop) * self.hann  # [N, F, 400], no centring
        mag = torch.fft.rfft(frames, n=self.n_fft).abs()
        log_mel = torch.log(mag @ self.mel + 0.01)  # [N, F, 64]
        return log_mel.unfold(1, self.example_frames, self.example_frames).transpose(-1, -2).unsqueeze(2)

    def network(self, features: Tensor) -> EmbedderOutput:
        n, k = features.shape[:2]
        x = self.features_net(features.flatten(0, 1))  # [NK, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).flatten(1)  # torchvggish flattens in (H, W, C) order
        return EmbedderOutput(self.embeddings(x).reshape(n, k, -1), None)

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """torchvggish layout (``features.*``, ``embeddings.*``, optional ``pproc.*``) -> this module's."""
        out = {}
        for key, value in state_dict.items():
            if key.startswith("pproc."):
                continue  # PCA / quantisation parameters: av-benchmark runs without postprocessing
            out["features_net." + key[len("features.") :] if key.startswith("features.") else key] = value
        return out
