"""Exact MMAudio init: a converted network gives each ear MMAudio's own velocity when L = R.

The reference below is MMAudio's ``predict_flow`` / ``preprocess_conditions`` / Euler CFG sampler
(hkchengrex/MMAudio ``mmaudio/model/networks.py``, ``transformer_layers.py``, ``embeddings.py``,
``flow_matching.py``) written again in numpy from the formulas: one sample, one ear, the three joint
streams (latent, clip, text) in one attention, fused blocks, the final layer under the *global*
condition (MMAudio's #55), nearest-exact sync resize, aligned RoPE from positions, float64 throughout.
It shares only the block-level helpers of ``test_convert.py`` (themselves numpy from the formulas).
"""

import numpy as np
import pytest
import torch

from spatialgen.models.visaudio import ViSAudioNet, config_from_mmaudio, generate, load_mmaudio_weights

from .test_convert import (
    CLIP,
    FUSED,
    JOINT,
    LAT,
    NTXT,
    SYNC,
    TEXT,
    attend,
    conv_same,
    layer_norm,
    official_state,
    silu,
    stream_post,
    stream_pre,
    swiglu_ref,
)

N, M, S, PE_FRAMES = 20, 8, 16, 4  # latent frames, CLIP frames, sync tokens (2 segments), PE frames


def selu(x):
    return 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))


def linear(s, p, x):
    return x @ s[f"{p}.weight"].T + s[f"{p}.bias"]


def mm_conditions(s, clip, sync, text, v2):
    """MMAudio ``preprocess_conditions`` for one sample."""
    act = silu if v2 else selu
    mlp = 2 if v2 else 1
    sync = (sync.reshape(-1, 8, sync.shape[-1]) + s["sync_pos_emb"][0, 0]).reshape(-1, sync.shape[-1])
    sync_f = swiglu_ref(
        s,
        "sync_input_proj.2",
        act(conv_same(sync, s["sync_input_proj.0.weight"], s["sync_input_proj.0.bias"])),
    )
    clip_f = linear(s, "clip_input_proj.0", clip)
    text_f = linear(s, "text_input_proj.0", text)
    if v2:
        clip_f, text_f = silu(clip_f), silu(text_f)
    clip_f = swiglu_ref(s, f"clip_input_proj.{mlp}", clip_f)
    text_f = swiglu_ref(s, f"text_input_proj.{mlp}", text_f)
    src = np.minimum(np.floor((np.arange(N) + 0.5) * len(sync_f) / N).astype(int), len(sync_f) - 1)
    return {
        "clip": clip_f,
        "text": text_f,
        "sync": sync_f[src],  # nearest-exact resize to the latent length
        "global": linear(s, "clip_cond_proj", clip_f.mean(0)) + linear(s, "text_cond_proj", text_f.mean(0)),
    }


def mm_flow(s, x, t, c, v2):
    """MMAudio ``predict_flow`` for one sample: ``x [N, latent]`` -> velocity ``[N, latent]``."""
    act = silu if v2 else selu
    latent = swiglu_ref(
        s,
        "audio_input_proj.2",
        act(conv_same(x, s["audio_input_proj.0.weight"], s["audio_input_proj.0.bias"])),
    )
    fdim = s["t_embed.mlp.0.weight"].shape[1]
    freqs = (10000.0 / (1.0 if v2 else 10000.0)) * 10000.0 ** (-np.arange(0, fdim, 2) / fdim)
    emb = np.concatenate([np.cos(t * freqs), np.sin(t * freqs)])
    t_emb = linear(s, "t_embed.mlp.2", silu(linear(s, "t_embed.mlp.0", emb)))
    global_c = (t_emb + swiglu_ref(s, "global_cond_mlp", c["global"]))[None]  # [1, D]
    extended_c = global_c + c["sync"]
    pos_a, pos_v = np.arange(N, dtype=float), np.arange(M) * N / M
    clip_f, text_f = c["clip"], c["text"]
    for i in range(JOINT):
        p = f"joint_blocks.{i}"
        qx, mx = stream_pre(s, f"{p}.latent_block", latent, extended_c, pos_a)
        qc, mc = stream_pre(s, f"{p}.clip_block", clip_f, global_c, pos_v)
        qt, mt = stream_pre(s, f"{p}.text_block", text_f, global_c, None)
        out = attend([qx, qc, qt])
        latent = stream_post(s, f"{p}.latent_block", latent, out[:N], mx)
        clip_f = stream_post(s, f"{p}.clip_block", clip_f, out[N : N + M], mc)
        text_f = stream_post(s, f"{p}.text_block", text_f, out[N + M :], mt)
    for i in range(FUSED):
        qkv, mods = stream_pre(s, f"fused_blocks.{i}", latent, extended_c, pos_a)
        latent = stream_post(s, f"fused_blocks.{i}", latent, attend([qkv]), mods)
    shift, scale = np.split(linear(s, "final_layer.adaLN_modulation.1", silu(global_c)), 2, axis=-1)
    return conv_same(
        layer_norm(latent) * (1 + scale) + shift, s["final_layer.conv.weight"], s["final_layer.conv.bias"]
    )


