"""BigVGAN generator: official checkpoint layout (weight-normed), weight-norm folding, and the forward
pass against a float64 reference written here from the formulas of NVIDIA/BigVGAN (``bigvgan.py``,
``activations.py``, ``alias_free_activation/torch``), reading the official-layout state dict directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from spatialgen.codecs.mmaudio_bigvgan import (
    BIGVGAN_CONFIGS,
    BigVGAN,
    BigVGANConfig,
    fold_weight_norm_state,
    kaiser_sinc_filter,
)

State = dict[str, torch.Tensor]


# ------------------------------------------------------------------ official layout (weight norm)
def official_bigvgan_layout(cfg: BigVGANConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official generator checkpoint (``torch.nn.utils.weight_norm`` on every conv)."""
    out: dict[str, tuple[int, ...]] = {}

    def wn_conv(prefix: str, weight: tuple[int, ...], bias: int | None) -> None:
        out[f"{prefix}.weight_g"] = (weight[0], 1, 1)
        out[f"{prefix}.weight_v"] = weight
        if bias is not None:
            out[f"{prefix}.bias"] = (bias,)

    def act(prefix: str, ch: int) -> None:
        out[f"{prefix}.act.alpha"] = (ch,)
        if cfg.activation == "snakebeta":
            out[f"{prefix}.act.beta"] = (ch,)
        out[f"{prefix}.upsample.filter"] = (1, 1, 12)
        out[f"{prefix}.downsample.lowpass.filter"] = (1, 1, 12)

    ch0 = cfg.upsample_initial_channel
    wn_conv("conv_pre", (ch0, cfg.num_mels, 7), ch0)
    n = 0
    for i, k in enumerate(cfg.upsample_kernel_sizes):
        c_in, c_out = ch0 // 2**i, ch0 // 2 ** (i + 1)
        wn_conv(f"ups.{i}.0", (c_in, c_out, k), c_out)  # ConvTranspose1d weight: [in, out, k]
        for kernel, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
            for j in range(len(dilations)):
                wn_conv(f"resblocks.{n}.convs1.{j}", (c_out, c_out, kernel), c_out)
                wn_conv(f"resblocks.{n}.convs2.{j}", (c_out, c_out, kernel), c_out)
            for a in range(2 * len(dilations)):
                act(f"resblocks.{n}.activations.{a}", c_out)
            n += 1
    c_last = ch0 // 2 ** len(cfg.upsample_rates)
    act("activation_post", c_last)
    wn_conv("conv_post", (1, c_last, 7), 1 if cfg.use_bias_at_final else None)
    return out


def ref_filter(cutoff: float, half_width: float, size: int = 12) -> np.ndarray:
    """Kaiser-windowed sinc (Kaiser's beta for attenuation A), normalised to unit sum."""
    attenuation = 2.285 * (size // 2 - 1) * math.pi * 4 * half_width + 7.95
    beta = (
        0.1102 * (attenuation - 8.7)
        if attenuation > 50
        else 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21)
    )
    t = np.arange(size) - (size - 1) / 2  # half-sample offsets for an even size
    h = 2 * cutoff * np.kaiser(size, beta) * np.sinc(2 * cutoff * t)
    return h / h.sum()


