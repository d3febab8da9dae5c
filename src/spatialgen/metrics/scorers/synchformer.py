"""Synchformer's audio branch and synchronisation head, for av-benchmark's DeSync.

Synchformer (Iashin et al., ICASSP 2024) as hkchengrex/av-benchmark ``synchformer/synchformer.py`` and
``extract.py`` use it.

The visual branch is :class:`spatialgen.encoders.synchformer.SynchformerEncoder` (reused as is).

Audio branch, per 0.64 s segment (10240 samples at 16 kHz, stride 5120):
``MelSpectrogram(n_fft 1024, win 400 periodic Hann, hop 160, center, reflect, power 2, 128 HTK mels
0-8 kHz)`` -> 65 frames, ``log(x + 1e-6)``, zero-padded to 66 frames, ``(x + 4.2677393) / (2·4.5689974)``;
then AST: Conv2d patch 16, stride 10 over ``[1, 128 mel, 66 t]`` -> 12 x 6 patches (frequency-major),
CLS and distillation tokens, learnable positions (74 = 2 + 72), 12 pre-LN ViT layers (separate
q/k/v, GELU MLP 3072, LayerNorm eps 1e-12), a final LayerNorm; the two special tokens are dropped and a
pre-LN transformer-encoder layer with its own CLS token aggregates the 12 frequency patches of each of
the 6 time columns -> ``[S, 6, 768]``.

Synchronisation head on a 14-segment window (4.8 s): ``vproj``/``aproj`` Linear(768, 768), LayerNorm on
each stream, the sequence ``[OFF, v (14·8), MOD, a (14·6)]`` plus learnable positions (198), 3 GPT
blocks (8 heads, LayerNorm eps 1e-5), final LayerNorm, and ``off_head`` Linear(768, 21) on OFF -> logits
over ``linspace(-2, 2, 21)`` s. DeSync scores the first and the last 14 segments (0-4.8 s and
3.2-8.0 s for 8 s clips) and averages ``|offset|``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.encoders.synchformer import (
    SYNCHFORMER_URL,
    SynchformerConfig,
    SynchformerEncoder,
    _SpatialPool,  # the same CLS-aggregation layer as the visual branch's spatial pooling
)
from spatialgen.encoders.synchformer_convert import convert_synchformer_state_dict
from spatialgen.errors import InvalidAudioError
from spatialgen.metrics.embedders.kaldi import htk_mel_filterbank
from spatialgen.metrics.scorers.imagebind import _resolve

__all__ = [
    "SyncHead",
    "SynchformerAudio",
    "SynchformerAudioConfig",
    "SynchformerScorer",
    "SynchformerScorerConfig",
    "convert_synchformer_full_state_dict",
    "synchformer_scorer",
]


@dataclass(frozen=True)
class SynchformerAudioConfig:
    """AST audio branch and its spectrogram front-end; defaults are the released model's."""

    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    eps: float = 1e-12
    n_mels: int = 128
    spec_frames: int = 66
    patch: int = 16
    stride: int = 10
    sample_rate: int = 16000
    segment: int = 10240
    segment_stride: int = 5120
    n_fft: int = 1024
    win: int = 400
    hop: int = 160
    mean: float = -4.2677393
    std: float = 4.5689974

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency, time) patches per segment."""
        return (self.n_mels - self.patch) // self.stride + 1, (
            self.spec_frames - self.patch
        ) // self.stride + 1


@dataclass(frozen=True)
class SynchformerScorerConfig:
    """The three parts; ``window`` segments per scored window, ``n_offsets`` classes over ±``max_offset`` s."""

    visual: SynchformerConfig = field(default_factory=SynchformerConfig)
    audio: SynchformerAudioConfig = field(default_factory=SynchformerAudioConfig)
    dim: int = 768
    layers: int = 3
    heads: int = 8
    window: int = 14
    n_offsets: int = 21
    max_offset: float = 2.0


class _Attention(nn.Module):
    """Self-attention with separate q/k/v projections (AST's and minGPT's layout).

    Not timm's ``Attention``: its fused ``qkv`` would turn the one-to-one key renaming of the official
    checkpoint into a concatenation in the converter."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape

        def split(t: Tensor) -> Tensor:
            return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class SynchformerAudio(nn.Module):
    """Waveform segments -> ``[B, S, t, D]`` audio tokens (front-end + AST + frequency aggregation)."""

    def __init__(self, config: SynchformerAudioConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or SynchformerAudioConfig()
        f, t = cfg.grid
        self.patch_embed = nn.Conv2d(1, cfg.dim, cfg.patch, stride=cfg.stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 2 + f * t, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            _Block(cfg.dim, cfg.heads, cfg.mlp_dim, cfg.eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        agg = SynchformerConfig(dim=cfg.dim, heads=cfg.heads, mlp_ratio=cfg.mlp_dim / cfg.dim, depth=0)
        self.freq_pool = _SpatialPool(agg)
        self.register_buffer("hann", torch.hann_window(cfg.win, dtype=torch.float64), persistent=False)
        mel = htk_mel_filterbank(cfg.n_fft // 2 + 1, 0.0, cfg.sample_rate / 2, cfg.n_mels, cfg.sample_rate)
        self.register_buffer("mel", mel, persistent=False)

    def num_segments(self, samples: int) -> int:
        """Segments in ``samples`` waveform samples."""
        cfg = self.config
        return max(0, (samples - cfg.segment) // cfg.segment_stride + 1)

    def spectrogram(self, wave: Tensor) -> Tensor:
        """Mono ``[B, T]`` -> normalised log-mel segments ``[B, S, n_mels, spec_frames]`` (float64)."""
        cfg = self.config
        seg = wave.to(torch.float64).unfold(-1, cfg.segment, cfg.segment_stride)  # [B, S, segment]
        spec = torch.stft(
            seg.flatten(0, 1), cfg.n_fft, cfg.hop, cfg.win, window=self.hann.to(seg.device), center=True,
            pad_mode="reflect", return_complex=True,
        )  # fmt: skip
        mel = (spec.abs().square().transpose(-1, -2) @ self.mel.to(seg.device)).transpose(-1, -2)
        logmel = torch.log(mel + 1e-6)
        pad = cfg.spec_frames - logmel.shape[-1]
        logmel = F.pad(logmel, (0, pad)) if pad > 0 else logmel[..., : cfg.spec_frames]
        return ((logmel - cfg.mean) / (2 * cfg.std)).reshape(*seg.shape[:2], cfg.n_mels, cfg.spec_frames)

    def forward(self, spec: Tensor) -> Tensor:
        """``[B, S, n_mels, spec_frames]`` -> ``[B, S, t, D]``."""
        cfg = self.config
        b, s = spec.shape[:2]
        f, t = cfg.grid
        x = self.patch_embed(spec.flatten(0, 1)[:, None]).flatten(2).transpose(1, 2)  # [BS, f*t, D]
        special = torch.cat([self.cls_token, self.dist_token], 1).expand(x.shape[0], -1, -1)
        x = torch.cat([special, x], 1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)[:, 2:].reshape(b * s, f, t, cfg.dim).transpose(1, 2)  # [BS, t, f, D]
        return self.freq_pool(x.flatten(0, 1)).reshape(b, s, t, cfg.dim)


class SyncHead(nn.Module):
    """Offset classifier on one window of visual ``[B, W, Fv, D]`` and audio ``[B, W, Fa, D]`` tokens."""

    def __init__(self, config: SynchformerScorerConfig) -> None:
        super().__init__()
        cfg = config
        d = cfg.dim
        n_tokens = 2 + cfg.window * (cfg.visual.slots + cfg.audio.grid[1])
        self.vproj, self.aproj = nn.Linear(cfg.visual.dim, d), nn.Linear(cfg.audio.dim, d)
        self.vis_norm, self.aud_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.off_token, self.mod_token = (
            nn.Parameter(torch.randn(1, 1, d)),
            nn.Parameter(torch.randn(1, 1, d)),
        )
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, d))
        self.blocks = nn.ModuleList(_Block(d, cfg.heads, 4 * d, 1e-5) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.off_head = nn.Linear(d, cfg.n_offsets)

    def forward(self, v: Tensor, a: Tensor) -> Tensor:
        b = v.shape[0]
        v = self.vis_norm(self.vproj(v).flatten(1, 2))
        a = self.aud_norm(self.aproj(a).flatten(1, 2))
        x = torch.cat([self.off_token.expand(b, -1, -1), v, self.mod_token.expand(b, -1, -1), a], 1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.off_head(self.norm(x[:, 0]))


class SynchformerScorer(nn.Module):
    """Synchformer for DeSync (scorer protocol of :mod:`spatialgen.metrics.multimodal`):
    ``offset_logits(frames [B, T, 3, H, W] at 25 fps, audio [B, C, T] at 16 kHz) -> [B, 2, 21]``."""

    def __init__(self, config: SynchformerScorerConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or SynchformerScorerConfig()
        self.visual = SynchformerEncoder(cfg.visual, frozen=True)
        self.audio = SynchformerAudio(cfg.audio)
        self.sync = SyncHead(cfg)
        self.sample_rate, self.video_fps = cfg.audio.sample_rate, self.visual.fps

    @torch.no_grad()
    def offset_logits(self, frames: Tensor, audio: Tensor) -> Tensor:
        """Logits ``[B, 2, n_offsets]`` for the first and the last ``window`` segments of the clip.

        Audio is mixed to mono; video and audio segment counts are cut to the smaller one.
        """
        cfg = self.config
        if audio.ndim != 3 or not audio.is_floating_point():
            raise InvalidAudioError(
                f"synchformer: audio must be float [batch, channels, samples], got {tuple(audio.shape)}"
            )
        p = next(self.audio.parameters())
        s_a = self.audio.num_segments(audio.shape[-1])
        s_v = self.visual.num_units(frames.shape[1])
        s = min(s_a, s_v)
        if s < cfg.window:
            raise ValueError(
                f"synchformer: need {cfg.window} segments (4.8 s: >= 76800 samples at 16 kHz and >= 120 frames "
                f"at 25 fps), got {s_a} audio / {s_v} video segments"
            )
        spec = self.audio.spectrogram(audio.to(p.device).mean(1))[:, :s]
        a = self.audio(spec.to(p.dtype))
        v = self.visual(frames).global_features.to(p.dtype)
        v = v.reshape(v.shape[0], -1, cfg.visual.slots, v.shape[-1])[:, :s]
        starts = (0, s - cfg.window)
        return torch.stack([self.sync(v[:, i : i + cfg.window], a[:, i : i + cfg.window]) for i in starts], 1)

    def load_weights(self, path: str | os.PathLike) -> SynchformerScorer:
        """Load ``synchformer_state_dict.pth`` (the full official checkpoint, converted) or our own layout."""
        from spatialgen.encoders.loading import load_official_or_own

        load_official_or_own(self, path, "afeat_extractor.", convert_synchformer_full_state_dict)
        return self


_AUDIO_RULES = [
    (re.compile(p), r)
    for p, r in [
        (r"^ast\.embeddings\.cls_token$", "cls_token"),
        (r"^ast\.embeddings\.distillation_token$", "dist_token"),
        (r"^ast\.embeddings\.position_embeddings$", "pos_embed"),
        (r"^ast\.embeddings\.patch_embeddings\.projection\.", "patch_embed."),
        (r"^ast\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.", r"blocks.\1.attn.\2."),
        (r"^ast\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
        (r"^ast\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.fc1."),
        (r"^ast\.encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.fc2."),
        (r"^ast\.encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
        (r"^ast\.encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
        (r"^ast\.layernorm\.", "norm."),
        (r"^freq_attn_agg\.self_attn\.in_proj_(weight|bias)$", r"freq_pool.qkv.\1"),
        (r"^freq_attn_agg\.self_attn\.out_proj\.", "freq_pool.proj."),
        (r"^freq_attn_agg\.linear(\d)\.", r"freq_pool.mlp.fc\1."),
        (r"^freq_attn_agg\.", "freq_pool."),
    ]
]
_SYNC_RULES = [
    (re.compile(p), r)
    for p, r in [
        (r"^(vproj|aproj)\.", r"\1."),
        (r"^transformer\.vis_in_lnorm\.", "vis_norm."),
        (r"^transformer\.aud_in_lnorm\.", "aud_norm."),
        (r"^transformer\.OFF_tok$", "off_token"),
        (r"^transformer\.MOD_tok$", "mod_token"),
        (r"^transformer\.pos_emb_cfg\.pos_emb$", "pos_embed"),
        (r"^transformer\.blocks\.(\d+)\.ln(\d)\.", r"blocks.\1.norm\2."),
        (r"^transformer\.blocks\.(\d+)\.attn\.", r"blocks.\1.attn."),
        (r"^transformer\.blocks\.(\d+)\.mlp\.0\.", r"blocks.\1.fc1."),
        (r"^transformer\.blocks\.(\d+)\.mlp\.2\.", r"blocks.\1.fc2."),
        (r"^transformer\.ln_f\.", "norm."),
        (r"^transformer\.off_head\.", "off_head."),
    ]
]


def _apply(rules: list[tuple[re.Pattern[str], str]], key: str) -> str | None:
    for pattern, repl in rules:
        new, hits = pattern.subn(repl, key)
        if hits:
            return new
    return None


def convert_synchformer_full_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official Synchformer checkpoint (``vfeat_extractor.*``, ``afeat_extractor.*``, ``vproj``, ``aproj``,
    ``transformer.*``) -> :class:`SynchformerScorer` keys. The visual part goes through
    :func:`~spatialgen.encoders.synchformer_convert.convert_synchformer_state_dict`; keys outside the three
    parts (e.g. an AST classifier) are dropped. Tensors are unchanged."""
    out = {f"visual.net.{k}": v for k, v in convert_synchformer_state_dict(state_dict).items()}
    for key, value in state_dict.items():
        if key.startswith("afeat_extractor."):
            new = _apply(_AUDIO_RULES, key[len("afeat_extractor.") :])
            if new is not None:
                out[f"audio.{new}"] = value
        elif (new := _apply(_SYNC_RULES, key)) is not None:
            out[f"sync.{new}"] = value
    return out


def synchformer_scorer(pretrained: bool | str | os.PathLike = True, **config) -> SynchformerScorer:
    """Registry factory: the released Synchformer (``config`` overrides :class:`SynchformerScorerConfig`).

    ``pretrained=True`` resolves MMAudio's ``synchformer_state_dict.pth`` (the full model); a path or
    ``hf://`` spec loads that file; False keeps random weights.
    """
    path = _resolve(pretrained, SYNCHFORMER_URL, "Synchformer weights (synchformer_state_dict.pth)")
    scorer = SynchformerScorer(SynchformerScorerConfig(**config))
    return scorer.load_weights(path) if path is not None else scorer
