"""PANNs CNN14 (Kong et al. 2020): 2048-d clip embedding + 527 AudioSet logits.

Front-end (torchlibrosa as in the release): power STFT (periodic Hann, ``center=True``, reflect
padding), Slaney mel filterbank (librosa defaults), ``10·log10(max(x, 1e-10))`` (ref 1, no top_db).
Network: BatchNorm over the mel axis, six conv blocks (two 3x3 conv-BN-ReLU, 2x2 average pooling; none
after the sixth), mean over frequency, ``max_t + mean_t``, ``ReLU(fc1)`` = the "2048" embedding, and
``fc_audioset`` of it = the logits (pre-sigmoid). Dropout is inactive at evaluation.
Two configs: 32 kHz (window 1024, hop 320, fmax 14 kHz; ``Cnn14_mAP=0.431.pth``) and the 16 kHz one
av-benchmark uses (window 512, hop 160, fmax 8 kHz; ``Cnn14_16k_mAP=0.438.pth``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.metrics.embedders.base import AudioEmbedder, EmbedderOutput
from spatialgen.metrics.embedders.frontends import slaney_mel_filterbank

__all__ = ["CNN14_16K", "CNN14_32K", "Cnn14", "Cnn14Config"]

_ZENODO = "https://zenodo.org/record/3987831/files/"


@dataclass(frozen=True)
class Cnn14Config:
    """Front-end and head sizes; weights are the official checkpoint for this config."""

    sample_rate: int = 32000
    window: int = 1024
    hop: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    num_classes: int = 527
    weights_file: str = "Cnn14_mAP=0.431.pth"

    @property
    def url(self) -> str:
        return _ZENODO + self.weights_file.replace("=", "%3D") + "?download=1"


CNN14_32K = Cnn14Config()
CNN14_16K = Cnn14Config(16000, 512, 160, 64, 50.0, 8000.0, 527, "Cnn14_16k_mAP=0.438.pth")


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, pool: int) -> Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(AudioEmbedder):
    """CNN14: ``[N, T]`` -> embeddings ``[N, 1, 2048]`` and logits ``[N, 527]``."""

    name = "panns_cnn14"
    embed_dim = 2048

    def __init__(self, config: Cnn14Config = CNN14_32K) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.num_classes = config.num_classes
        self.min_samples = 32 * config.hop  # five 2x poolings leave at least one frame
        self.bn0 = nn.BatchNorm2d(config.n_mels)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, config.num_classes)
        self.register_buffer("hann", torch.hann_window(config.window, dtype=torch.float32), persistent=False)
        mel = slaney_mel_filterbank(
            config.sample_rate, config.window, config.n_mels, config.fmin, config.fmax
        )
        self.register_buffer("mel", mel.T.float().contiguous(), persistent=False)

    def features(self, wave: Tensor) -> Tensor:
        """``[N, T]`` -> log-mel ``[N, 1, frames, n_mels]`` (dB)."""
        c = self.config
        spec = torch.stft(
            wave, c.window, c.hop, window=self.hann, center=True, pad_mode="reflect", return_complex=True
        )
        power = spec.abs().square().transpose(-1, -2)  # [N, frames, bins]
        return (10.0 * torch.log10((power @ self.mel).clamp_min(1e-10))).unsqueeze(1)

    def network(self, features: Tensor) -> EmbedderOutput:
        x = self.bn0(features.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, 2 if i < 5 else 1)
        x = x.mean(3)
        x = x.amax(2) + x.mean(2)
        emb = F.relu(self.fc1(x))
        return EmbedderOutput(emb[:, None], self.fc_audioset(emb))

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Official PANNs checkpoint -> this module: drop the torchlibrosa front-end buffers
        (``spectrogram_extractor.*``, ``logmel_extractor.*``), recomputed here from the config."""
        skip = ("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter.")
        return {k: v for k, v in state_dict.items() if not k.startswith(skip)}
