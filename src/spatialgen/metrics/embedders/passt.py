"""PaSST-S (Koutini et al. 2022) as av-benchmark uses it: 768-d embedding + 527 AudioSet logits at 32 kHz.

Front-end (hear21passt ``AugmentMelSTFT`` in eval mode): clip zero-padded / cut to 10 s (320000 samples);
pre-emphasis ``y[n] = x[n+1] − 0.97·x[n]``; STFT n_fft 1024, window 800 (symmetric Hann centred in the
FFT), hop 320, ``center=True`` (reflect); power; Kaldi mel banks (128, 0–15000 Hz, zero Nyquist column);
``log(x + 1e-5)``; ``(x + 4.5) / 5``.
Network (``passt_s_swa_p16_128_ap476``, DeiT-B distilled): Conv2d patch 16, stride 10 over
``[1, 128, 1000]`` -> 12 x 99 patches; separable positions (``freq_new_pos_embed [1, D, 12, 1]`` +
``time_new_pos_embed [1, D, 1, 99]``, cut to the input's time patches); CLS and DIST tokens with
``new_pos_embed``; 12 pre-LN blocks (eps 1e-6, fused qkv with bias, GELU): timm's ViT ``Block``, whose
parameter names the release uses; final LayerNorm.
Embedding = (CLS + DIST) / 2; logits = ``head`` (LayerNorm eps 1e-5 -> Linear 527) of the embedding.
Weights: ``passt-s-f128-p16-s10-ap.476-swa.pt`` (same key names; ``head_dist`` is not used and dropped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from spatialgen.metrics.embedders.base import AudioEmbedder, EmbedderOutput
from spatialgen.metrics.embedders.kaldi import kaldi_mel_banks

__all__ = ["PASST_URL", "PaSST"]

PASST_URL = (
    "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"
)


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=stride)


class PaSST(AudioEmbedder):
    """PaSST-S: ``[N, T]`` 32 kHz -> embeddings ``[N, 1, 768]`` and logits ``[N, 527]``.

    ``dim``/``depth``/``heads``/``n_mels``/``seconds`` make smaller configs of the same code (tests).
    """

    name = "passt"

    def __init__(
        self,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        num_classes: int = 527,
        n_mels: int = 128,
        seconds: float = 10.0,
        sample_rate: int = 32000,
        fmax: float = 15000.0,
        patch: int = 16,
        stride: int = 10,
        time_patches: int = 99,
    ) -> None:
        super().__init__()
        self.sample_rate, self.embed_dim, self.num_classes = sample_rate, dim, num_classes
        self.n_fft, self.win, self.hop, self.n_mels = 1024, 800, 320, n_mels
        self.min_samples = self.clip_samples = round(seconds * sample_rate)
        freq_patches = (n_mels - patch) // stride + 1
        self.patch_embed = _PatchEmbed(dim, patch, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.new_pos_embed = nn.Parameter(torch.randn(1, 2, dim) * 0.02)
        self.freq_new_pos_embed = nn.Parameter(torch.randn(1, dim, freq_patches, 1) * 0.02)
        self.time_new_pos_embed = nn.Parameter(torch.randn(1, dim, 1, time_patches) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, qkv_bias=True) for _ in range(depth)))  # LN eps 1e-6
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))
        self.register_buffer("window", torch.hann_window(self.win, periodic=False), persistent=False)
        mel = kaldi_mel_banks(n_mels, self.n_fft, sample_rate, 0.0, fmax)
        self.register_buffer("mel", mel.float(), persistent=False)

    def features(self, wave: Tensor) -> Tensor:
        """``[N, T]`` -> normalised log-mel ``[N, 1, n_mels, frames]`` (clip cut / zero-padded to 10 s)."""
        wave = F.pad(wave, (0, max(0, self.clip_samples - wave.shape[-1])))[..., : self.clip_samples]
        x = wave[..., 1:] - 0.97 * wave[..., :-1]
        spec = torch.stft(
            x, self.n_fft, self.hop, self.win, window=self.window, center=True, pad_mode="reflect",
            return_complex=True,
        )  # fmt: skip
        mel = self.mel @ spec.abs().square()
        return ((torch.log(mel + 1e-5) + 4.5) / 5.0)[:, None]

    def network(self, features: Tensor) -> EmbedderOutput:
        x = self.patch_embed.proj(features)  # [N, D, f, t]
        t = min(x.shape[-1], self.time_new_pos_embed.shape[-1])  # PaSST cuts to its time positions
        x = x[..., :t] + self.time_new_pos_embed[..., :t] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        special = torch.cat([self.cls_token, self.dist_token], 1) + self.new_pos_embed
        x = self.norm(self.blocks(torch.cat([special.expand(x.shape[0], -1, -1), x], 1)))
        emb = (x[:, 0] + x[:, 1]) / 2
        return EmbedderOutput(emb[:, None], self.head(emb))

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Released PaSST checkpoint -> this module: same names; ``head_dist.*`` (DeiT's distillation
        classifier, unused by av-benchmark's outputs) and an optional ``net.`` prefix are dropped."""
        state = {k.removeprefix("net."): v for k, v in state_dict.items()}
        return {k: v for k, v in state.items() if not k.startswith("head_dist.")}
