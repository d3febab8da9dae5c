"""MMAudio mel VAE: official checkpoint layout, strict loading, and the forward pass against a float64
reference written here from the formulas of hkchengrex/MMAudio ``mmaudio/ext/autoencoder`` (EDM2
magnitude-preserving layers) that reads the official-layout state dict directly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from spatialgen.codecs.mmaudio_codec import MMAUDIO_CODECS
from spatialgen.codecs.mmaudio_tables import MEL_STATS
from spatialgen.codecs.mmaudio_vae import MelVAE, MelVAEConfig

State = dict[str, torch.Tensor]


# ------------------------------------------------------------------ official layout (from vae.py)
def official_vae_layout(cfg: MelVAEConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official VAE checkpoint, following MMAudio's ``VAE`` / ``Encoder1D`` /
    ``Decoder1D`` constructors (``MPConv1D`` weights ``[out, in, k]``, scalar ``learnable_gain``)."""
    k = cfg.kernel_size
    out: dict[str, tuple[int, ...]] = {
        "data_mean": (1, cfg.data_dim, 1),
        "data_std": (1, cfg.data_dim, 1),
    }

    def res(prefix: str, d_in: int, d_out: int) -> None:
        out[f"{prefix}.conv1.weight"] = (d_out, d_in, k)
        out[f"{prefix}.conv2.weight"] = (d_out, d_out, k)
        if d_in != d_out:
            out[f"{prefix}.nin_shortcut.weight"] = (d_out, d_in, 1)

    def attn(prefix: str, c: int) -> None:
        out[f"{prefix}.qkv.weight"] = (3 * c, c, 1)
        out[f"{prefix}.proj_out.weight"] = (c, c, 1)

    def mid(prefix: str, c: int) -> None:
        res(f"{prefix}.mid.block_1", c, c)
        attn(f"{prefix}.mid.attn_1", c)
        res(f"{prefix}.mid.block_2", c, c)

    h, mult = cfg.hidden_dim, cfg.ch_mult
    out["encoder.conv_in.weight"] = (h, cfg.data_dim, k)
    block_in = h
    for i, m in enumerate(mult):
        for j in range(cfg.num_res_blocks):
            res(f"encoder.down.{i}.block.{j}", block_in, h * m)
            block_in = h * m
            if i in cfg.attn_levels:
                attn(f"encoder.down.{i}.attn.{j}", block_in)
        if i in cfg.down_levels:
            out[f"encoder.down.{i}.downsample.conv1.weight"] = (block_in, block_in, 1)
            out[f"encoder.down.{i}.downsample.conv2.weight"] = (block_in, block_in, 1)
    mid("encoder", block_in)
    out["encoder.conv_out.weight"] = (2 * cfg.embed_dim, block_in, k)
    out["encoder.learnable_gain"] = ()
    block_in = h * mult[-1]
    out["decoder.conv_in.weight"] = (block_in, cfg.embed_dim, k)
    mid("decoder", block_in)
    for i in reversed(range(len(mult))):
        for j in range(cfg.num_res_blocks + 1):
            res(f"decoder.up.{i}.block.{j}", block_in, h * mult[i])
            block_in = h * mult[i]
            if i in cfg.attn_levels:
                attn(f"decoder.up.{i}.attn.{j}", block_in)
        if i - 1 in cfg.down_levels:
            out[f"decoder.up.{i}.upsample.conv.weight"] = (block_in, block_in, k)
    out["decoder.conv_out.weight"] = (cfg.data_dim, block_in, k)
    out["decoder.learnable_gain"] = ()
    return out