def mm_sample(s, noise, cond, uncond, w, v2, steps=25):
    """MMAudio's Euler sampler with CFG (guidance off for w < 1), then ``unnormalize``."""
    x = noise
    for i in range(steps):
        t = i / steps
        v = mm_flow(s, x, t, cond, v2)
        if w >= 1.0:
            v = w * v + (1 - w) * mm_flow(s, x, t, uncond, v2)
        x = x + v / steps
    return x * s["latent_std"][0, 0] + s["latent_mean"][0, 0]


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def setup(v2, **overrides):
    sd = official_state(seed=3, v2=v2, scale=0.08)  # keeps activations O(1) over 25 steps
    cfg = config_from_mmaudio(sd, pe_dim=8, pe_grid=(2, 2), duration=N / 31.25, **overrides)
    net = ViSAudioNet(cfg).double().eval()
    load_mmaudio_weights(net, sd)
    gen = torch.Generator().manual_seed(5)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    feats = {
        "clip": r(2, M, CLIP),
        "sync": r(2, S, SYNC),
        "pe": r(2, PE_FRAMES, 4, 8),
        "text": r(2, NTXT, TEXT),
    }
    return {k: v.numpy() for k, v in sd.items()}, net, feats, r


def conditions(net, feats, drop=False):
    mask = torch.full((2,), drop)
    return net.prepare_conditions(
        feats["clip"], feats["sync"], feats["pe"], latent_len=N, text=feats["text"], drop=mask, drop_text=mask
    )


def mm_uncond(s):
    empty_clip, empty_sync = np.repeat(s["empty_clip_feat"], M, 0), np.repeat(s["empty_sync_feat"], S, 0)
    return empty_clip, empty_sync, s["empty_string_feat"]


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("ear_attention", ["joint_offset", "per_ear"])
def test_each_ear_velocity_equals_mmaudio(v2, ear_attention):
    s, net, feats, r = setup(v2, ear_attention=ear_attention)
    mono = r(2, LAT, N)
    x = torch.stack((mono, mono), dim=1)  # L = R
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    with torch.no_grad():
        v = net(x, t, conditions(net, feats)).numpy()
        v_null = net(x, t, conditions(net, feats, drop=True)).numpy()
    f = {k: a.numpy() for k, a in feats.items()}
    for b in range(2):
        c = mm_conditions(s, f["clip"][b], f["sync"][b], f["text"][b], v2)
        u = mm_conditions(s, *mm_uncond(s), v2)
        ref = mm_flow(s, mono[b].numpy().T, float(t[b]), c, v2).T
        ref_null = mm_flow(s, mono[b].numpy().T, float(t[b]), u, v2).T
        for ear in (0, 1):
            assert rel(v[b, ear], ref) <= 1e-6, (b, ear, rel(v[b, ear], ref))
            assert rel(v_null[b, ear], ref_null) <= 1e-6


@pytest.mark.parametrize(
    ("override", "worse_than"),
    [({"ear_attention": "joint"}, 1e-4), ({"final_cond": "local"}, 1e-4), ({"text_len": 0}, 1e-3)],
    ids=["no_offset", "local_final", "no_text"],
)
def test_each_deviation_from_mmaudio_breaks_exactness(override, worse_than):
    """The three choices the exact init needs are each necessary (same setup, one changed)."""
    s, net, feats, r = setup(False, **override)
    mono = r(2, LAT, N)
    x = torch.stack((mono, mono), dim=1)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    if override.get("text_len") == 0:
        feats.pop("text")
    with torch.no_grad():
        cond = net.prepare_conditions(
            feats["clip"], feats["sync"], feats["pe"], latent_len=N, text=feats.get("text")
        )
        v = net(x, t, cond).numpy()
    f = {k: a.numpy() for k, a in feats.items()}
    text = f.get("text", np.repeat(s["empty_string_feat"][None], 2, 0))
    c = mm_conditions(s, f["clip"][0], f["sync"][0], text[0], False)
    ref = mm_flow(s, mono[0].numpy().T, 0.3, c, False).T
    assert rel(v[0, 0], ref) > worse_than


def test_cfg_euler_sample_equals_mmaudio():
    """MMAudio's 25 Euler steps with CFG 4.5 from the same noise in both ears (reference: sample 0)."""
    steps = 25
    w = 4.5
    s, net, feats, r = setup(False)
    mono = r(2, LAT, N)
    out = generate(
        net,
        conditions(net, feats),
        uncond=conditions(net, feats, drop=True),
        cfg_scale=w,
        steps=steps,
        noise=torch.stack((mono, mono), dim=1),
    ).numpy()
    f = {k: a.numpy() for k, a in feats.items()}
    u = mm_conditions(s, *mm_uncond(s), False)
    c = mm_conditions(s, f["clip"][0], f["sync"][0], f["text"][0], False)
    ref = mm_sample(s, mono[0].numpy().T, c, u, w, False, steps=steps).T
    for ear in (0, 1):
        assert rel(out[0, ear], ref) <= 1e-6, (ear, rel(out[0, ear], ref))
