"""MMAudio's mel VAE: a 1-D magnitude-preserving conv net (EDM2 building blocks) over log-mel frames.

Re-implemented from hkchengrex/MMAudio ``mmaudio/ext/autoencoder/{vae.py, vae_modules.py,
edm2_utils.py}`` (the magnitude-preserving layers are those of Karras et al., "Analyzing and Improving
the Training Dynamics of Diffusion Models", EDM2). Module and parameter names follow the official
checkpoints (``v1-16.pth``, ``v1-44.pth``) so they load with ``strict=True``.

- ``MPConv1d``: the stored weight is raw; the effective weight is ``w / (eps + |w|/sqrt(fan_in)) /
  sqrt(fan_in)`` (forced weight normalisation). :meth:`MelVAE.fold_weight_norm` writes it into the
  weight once after loading, as MMAudio's ``remove_weight_norm`` does; unfolded layers compute it on
  the fly.
- Residual block: pixel norm -> MP-SiLU -> conv -> MP-SiLU -> conv, joined by ``mp_sum(x, h, 0.3)``.
- Attention: one head, q/k/v pixel-normalised over channels; only in the mid blocks for the published
  configs (MMAudio passes ``attn_layers=[3]`` with three levels, so no level gets one).
- Encoder: one 2x average-pool downsample after level 0; decoder: one nearest 2x upsample after level 1.
  Activations are clamped to +-256 after each block group.
- The mel is normalised per bin by fixed tables (``data_mean`` / ``data_std``) before encoding and
  un-normalised after decoding. The encoder outputs ``2 * embed_dim`` channels: the posterior mean and
  log-variance (clamped to [-30, 20]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from spatialgen.codecs.mmaudio_tables import MEL_STATS

__all__ = ["MPConv1d", "MelVAE", "MelVAEConfig"]


def pixel_norm(x: torch.Tensor, dim: int | list[int], eps: float = 1e-4) -> torch.Tensor:
    """``x / (eps + |x| / sqrt(n))`` with the norm over ``dim`` (``n`` its size): unit RMS there.

    The norm is taken in at least float32 (MMAudio takes it in float32; float64 stays float64).
    """
    norm = torch.linalg.vector_norm(
        x, dim=dim, keepdim=True, dtype=torch.promote_types(x.dtype, torch.float32)
    )
    n = x.numel() // norm.numel()
    return x / (eps + norm / math.sqrt(n)).to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU scaled to keep unit variance for unit-Gaussian input (EDM2 eq. 81)."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Magnitude-preserving blend ``((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)`` (EDM2 eq. 88)."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


class MPConv1d(nn.Module):
    """Bias-free 1-D conv (same padding) with forced weight normalisation; ``gain`` scales the weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size))
        self.folded = False

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight.to(torch.promote_types(self.weight.dtype, torch.float32))
        fan_in = w[0].numel()
        return (pixel_norm(w, dim=list(range(1, w.ndim))) / math.sqrt(fan_in)).to(self.weight.dtype)

    @torch.no_grad()
    def fold_weight_norm(self) -> None:
        """Write the normalised weight into ``weight`` (once; inference only)."""
        if not self.folded:
            self.weight.copy_(self.normalized_weight())
            self.folded = True

    def forward(self, x: torch.Tensor, gain: torch.Tensor | float = 1.0) -> torch.Tensor:
        w = (self.weight if self.folded else self.normalized_weight()) * gain
        return F.conv1d(x, w.to(x.dtype), padding=w.shape[-1] // 2)


class ResBlock1d(nn.Module):
    """Pixel-norm residual block; a 1x1 ``nin_shortcut`` maps channels when they change."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1d(in_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x, dim=1)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return mp_sum(x, h, 0.3)


class Attention1d(nn.Module):
    """Self-attention over time with pixel-normalised q, k, v (MMAudio's ``AttnBlock1D``, one head).

    The ``qkv`` output channels are laid out ``[head, channel, (q, k, v)]``, as the official weights are.
    """

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = MPConv1d(channels, 3 * channels, 1)
        self.proj_out = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, length = x.shape
        y = self.qkv(x).reshape(b, self.num_heads, -1, 3, length)
        q, k, v = pixel_norm(y, dim=2).unbind(3)  # each [B, heads, C/heads, L]
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = h.transpose(-1, -2).reshape(b, -1, length)
        return mp_sum(x, self.proj_out(h), 0.3)


class Downsample1d(nn.Module):
    """1x1 conv -> average pool by 2 -> 1x1 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(channels, channels, 1)
        self.conv2 = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample1d(nn.Module):
    """Nearest-exact 2x repeat -> conv."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = MPConv1d(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


@dataclass(frozen=True)
class MelVAEConfig:
    """Architecture of the mel VAE (MMAudio: ``VAE_16k`` = (80, 20, 384), ``VAE_44k`` = (128, 40, 512))."""

    data_dim: int
    embed_dim: int
    hidden_dim: int
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    down_levels: tuple[int, ...] = (0,)
    attn_levels: tuple[int, ...] = ()
    kernel_size: int = 3
    clip_act: float = 256.0

    @property
    def time_downsampling(self) -> int:
        """Mel frames per latent frame."""
        return 2 ** len(self.down_levels)


def _level(blocks: list[nn.Module], attns: list[nn.Module]) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attns)
    return level


def _mid(channels: int, kernel_size: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResBlock1d(channels, channels, kernel_size)
    mid.attn_1 = Attention1d(channels)
    mid.block_2 = ResBlock1d(channels, channels, kernel_size)
    return mid


class Encoder1d(nn.Module):
    """Normalised mel ``[N, data_dim, 2F]`` -> moments ``[N, 2 * embed_dim, F]``."""

    def __init__(self, cfg: MelVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dims = [cfg.hidden_dim * m for m in (1, *cfg.ch_mult)]
        self.conv_in = MPConv1d(cfg.data_dim, cfg.hidden_dim, cfg.kernel_size)
        self.down = nn.ModuleList()
        for i in range(len(cfg.ch_mult)):
            d_in, d_out = dims[i], dims[i + 1]
            blocks = [
                ResBlock1d(d_in if j == 0 else d_out, d_out, cfg.kernel_size)
                for j in range(cfg.num_res_blocks)
            ]
            attns = [Attention1d(d_out) for _ in blocks] if i in cfg.attn_levels else []
            level = _level(blocks, attns)
            if i in cfg.down_levels:
                level.downsample = Downsample1d(d_out)
            self.down.append(level)
        self.mid = _mid(dims[-1], cfg.kernel_size)
        self.conv_out = MPConv1d(dims[-1], 2 * cfg.embed_dim, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg.clip_act
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
                h = h.clamp(-c, c)
            if i in self.cfg.down_levels:
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h))).clamp(-c, c)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder1d(nn.Module):
    """Latents ``[N, embed_dim, F]`` -> normalised mel ``[N, data_dim, 2F]``."""

    def __init__(self, cfg: MelVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # MMAudio shifts the decoder's resampling levels by one: encoder level i -> decoder level i + 1.
        self.up_levels = tuple(i + 1 for i in cfg.down_levels)
        d = cfg.hidden_dim * cfg.ch_mult[-1]
        self.conv_in = MPConv1d(cfg.embed_dim, d, cfg.kernel_size)
        self.mid = _mid(d, cfg.kernel_size)
        levels: list[nn.Module] = []
        for i in reversed(range(len(cfg.ch_mult))):
            d_out = cfg.hidden_dim * cfg.ch_mult[i]
            blocks = [
                ResBlock1d(d if j == 0 else d_out, d_out, cfg.kernel_size)
                for j in range(cfg.num_res_blocks + 1)
            ]
            attns = [Attention1d(d_out) for _ in blocks] if i in cfg.attn_levels else []
            level = _level(blocks, attns)
            d = d_out
            if i in self.up_levels:
                level.upsample = Upsample1d(d, cfg.kernel_size)
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.conv_out = MPConv1d(d, cfg.data_dim, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.cfg.clip_act
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z)))).clamp(-c, c)
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
                h = h.clamp(-c, c)
            if i in self.up_levels:
                h = level.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class MelVAE(nn.Module):
    """MMAudio's VAE: ``encode(mel) -> (mean, std)``, ``decode(z) -> mel`` (log-mel, un-normalised).

    ``data_mean`` / ``data_std`` (``[1, data_dim, 1]``) start as MMAudio's published tables for 80 and
    128 bins (zeros / ones for other sizes) and are part of the state dict, as in the official files.
    """

    def __init__(self, cfg: MelVAEConfig) -> None:
        super().__init__()
        if len(cfg.ch_mult) < 1 or any(not 0 <= i < len(cfg.ch_mult) for i in cfg.down_levels):
            raise ValueError(f"down_levels {cfg.down_levels} must index ch_mult {cfg.ch_mult}")
        if any(i + 1 >= len(cfg.ch_mult) for i in cfg.down_levels):
            raise ValueError(
                f"down_levels {cfg.down_levels}: the decoder upsamples at level i + 1, which must exist "
                f"in ch_mult {cfg.ch_mult}"
            )
        self.cfg = cfg
        mean, std = MEL_STATS.get(cfg.data_dim, ((0.0,) * cfg.data_dim, (1.0,) * cfg.data_dim))
        self.register_buffer("data_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("data_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1))
        self.encoder = Encoder1d(cfg)
        self.decoder = Decoder1d(cfg)

    def fold_weight_norm(self) -> MelVAE:
        """Normalise every conv weight in place (MMAudio's ``remove_weight_norm``); idempotent."""
        for m in self.modules():
            if isinstance(m, MPConv1d):
                m.fold_weight_norm()
        return self

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``[N, data_dim, 2F]`` -> posterior ``(mean, std)``, each ``[N, embed_dim, F]``."""
        moments = self.encoder((mel - self.data_mean) / self.data_std)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``[N, embed_dim, F]`` -> log-mel ``[N, data_dim, 2F]``."""
        return self.decoder(z) * self.data_std + self.data_mean