def random_official_bigvgan_state(cfg: BigVGANConfig, seed: int = 0) -> State:
    """Random weight-norm pairs, biases and (log-)Snake parameters all non-zero; filters as published."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_bigvgan_layout(cfg).items():
        if key.endswith("filter"):
            state[key] = torch.from_numpy(ref_filter(0.25, 0.3)).float().view(1, 1, 12)
        elif key.endswith("weight_g"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith((".alpha", ".beta")):
            state[key] = 0.3 * torch.randn(shape, generator=g)
        else:
            state[key] = 0.3 * torch.randn(shape, generator=g)
    return state


# ------------------------------------------------------------------ reference forward (float64)
def _w(s: State, p: str) -> torch.Tensor:
    v, g = s[f"{p}.weight_v"].double(), s[f"{p}.weight_g"].double()
    return g * v / v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def _bias(s: State, p: str) -> torch.Tensor | None:
    return s[f"{p}.bias"].double() if f"{p}.bias" in s else None


def _up2(x: torch.Tensor, f: np.ndarray) -> torch.Tensor:
    """2x: replicate-pad 5, zero-stuff, full convolution with 2 * filter, drop 15 samples per side."""
    xp = F.pad(x, (5, 5), mode="replicate").numpy()
    z = np.zeros((*xp.shape[:-1], 2 * xp.shape[-1] - 1))
    z[..., ::2] = xp
    y = np.apply_along_axis(lambda r: np.convolve(r, 2 * f), -1, z)
    return torch.from_numpy(y[..., 15:-15].copy())


def _down2(x: torch.Tensor, f: np.ndarray) -> torch.Tensor:
    """Replicate-pad 5 left / 6 right, correlate with the filter, keep every second output."""
    xp = F.pad(x, (5, 6), mode="replicate").numpy()
    y = np.apply_along_axis(lambda r: np.correlate(r, f, mode="valid"), -1, xp)
    return torch.from_numpy(y[..., ::2].copy())


def _act(s: State, p: str, x: torch.Tensor, cfg: BigVGANConfig) -> torch.Tensor:
    up = s[f"{p}.upsample.filter"].double().flatten().numpy()
    down = s[f"{p}.downsample.lowpass.filter"].double().flatten().numpy()
    a = s[f"{p}.act.alpha"].double().view(1, -1, 1)
    b = s[f"{p}.act.beta"].double().view(1, -1, 1) if cfg.activation == "snakebeta" else a
    if cfg.snake_logscale:
        a, b = a.exp(), b.exp()
    h = _up2(x, up)
    h = h + torch.sin(a * h) ** 2 / (b + 1e-9)
    return _down2(h, down)


def ref_vocode(s: State, cfg: BigVGANConfig, mel: torch.Tensor) -> torch.Tensor:
    x = F.conv1d(mel.double(), _w(s, "conv_pre"), _bias(s, "conv_pre"), padding=3)
    n_res = len(cfg.resblock_kernel_sizes)
    for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
        x = F.conv_transpose1d(x, _w(s, f"ups.{i}.0"), _bias(s, f"ups.{i}.0"), stride=u, padding=(k - u) // 2)
        total = torch.zeros_like(x)
        for r, (kernel, dilations) in enumerate(zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)):
            p = f"resblocks.{i * n_res + r}"
            h = x
            for j, d in enumerate(dilations):
                t = _act(s, f"{p}.activations.{2 * j}", h, cfg)
                t = F.conv1d(
                    t,
                    _w(s, f"{p}.convs1.{j}"),
                    _bias(s, f"{p}.convs1.{j}"),
                    dilation=d,
                    padding=d * (kernel - 1) // 2,
                )
                t = _act(s, f"{p}.activations.{2 * j + 1}", t, cfg)
                t = F.conv1d(
                    t, _w(s, f"{p}.convs2.{j}"), _bias(s, f"{p}.convs2.{j}"), padding=(kernel - 1) // 2
                )
                h = h + t
            total = total + h
        x = total / n_res
    x = _act(s, "activation_post", x, cfg)
    x = F.conv1d(x, _w(s, "conv_post"), _bias(s, "conv_post"), padding=3)
    return torch.tanh(x) if cfg.use_tanh_at_final else x.clamp(-1, 1)


# ------------------------------------------------------------------ tests
TINY_V1 = BigVGANConfig(
    6, (2, 2), (4, 4), 16, resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3), (1, 2))
)
TINY_V2 = BigVGANConfig(6, (4, 2), (8, 4), 8, use_tanh_at_final=False, use_bias_at_final=False)
TINY_SNAKE = BigVGANConfig(
    6,
    (2,),
    (4,),
    8,
    activation="snake",
    snake_logscale=False,
    resblock_kernel_sizes=(3,),
    resblock_dilation_sizes=((1, 3),),
)


@pytest.mark.parametrize(("name", "params"), [("v1_16k", 112.2), ("v2_44k", 122.2)])
def test_full_size_layout_matches_official(name: str, params: float) -> None:
    """Both official generators: every key and shape after folding; 112 M (v1) / 122 M (v2) parameters."""
    cfg = BIGVGAN_CONFIGS[name]
    with torch.device("meta"):
        net = BigVGAN(cfg)
        official = {k: torch.empty(s) for k, s in official_bigvgan_layout(cfg).items()}
        folded = fold_weight_norm_state(official)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        k: tuple(v.shape) for k, v in folded.items()
    }
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == params
    assert cfg.hop_length == {"v1_16k": 256, "v2_44k": 512}[name]


def test_kaiser_filters_equal_formula() -> None:
    net = BigVGAN(TINY_V1)
    ref = ref_filter(0.25, 0.3)
    for key, value in net.state_dict().items():
        if key.endswith("filter"):
            np.testing.assert_allclose(value.flatten().numpy(), ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        kaiser_sinc_filter(0.1, 0.2, 12).flatten().double().numpy(), ref_filter(0.1, 0.2), atol=1e-7
    )


@pytest.mark.parametrize("cfg", [TINY_V1, TINY_V2, TINY_SNAKE], ids=["v1", "v2", "snake"])
def test_forward_equals_reference(cfg: BigVGANConfig) -> None:
    state = random_official_bigvgan_state(cfg, seed=3)
    net = BigVGAN(cfg).double()
    net.load_state_dict(fold_weight_norm_state({k: v.double() for k, v in state.items()}), strict=True)
    mel = torch.randn(2, cfg.num_mels, 9, dtype=torch.float64)
    with torch.no_grad():
        out = net(mel)
    ref = ref_vocode(state, cfg, mel)
    assert out.shape == (2, 1, 9 * cfg.hop_length)
    assert float(ref.abs().mean()) > 0.05 and float(ref.abs().max()) <= 1.0  # not saturated, not silent
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_both_weight_norm_layouts_fold_alike() -> None:
    """torch's old ``weight_g/weight_v`` and the parametrization ``original0/original1`` names."""
    state = random_official_bigvgan_state(TINY_V2)
    renamed = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            renamed[key[: -len("weight_g")] + "parametrizations.weight.original0"] = value
        elif key.endswith(".weight_v"):
            renamed[key[: -len("weight_v")] + "parametrizations.weight.original1"] = value
        else:
            renamed[key] = value
    a, b = fold_weight_norm_state(state), fold_weight_norm_state(renamed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # And torch's own weight norm agrees with the folded weight.
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(8, 4, 8, 4))
    conv.parametrizations.weight.original0.data = state["ups.0.0.weight_g"]
    conv.parametrizations.weight.original1.data = state["ups.0.0.weight_v"]
    torch.testing.assert_close(a["ups.0.0.weight"], conv.weight.detach())


def test_half_weight_norm_pair_is_an_error() -> None:
    state = random_official_bigvgan_state(TINY_V2)
    del state["conv_pre.weight_g"]
    with pytest.raises(KeyError, match="'conv_pre' lacks its magnitude"):
        fold_weight_norm_state(state)


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="snake"):
        BigVGAN(BigVGANConfig(4, (2,), (4,), 8, activation="relu"))
    with pytest.raises(ValueError, match="even kernel - rate"):
        BigVGAN(BigVGANConfig(4, (2,), (5,), 8))