def random_official_vae_state(cfg: MelVAEConfig, seed: int = 0) -> State:
    """Random raw (un-normalised) weights; gains and mel statistics perturbed off their init values."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_vae_layout(cfg).items():
        if key.endswith("learnable_gain"):
            state[key] = 0.3 * torch.randn((), generator=g)
        elif key == "data_mean":
            state[key] = -2.0 + 0.5 * torch.randn(shape, generator=g)
        elif key == "data_std":
            state[key] = 1.0 + 0.5 * torch.rand(shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


# ------------------------------------------------------------------ reference forward (float64)
def _wn(w: torch.Tensor) -> torch.Tensor:
    """EDM2 forced weight norm: each output filter to unit RMS, then divided by sqrt(fan_in)."""
    w = w.double()
    fan_in = w[0].numel()
    rms = w.reshape(w.shape[0], -1).pow(2).mean(1).sqrt().view(-1, 1, 1)
    return w / (1e-4 + rms) / math.sqrt(fan_in)


def _conv(s: State, key: str, x: torch.Tensor, gain: torch.Tensor | float = 1.0) -> torch.Tensor:
    w = _wn(s[f"{key}.weight"]) * gain
    return F.conv1d(x, w, padding=w.shape[-1] // 2)


def _unit_rms(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / (1e-4 + x.pow(2).mean(dim, keepdim=True).sqrt())


def _silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x) / 0.596


def _blend(a: torch.Tensor, b: torch.Tensor, t: float = 0.3) -> torch.Tensor:
    return ((1 - t) * a + t * b) / math.sqrt((1 - t) ** 2 + t**2)


def _res(s: State, p: str, x: torch.Tensor) -> torch.Tensor:
    x = _unit_rms(x, 1)
    h = _conv(s, f"{p}.conv2", _silu(_conv(s, f"{p}.conv1", _silu(x))))
    if f"{p}.nin_shortcut.weight" in s:
        x = _conv(s, f"{p}.nin_shortcut", x)
    return _blend(x, h)


def _attn(s: State, p: str, x: torch.Tensor) -> torch.Tensor:
    b, c, n = x.shape
    y = _conv(s, f"{p}.qkv", x).view(b, c, 3, n)  # one head: channel-major, (q, k, v) innermost
    q, k, v = (_unit_rms(y[:, :, i], 1) for i in range(3))
    weights = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(c), dim=-1)
    h = torch.einsum("bts,bcs->bct", weights, v)
    return _blend(x, _conv(s, f"{p}.proj_out", h))


def ref_encode(s: State, cfg: MelVAEConfig, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = cfg.clip_act
    h = _conv(s, "encoder.conv_in", (mel.double() - s["data_mean"].double()) / s["data_std"].double())
    for i in range(len(cfg.ch_mult)):
        for j in range(cfg.num_res_blocks):
            h = _res(s, f"encoder.down.{i}.block.{j}", h)
            if i in cfg.attn_levels:
                h = _attn(s, f"encoder.down.{i}.attn.{j}", h)
            h = h.clamp(-c, c)
        if i in cfg.down_levels:
            h = _conv(s, f"encoder.down.{i}.downsample.conv1", h)
            h = 0.5 * (h[..., 0::2] + h[..., 1::2])
            h = _conv(s, f"encoder.down.{i}.downsample.conv2", h)
    h = _res(s, "encoder.mid.block_1", h)
    h = _attn(s, "encoder.mid.attn_1", h)
    h = _res(s, "encoder.mid.block_2", h).clamp(-c, c)
    moments = _conv(s, "encoder.conv_out", _silu(h), gain=1 + s["encoder.learnable_gain"].double())
    mean, logvar = moments[:, : cfg.embed_dim], moments[:, cfg.embed_dim :]
    return mean, torch.exp(0.5 * logvar.clamp(-30, 20))


def ref_decode(s: State, cfg: MelVAEConfig, z: torch.Tensor) -> torch.Tensor:
    c = cfg.clip_act
    h = _conv(s, "decoder.conv_in", z.double())
    h = _res(s, "decoder.mid.block_1", h)
    h = _attn(s, "decoder.mid.attn_1", h)
    h = _res(s, "decoder.mid.block_2", h).clamp(-c, c)
    for i in reversed(range(len(cfg.ch_mult))):
        for j in range(cfg.num_res_blocks + 1):
            h = _res(s, f"decoder.up.{i}.block.{j}", h)
            if i in cfg.attn_levels:
                h = _attn(s, f"decoder.up.{i}.attn.{j}", h)
            h = h.clamp(-c, c)
        if i - 1 in cfg.down_levels:
            h = _conv(s, f"decoder.up.{i}.upsample.conv", h.repeat_interleave(2, dim=-1))
    out = _conv(s, "decoder.conv_out", _silu(h), gain=1 + s["decoder.learnable_gain"].double())
    return out * s["data_std"].double() + s["data_mean"].double()


# ------------------------------------------------------------------ tests
TINY = MelVAEConfig(data_dim=80, embed_dim=4, hidden_dim=8, ch_mult=(1, 2), num_res_blocks=1)
CASES = {
    "tiny": TINY,
    # level attention, two res blocks and a clamp that bites (activations reach a few units)
    "attn_clamp": MelVAEConfig(
        data_dim=12,
        embed_dim=3,
        hidden_dim=6,
        ch_mult=(1, 2, 2),
        num_res_blocks=2,
        attn_levels=(1,),
        clip_act=1.5,
    ),
}


@pytest.mark.parametrize("name", ["mmaudio_vae_16k", "mmaudio_vae_44k"])
def test_full_size_layout_matches_official(name: str) -> None:
    cfg = MMAUDIO_CODECS[name].vae
    with torch.device("meta"):
        vae = MelVAE(cfg)
    ours = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert ours == official_vae_layout(cfg)
    enc = sum(p.numel() for p in vae.encoder.parameters())
    dec = sum(p.numel() for p in vae.decoder.parameters())
    # MMAudio reports 72.5 M / 99.1 M (16k) and 129.1 M / 176.3 M (44k) encoder / decoder parameters.
    want = {"mmaudio_vae_16k": (72.5, 99.1), "mmaudio_vae_44k": (129.1, 176.3)}[name]
    assert (round(enc / 1e6, 1), round(dec / 1e6, 1)) == want


def test_tables_are_mmaudio_published() -> None:
    """Spot values of MMAudio's DATA_MEAN/STD tables (first and last bins) and their lengths."""
    mean80, std80 = MEL_STATS[80]
    mean128, std128 = MEL_STATS[128]
    assert (len(mean80), len(std80), len(mean128), len(std128)) == (80, 80, 128, 128)
    assert (mean80[0], mean80[-1], std80[0], std80[-1]) == (-1.6058, -2.9673, 1.0291, 1.1070)
    assert (mean128[0], mean128[-1], std128[0], std128[-1]) == (-3.3462, -11.3861, 2.3804, 0.7164)
    vae = MelVAE(TINY)
    assert vae.data_mean.shape == (1, 80, 1) and float(vae.data_std[0, -1, 0]) == pytest.approx(1.1070)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_equals_reference(case: str) -> None:
    cfg = CASES[case]
    state = random_official_vae_state(cfg, seed=1)
    vae = MelVAE(cfg)
    vae.load_state_dict(state, strict=True)
    vae.double().fold_weight_norm()  # fold in float64 (MMAudio folds in the weights' dtype)
    mel = -2.0 + torch.randn(2, cfg.data_dim, 24, dtype=torch.float64)
    mean, std = vae.encode(mel)
    ref_mean, ref_std = ref_encode(state, cfg, mel)
    assert mean.shape == (2, cfg.embed_dim, 12)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(std, ref_std, rtol=1e-10, atol=1e-10)
    z = torch.randn(2, cfg.embed_dim, 7, dtype=torch.float64)
    out = vae.decode(z)
    assert out.shape == (2, cfg.data_dim, 14)
    torch.testing.assert_close(out, ref_decode(state, cfg, z), rtol=1e-10, atol=1e-10)


