"""ImageBind-huge audio and vision towers as av-benchmark's IB-score uses them.

ImageBind (Girdhar et al., CVPR 2023) as hkchengrex/av-benchmark ``extract_video.py`` and
``data/audio_dataset.py`` feed it.

Vision (ViT-H/14 over 2-frame clips): Conv3d patch embedding, kernel = stride = (2, 14, 14), no bias ->
1 temporal x 16 x 16 patches; a CLS token; learnable positions; a pre-transformer LayerNorm; 32 pre-LN
blocks (``nn.MultiheadAttention`` with bias, GELU MLP ratio 4, LayerNorm eps 1e-6); head = LayerNorm on
CLS -> Linear(1280, 1024, no bias); postprocessor = L2 normalisation.

Audio (ViT-B over a kaldi fbank ``[1, 128, 204]``): Conv2d patch 16, stride 10, no bias -> 12 x 19
patches, then a LayerNorm (eps 1e-5); CLS; learnable positions; 12 blocks whose attention has learnable
``bias_k`` / ``bias_v`` (one extra key/value); no pre-transformer norm; head as vision (768 -> 1024);
postprocessor = L2 normalisation x a fixed logit scale 20 (omitted: a cosine ignores it).

Scoring: the video side takes frames at 0.5 fps, resizes the shorter side to 224 (bicubic), takes the
3 spatial crops (left/centre/right or top/centre/bottom), CLIP-normalises, pairs consecutive frames
into ``T - 1`` clips, embeds every (clip, crop), L2-normalises and averages. The audio side takes the
first channel at 16 kHz, 3 clips of 2 s starting at ``k·(D − 2)/2`` s, removes each clip's DC, computes
the kaldi fbank (128 mels, 25/10 ms), zero-pads or cuts it to 204 frames, normalises
``(x + 4.268) / 9.138``, embeds, L2-normalises and averages. IB-score = mean cosine (x100 in papers).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn

from spatialgen.encoders.base import check_frames
from spatialgen.errors import InvalidAudioError
from spatialgen.metrics.embedders.kaldi import kaldi_fbank

__all__ = [
    "IMAGEBIND_URL",
    "ImageBindConfig",
    "ImageBindScorer",
    "convert_imagebind_state_dict",
    "imagebind_scorer",
]

IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageBindConfig:
    """Tower sizes and the IB-score preprocessing; defaults are ImageBind-huge as av-benchmark runs it."""

    out_dim: int = 1024
    vision_dim: int = 1280
    vision_depth: int = 32
    vision_heads: int = 16
    img_size: int = 224
    patch: int = 14
    clip_frames: int = 2
    audio_dim: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    n_mels: int = 128
    target_frames: int = 204
    audio_patch: int = 16
    audio_stride: int = 10
    mlp_ratio: int = 4
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    audio_clips: int = 3
    fbank_mean: float = -4.268
    fbank_std: float = 9.138
    video_fps: float = 0.5
    crops: int = 3

    @property
    def vision_patches(self) -> int:
        return (self.img_size // self.patch) ** 2

    @property
    def audio_grid(self) -> tuple[int, int]:
        f = (self.n_mels - self.audio_patch) // self.audio_stride + 1
        t = (self.target_frames - self.audio_patch) // self.audio_stride + 1
        return f, t


class _Block(nn.Module):
    """Pre-LN block; ``attn`` is ``nn.MultiheadAttention`` so ``bias_k``/``bias_v`` match the release
    (timm's ``Attention`` has no learned key/value bias tokens, hence not timm's ViT ``Block``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, bias_kv: bool) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=bias_kv, batch_first=True)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)  # fc1 -> GELU -> fc2

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Tower(nn.Module):
    """Patch stem -> CLS + positions -> blocks -> LayerNorm(CLS) -> projection -> L2 normalisation."""

    def __init__(self, stem: nn.Module, patches: int, dim: int, depth: int, heads: int, cfg: ImageBindConfig,
                 *, patch_norm: bool, pre_norm: bool, bias_kv: bool) -> None:  # fmt: skip
        super().__init__()
        self.patch_embed = stem
        self.patch_norm = nn.LayerNorm(dim) if patch_norm else nn.Identity()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + patches, dim) * dim**-0.5)
        self.pre_norm = nn.LayerNorm(dim, eps=1e-6) if pre_norm else nn.Identity()
        self.blocks = nn.ModuleList(_Block(dim, heads, cfg.mlp_ratio, bias_kv) for _ in range(depth))
        self.head_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, cfg.out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_norm(self.patch_embed(x).flatten(2).transpose(1, 2))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)
        return F.normalize(self.head(self.head_norm(x[:, 0])), dim=-1)


