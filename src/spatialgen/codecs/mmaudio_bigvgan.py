"""BigVGAN generator (mel -> waveform), the vocoder of both MMAudio latent spaces.

Re-implemented from NVIDIA/BigVGAN (``bigvgan.py``, ``activations.py``,
``alias_free_activation/torch/{filter,resample,act}.py``; Lee et al., "BigVGAN: A Universal Neural
Vocoder with Large-Scale Training", arXiv 2206.04658), as vendored by hkchengrex/MMAudio
(``mmaudio/ext/bigvgan`` for v1, ``mmaudio/ext/bigvgan_v2`` for v2). The ``bigvgan`` package on PyPI is
NVIDIA's code but pulls training-only dependencies (auraloss, nnAudio, pesq, matplotlib, librosa,
tensorboard) and imports matplotlib and librosa at import time, so the generator is written here.

Structure: ``conv_pre`` (k7) -> per stage: transposed-conv upsample (``ups.i.0``), then the mean of
``len(resblock_kernel_sizes)`` AMP blocks (``resblocks.*``) -> anti-aliased SnakeBeta
(``activation_post``) -> ``conv_post`` (k7) -> tanh (v1) or clamp to [-1, 1] (v2). Each AMP block runs
``x += conv2(act(conv1(act(x))))`` per dilation; every activation is up-sampled 2x with a Kaiser-sinc
filter, applied, low-passed and down-sampled 2x (the filters are buffers in the official files).

Official weights are weight-normed (``weight_g`` / ``weight_v``, or torch's newer
``parametrizations.weight.original0/1``); :func:`fold_weight_norm_state` turns either into plain
``weight`` tensors, which this module holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BIGVGAN_CONFIGS", "BigVGAN", "BigVGANConfig", "fold_weight_norm_state", "kaiser_sinc_filter"]


@dataclass(frozen=True)
class BigVGANConfig:
    """Generator hyper-parameters (the fields of NVIDIA/BigVGAN's ``config.json`` that shape the net)."""

    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame: the product of the upsample rates."""
        return math.prod(self.upsample_rates)


#: v1 16 kHz (MMAudio ``ext/bigvgan/bigvgan_vocoder.yml``, Make-An-Audio 2's ``best_netG.pt``) and
#: v2 44.1 kHz (``nvidia/bigvgan_v2_44khz_128band_512x`` ``config.json``).
BIGVGAN_CONFIGS: dict[str, BigVGANConfig] = {
    "v1_16k": BigVGANConfig(80, (4, 4, 2, 2, 2, 2), (8, 8, 4, 4, 4, 4), 1536),
    "v2_44k": BigVGANConfig(
        128, (8, 4, 2, 2, 2, 2), (16, 8, 4, 4, 4, 4), 1536, use_tanh_at_final=False, use_bias_at_final=False
    ),
}


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass ``[1, 1, kernel_size]`` with unit DC gain (cutoff in cycles/sample).

    The Kaiser ``beta`` follows Kaiser's formula for the attenuation ``A`` of a transition band of
    width ``2 * half_width`` (as in NVIDIA/BigVGAN ``alias_free_activation/torch/filter.py``).
    """
    half = kernel_size // 2
    a = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    if a > 50.0:
        beta = 0.1102 * (a - 8.7)
    elif a >= 21.0:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False, device="cpu")
    t = (
        torch.arange(-half, half, device="cpu") + 0.5
        if kernel_size % 2 == 0
        else torch.arange(kernel_size) - half
    )
    filt = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (filt / filt.sum()).view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """2x up-sampling: replicate-pad, zero-stuffing transposed conv with the low-pass, crop."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        w = self.filter.to(x.dtype).expand(x.shape[1], -1, -1)
        x = self.ratio * F.conv_transpose1d(x, w, stride=self.ratio, groups=x.shape[1])
        return x[..., self.crop_left : -self.crop_right]


class LowPassFilter1d(nn.Module):
    """Replicate-padded depthwise low-pass with a stride (the down-sampler)."""

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int = 12) -> None:
        super().__init__()
        self.stride = stride
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        w = self.filter.to(x.dtype).expand(x.shape[1], -1, -1)
        return F.conv1d(x, w, stride=self.stride, groups=x.shape[1])


class DownSample1d(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """Snake ``x + sin²(a x) / a`` or SnakeBeta ``x + sin²(a x) / b`` with per-channel ``a``, ``b``.

    With ``logscale`` the parameters are stored as logs (zeros at init).
    """

    def __init__(self, channels: int, *, beta: bool, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        if beta:
            self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha[None, :, None]
        b = self.beta[None, :, None] if hasattr(self, "beta") else a
        if self.logscale:
            a, b = a.exp(), b.exp()
        return x + torch.sin(x * a).pow(2) / (b + 1e-9)


class Activation1d(nn.Module):
    """Anti-aliased activation: up-sample 2x, activate, down-sample 2x."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.upsample = UpSample1d()
        self.downsample = DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class AMPBlock1(nn.Module):
    """Anti-aliased multi-periodicity block: per dilation, ``x += c2(act(c1(act(x))))``."""

    def __init__(
        self, cfg: BigVGANConfig, channels: int, kernel_size: int, dilations: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_padding(kernel_size, 1)) for _ in dilations
        )
        for conv in (*self.convs1, *self.convs2):
            nn.init.normal_(conv.weight, 0.0, 0.01)  # BigVGAN's init_weights
        self.activations = nn.ModuleList(
            Activation1d(Snake(channels, beta=cfg.activation == "snakebeta", logscale=cfg.snake_logscale))
            for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            x = x + c2(self.activations[2 * i + 1](c1(self.activations[2 * i](x))))
        return x


class BigVGAN(nn.Module):
    """Mel ``[N, num_mels, M]`` -> waveform ``[N, 1, M * hop_length]`` in [-1, 1]."""

    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        if cfg.activation not in ("snake", "snakebeta"):
            raise ValueError(f"BigVGAN activation must be 'snake' or 'snakebeta', got {cfg.activation!r}")
        if len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes) or any(
            (k - u) % 2 for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)
        ):
            raise ValueError(
                f"upsample_kernel_sizes {cfg.upsample_kernel_sizes} must pair with upsample_rates "
                f"{cfg.upsample_rates} with an even kernel - rate (so each stage upsamples exactly)"
            )
        if len(cfg.resblock_kernel_sizes) != len(cfg.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        self.cfg = cfg
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            up = nn.ConvTranspose1d(ch >> i, ch >> (i + 1), k, u, padding=(k - u) // 2)
            nn.init.normal_(up.weight, 0.0, 0.01)
            self.ups.append(nn.ModuleList([up]))
            for kernel, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(AMPBlock1(cfg, ch >> (i + 1), kernel, tuple(dilations)))
        out_ch = ch >> len(cfg.upsample_rates)
        act = Snake(out_ch, beta=cfg.activation == "snakebeta", logscale=cfg.snake_logscale)
        self.activation_post = Activation1d(act)
        self.conv_post = nn.Conv1d(out_ch, 1, 7, padding=3, bias=cfg.use_bias_at_final)
        nn.init.normal_(self.conv_post.weight, 0.0, 0.01)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.cfg.use_tanh_at_final else x.clamp(-1.0, 1.0)


_WN_OLD = re.compile(r"^(.*)\.weight_(g|v)$")
_WN_NEW = re.compile(r"^(.*)\.parametrizations\.weight\.original(0|1)$")


def fold_weight_norm_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace weight-norm pairs (``g``, ``v``) by ``weight = g * v / |v|`` (norm over all dims but 0).

    Accepts torch's old layout (``X.weight_g`` / ``X.weight_v``) and the parametrization layout
    (``X.parametrizations.weight.original0`` / ``original1``); other keys pass through. A pair with one
    half missing raises ``KeyError`` naming it.
    """
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        m = _WN_OLD.match(key) or _WN_NEW.match(key)
        if m is None:
            out[key] = value
            continue
        part = "g" if m.group(2) in ("g", "0") else "v"
        pairs.setdefault(m.group(1), {})[part] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            missing = "magnitude (weight_g)" if "g" not in pair else "direction (weight_v)"
            raise KeyError(f"weight-norm pair of {prefix!r} lacks its {missing}")
        g, v = pair["g"], pair["v"]
        norm = torch.linalg.vector_norm(v.double(), dim=list(range(1, v.ndim)), keepdim=True)
        out[f"{prefix}.weight"] = (g.double() * v.double() / norm).to(v.dtype)
    return out