def test_unfolded_weights_compute_the_same() -> None:
    """Before folding, every conv normalises on the fly; folding is idempotent."""
    vae = MelVAE(TINY).double()
    mel = torch.randn(1, 80, 8, dtype=torch.float64)
    before = vae.encode(mel)[0]
    vae.fold_weight_norm().fold_weight_norm()
    torch.testing.assert_close(vae.encode(mel)[0], before, rtol=1e-12, atol=1e-12)


def test_logvar_clamp() -> None:
    """A huge encoder gain pushes log-variances past 20: std saturates at exp(10), as in MMAudio."""
    state = random_official_vae_state(TINY)
    state["encoder.learnable_gain"] = torch.tensor(1e4)
    vae = MelVAE(TINY)
    vae.load_state_dict(state)
    with torch.no_grad():
        _, std = vae.double().fold_weight_norm().encode(torch.randn(1, 80, 8, dtype=torch.float64))
    assert float(std.max()) == pytest.approx(math.exp(10.0)) and float(std.min()) == pytest.approx(
        math.exp(-15.0)
    )


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="level i \\+ 1"):
        MelVAE(MelVAEConfig(data_dim=8, embed_dim=2, hidden_dim=4, ch_mult=(1,), down_levels=(0,)))
    with pytest.raises(ValueError, match="must index ch_mult"):
        MelVAE(MelVAEConfig(data_dim=8, embed_dim=2, hidden_dim=4, ch_mult=(1, 2), down_levels=(5,)))