class ImageBindScorer(nn.Module):
    """ImageBind audio + vision towers with av-benchmark's IB-score preprocessing (scorer protocol of
    :mod:`spatialgen.metrics.multimodal`): audio ``[B, C, T]`` at 16 kHz, frames ``[B, T, 3, H, W]`` at 0.5 fps."""

    def __init__(self, config: ImageBindConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or ImageBindConfig()
        self.sample_rate, self.video_fps = cfg.sample_rate, cfg.video_fps
        k = (cfg.clip_frames, cfg.patch, cfg.patch)
        self.vision = _Tower(
            nn.Conv3d(3, cfg.vision_dim, k, stride=k, bias=False), cfg.vision_patches, cfg.vision_dim,
            cfg.vision_depth, cfg.vision_heads, cfg, patch_norm=False, pre_norm=True, bias_kv=False,
        )  # fmt: skip
        f, t = cfg.audio_grid
        self.audio = _Tower(
            nn.Conv2d(1, cfg.audio_dim, cfg.audio_patch, stride=cfg.audio_stride, bias=False), f * t,
            cfg.audio_dim, cfg.audio_depth, cfg.audio_heads, cfg, patch_norm=True, pre_norm=False, bias_kv=True,
        )  # fmt: skip

    # ------------------------------------------------------------------------------ preprocessing
    def audio_features(self, audio: Tensor) -> Tensor:
        """``[B, C, T]`` (16 kHz) -> normalised fbank clips ``[B, clips, 1, n_mels, target_frames]`` (channel 0)."""
        cfg = self.config
        if audio.ndim != 3 or not audio.is_floating_point():
            raise InvalidAudioError(
                f"imagebind: audio must be float [batch, channels, samples], got {tuple(audio.shape)}"
            )
        wave = audio[:, 0].to(torch.float64)  # kaldi fbank with channel=-1 reads channel 0 (torchaudio)
        duration = wave.shape[-1] / cfg.sample_rate
        clip = round(cfg.clip_seconds * cfg.sample_rate)
        step = max(duration - cfg.clip_seconds, 0.0) / max(cfg.audio_clips - 1, 1)
        feats = []
        for k in range(cfg.audio_clips):
            start = int(k * step * cfg.sample_rate)
            seg = wave[:, start : start + clip]
            fb = kaldi_fbank(seg - seg.mean(-1, keepdim=True), cfg.sample_rate, cfg.n_mels).transpose(-1, -2)
            fb = F.pad(fb, (0, max(0, cfg.target_frames - fb.shape[-1])))[..., : cfg.target_frames]
            feats.append((fb - cfg.fbank_mean) / cfg.fbank_std)
        return torch.stack(feats, 1)[:, :, None].to(audio.dtype)

    def video_clips(self, frames: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` (0.5 fps) -> ``[B, (T-1)·crops, 3, 2, S, S]``: shorter side to S, 3 crops, CLIP norm."""
        cfg = self.config
        check_frames(frames)
        if frames.shape[1] < cfg.clip_frames:
            raise ValueError(
                f"imagebind: need at least {cfg.clip_frames} frames at {cfg.video_fps:g} fps, got {frames.shape[1]}"
            )
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
        b, t, _, h, w = x.shape
        s = cfg.img_size
        size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)  # torchvision Resize(int) rounding
        x = F.interpolate(x.flatten(0, 1), size=size, mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp(0, 1).reshape(b, t, 3, *size)
        crops = []
        for idx in range(cfg.crops):
            span = max(size) - s
            off = (0, math.ceil(span / 2), span)[idx] if cfg.crops == 3 else math.ceil(span / 2)
            crops.append(x[..., off : off + s, :s] if size[0] > size[1] else x[..., :s, off : off + s])
        x = torch.stack(crops, 2)  # [B, T, crops, 3, S, S]
        mean = x.new_tensor(CLIP_MEAN).view(3, 1, 1)
        x = (x - mean) / x.new_tensor(CLIP_STD).view(3, 1, 1)
        pairs = torch.stack(
            [x[:, i : i + t - 1] for i in range(cfg.clip_frames)], 4
        )  # [B, T-1, crops, 3, 2, S, S]
        return pairs.flatten(1, 2)

    # ---------------------------------------------------------------------------------- embedding
    @torch.no_grad()
    def embed_audio(self, audio: Tensor) -> Tensor:
        """``[B, C, T]`` at 16 kHz -> ``[B, out_dim]`` (mean of the per-clip unit embeddings)."""
        p = next(self.parameters())
        x = self.audio_features(audio.to(p.device)).to(p.dtype)
        return self.audio(x.flatten(0, 1)).reshape(x.shape[0], x.shape[1], -1).mean(1)

    @torch.no_grad()
    def embed_video(self, frames: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` at 0.5 fps -> ``[B, out_dim]`` (mean over temporal clips x spatial crops)."""
        p = next(self.parameters())
        x = self.video_clips(frames.to(p.device)).to(p.dtype)
        return self.vision(x.flatten(0, 1)).reshape(x.shape[0], x.shape[1], -1).mean(1)

    def load_weights(self, path: str | os.PathLike) -> ImageBindScorer:
        """Load ``imagebind_huge.pth`` (official layout, converted) or this module's own state dict."""
        from spatialgen.encoders.loading import load_official_or_own

        load_official_or_own(self, path, "modality_", convert_imagebind_state_dict)
        return self


_RULES = [
    ("modality_preprocessors.vision.rgbt_stem.proj.1.", "vision.patch_embed."),
    ("modality_preprocessors.audio.rgbt_stem.proj.", "audio.patch_embed."),
    ("modality_preprocessors.audio.rgbt_stem.norm_layer.", "audio.patch_norm."),
    ("modality_trunks.vision.pre_transformer_layer.0.", "vision.pre_norm."),
    ("modality_heads.{m}.0.", "{m}.head_norm."),
    ("modality_heads.{m}.2.", "{m}.head."),
    ("modality_preprocessors.{m}.pos_embedding_helper.pos_embed", "{m}.pos_embed"),
    ("modality_preprocessors.{m}.cls_token", "{m}.cls_token"),
    ("modality_trunks.{m}.blocks.", "{m}.blocks."),
]


def convert_imagebind_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``imagebind_huge.pth`` keys -> :class:`ImageBindScorer` keys (vision and audio only).

    Text / depth / thermal / IMU modalities and the postprocessors (the audio one holds only the constant
    ``log 20`` logit scale) are dropped; tensors are unchanged (block sub-keys already match).
    """
    rules = [(a.format(m=m), b.format(m=m)) for a, b in _RULES for m in ("vision", "audio")]
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        for old, new in rules:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
    return out


def imagebind_scorer(pretrained: bool | str | os.PathLike = True, **config) -> ImageBindScorer:
    """Registry factory: ImageBind-huge (``config`` overrides :class:`ImageBindConfig` fields).

    ``pretrained=True`` resolves ``imagebind_huge.pth`` from the official URL (cached under
    ``$SPATIALGEN_CACHE``); a path or ``hf://`` spec loads that file; False keeps random weights.
    """
    path = _resolve(pretrained, IMAGEBIND_URL, "ImageBind-huge weights (imagebind_huge.pth)")
    scorer = ImageBindScorer(ImageBindConfig(**config))
    return scorer.load_weights(path) if path is not None else scorer


def _resolve(pretrained: bool | str | os.PathLike, url: str, what: str) -> Path | None:
    """Resolve before building, so a missing file fails fast with one line naming file and URL."""
    if pretrained is False:
        return None
    from spatialgen.weights import resolve_weights

    return resolve_weights(url if pretrained is True else pretrained, what=what)
