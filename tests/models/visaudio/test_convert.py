"""MMAudio -> ViSAudio converter: a random state dict in the official layout maps completely onto the
shared parts, and the converted blocks match a reference forward written here from MMAudio's formulas."""

import numpy as np
import pytest
import torch

from spatialgen.models.visaudio import ViSAudioNet, config_from_mmaudio, load_mmaudio_weights
from spatialgen.nn.rope import rope_angles

D, H, LAT, CLIP, SYNC, TEXT, NTXT, JOINT, FUSED = 128, 2, 8, 16, 16, 16, 5, 2, 1
HID = 512  # SwiGLU width: int(2 * 4 * 128 / 3) = 341 rounded up to a multiple of 256


def official_state(seed=0, v2=False, scale=0.3):
    """Random MMAudio network state dict (key names and shapes of the released v1 or v2 checkpoints);
    every tensor is random, including those MMAudio initialises to constants (biases, norms, nulls)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def put(key, *shape):
        sd[key] = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)

    def swiglu(prefix, k):
        ks = (k,) if k > 1 else ()
        put(f"{prefix}.w1.weight", HID, D, *ks)
        put(f"{prefix}.w2.weight", D, HID, *ks)
        put(f"{prefix}.w3.weight", HID, D, *ks)

    def stream(prefix, k, pre_only):
        put(f"{prefix}.attn.qkv.weight", 3 * D, D)
        put(f"{prefix}.attn.qkv.bias", 3 * D)
        sd[f"{prefix}.attn.q_norm.weight"] = 1 + 0.1 * torch.randn(D // H, generator=gen, dtype=torch.float64)
        sd[f"{prefix}.attn.k_norm.weight"] = 1 + 0.1 * torch.randn(D // H, generator=gen, dtype=torch.float64)
        n = 2 if pre_only else 6
        put(f"{prefix}.adaLN_modulation.1.weight", n * D, D)
        put(f"{prefix}.adaLN_modulation.1.bias", n * D)
        if not pre_only:
            put(f"{prefix}.linear1.weight", D, D, *((k,) if k > 1 else ()))
            put(f"{prefix}.linear1.bias", D)
            swiglu(f"{prefix}.ffn", k)

    put("audio_input_proj.0.weight", D, LAT, 7)
    put("audio_input_proj.0.bias", D)
    swiglu("audio_input_proj.2", 7)
    mlp = 2 if v2 else 1  # v2 inserts a SiLU after the clip/text Linear
    put("clip_input_proj.0.weight", D, CLIP)
    put("clip_input_proj.0.bias", D)
    swiglu(f"clip_input_proj.{mlp}", 3)
    put("sync_input_proj.0.weight", D, SYNC, 7)
    put("sync_input_proj.0.bias", D)
    swiglu("sync_input_proj.2", 3)
    put("text_input_proj.0.weight", D, TEXT)
    put("text_input_proj.0.bias", D)
    swiglu(f"text_input_proj.{mlp}", 1)
    for name in ("clip_cond_proj", "text_cond_proj"):
        put(f"{name}.weight", D, D)
        put(f"{name}.bias", D)
    swiglu("global_cond_mlp", 1)
    put("sync_pos_emb", 1, 1, 8, SYNC)
    put("final_layer.adaLN_modulation.1.weight", 2 * D, D)
    put("final_layer.adaLN_modulation.1.bias", 2 * D)
    put("final_layer.conv.weight", LAT, D, 7)
    put("final_layer.conv.bias", LAT)
    put("t_embed.mlp.0.weight", D, D if v2 else 256)
    put("t_embed.mlp.0.bias", D)
    put("t_embed.mlp.2.weight", D, D)
    put("t_embed.mlp.2.bias", D)
    for i in range(JOINT):
        last = i == JOINT - 1
        stream(f"joint_blocks.{i}.latent_block", 3, False)
        stream(f"joint_blocks.{i}.clip_block", 3, last)
        stream(f"joint_blocks.{i}.text_block", 1, last)
    for i in range(FUSED):
        stream(f"fused_blocks.{i}", 3, False)
    put("latent_mean", 1, 1, LAT)
    sd["latent_std"] = 0.5 + torch.rand(1, 1, LAT, generator=gen, dtype=torch.float64)
    put("empty_string_feat", NTXT, TEXT)
    put("empty_clip_feat", 1, CLIP)
    put("empty_sync_feat", 1, SYNC)
    return sd


# ---------------------------------------------------------------- numpy reference (MMAudio formulas)
def silu(x):
    return x / (1 + np.exp(-x))


def layer_norm(x):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


def conv_same(x, w, b=None):  # x [N, Cin], w [Cout, Cin, k] or [Cout, Cin]
    if w.ndim == 2:
        y = x @ w.T
    else:
        k = w.shape[-1]
        xp = np.pad(x, ((k // 2, k // 2), (0, 0)))
        y = sum(xp[j : j + len(x)] @ w[:, :, j].T for j in range(k))
    return y if b is None else y + b


def swiglu_ref(sd, p, x):
    return conv_same(
        silu(conv_same(x, sd[f"{p}.w1.weight"])) * conv_same(x, sd[f"{p}.w3.weight"]), sd[f"{p}.w2.weight"]
    )


def rope_ref(x, pos):  # x [H, N, Dh] interleaved pairs
    freqs = 10000.0 ** (-np.arange(0, x.shape[-1], 2) / x.shape[-1])
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * pos[:, None] * freqs)
    return np.stack([z.real, z.imag], -1).reshape(x.shape)


def rms(x, w):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + np.finfo(np.float64).eps) * w


def stream_pre(sd, p, x, c, pos):
    mods = np.split(
        silu(c) @ sd[f"{p}.adaLN_modulation.1.weight"].T + sd[f"{p}.adaLN_modulation.1.bias"],
        len(sd[f"{p}.adaLN_modulation.1.bias"]) // D,
        axis=-1,
    )
    h = layer_norm(x) * (1 + mods[1]) + mods[0]
    qkv = (h @ sd[f"{p}.attn.qkv.weight"].T + sd[f"{p}.attn.qkv.bias"]).reshape(
        len(x), H, D // H, 3
    )  # (h d j)
    q, k, v = (qkv[..., j].transpose(1, 0, 2) for j in range(3))
    q, k = rms(q, sd[f"{p}.attn.q_norm.weight"]), rms(k, sd[f"{p}.attn.k_norm.weight"])
    if pos is None:  # MMAudio's text stream has no RoPE
        return (q, k, v), mods[2:]
    return (rope_ref(q, pos), rope_ref(k, pos), v), mods[2:]


def stream_post(sd, p, x, out, mods):
    if not mods:
        return x
    gate, shift, scale, gate2 = mods
    x = x + conv_same(out, sd[f"{p}.linear1.weight"], sd[f"{p}.linear1.bias"]) * gate
    return x + swiglu_ref(sd, f"{p}.ffn", layer_norm(x) * (1 + scale) + shift) * gate2


def attend(parts, key_bias=None):
    """Softmax attention over the concatenated token axes of ``parts``; ``key_bias [H, K]`` is added to
    the logits of every query."""
    q, k, v = (np.concatenate([p[i] for p in parts], axis=1) for i in range(3))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    if key_bias is not None:
        s = s + key_bias[:, None, :]
    w = np.exp(s - s.max(-1, keepdims=True))
    out = (w / w.sum(-1, keepdims=True)) @ v
    return out.transpose(1, 0, 2).reshape(q.shape[1], -1)


def joint_ref(sd, i, left, right, visual, text, c_l, c_r, c_v, pos_a, pos_v, audio_offset):
    """ViSAudio's joint block: ``[left; right; visual; text]`` in one attention, ``audio_offset [H]``
    added to the logits of the audio keys."""
    p = f"joint_blocks.{i}"
    ql, ml = stream_pre(sd, f"{p}.latent_block", left, c_l, pos_a)
    qr, mr = stream_pre(sd, f"{p}.latent_block", right, c_r, pos_a)
    qv, mv = stream_pre(sd, f"{p}.clip_block", visual, c_v, pos_v)
    qt, mt = stream_pre(sd, f"{p}.text_block", text, c_v, None)
    n, m = len(left), len(visual)
    bias = np.zeros((H, 2 * n + m + len(text)))
    bias[:, : 2 * n] = audio_offset[:, None]
    out = attend([ql, qr, qv, qt], bias)
    return (
        stream_post(sd, f"{p}.latent_block", left, out[:n], ml),
        stream_post(sd, f"{p}.latent_block", right, out[n : 2 * n], mr),
        stream_post(sd, f"{p}.clip_block", visual, out[2 * n : 2 * n + m], mv),
        stream_post(sd, f"{p}.text_block", text, out[2 * n + m :], mt),
    )


# ---------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def converted():
    sd = official_state()
    cfg = config_from_mmaudio(sd, pe_dim=8, pe_grid=(2, 2), duration=1.0)
    net = ViSAudioNet(cfg).double()
    report = load_mmaudio_weights(net, sd)
    return sd, net, report


def test_config_inferred_from_state(converted):
    _, net, _ = converted
    c = net.config
    assert (c.hidden_dim, c.num_heads, c.joint_depth, c.branch_depth, c.latent_dim) == (
        D,
        H,
        JOINT,
        FUSED,
        LAT,
    )
    assert (c.clip_dim, c.sync_dim, c.input_act, c.time_freq_dim, c.sync_align) == (
        CLIP,
        SYNC,
        "selu",
        256,
        "index",
    )
    assert (c.text_dim, c.text_len, c.ear_attention, c.final_cond) == (TEXT, NTXT, "joint_offset", "global")


def test_every_shared_key_is_mapped(converted):
    sd, net, report = converted
    new = {"ear_embed", "pe_norm", "pe_key", "pe_value", "pe_query", "pe_out", "empty_pe"}
    offsets = {f"joint_blocks.{i}.audio_logit" for i in range(JOINT)}
    cond_missing = set(report.missing) - offsets
    assert offsets <= set(report.missing) and all(k.startswith("conditioning.") for k in cond_missing)
    assert {k.split(".")[1] for k in cond_missing} == new
    assert not report.skipped and not report.folded
    assert {s for s, _ in report.mapped} == set(sd)  # text stream included
    torch.testing.assert_close(net.conditioning.empty_text, sd["empty_string_feat"])
    torch.testing.assert_close(
        net.joint_blocks[0].audio_logit, torch.full((H,), -np.log(2.0), dtype=torch.float64)
    )
    # fused blocks and the final layer fill both ears' branches
    for b in (0, 1):
        torch.testing.assert_close(net.branches[b].final.conv.weight, sd["final_layer.conv.weight"])
    torch.testing.assert_close(net.normalizer.std, sd["latent_std"].flatten())
    assert "text" in report.summary() or "skipped" in report.summary()


def test_empty_text_folded_into_global_bias():
    """Without a text stream (text_len=0) the empty prompt's global effect is folded into global_bias."""
    sd = official_state()
    net = ViSAudioNet(config_from_mmaudio(sd, pe_dim=8, pe_grid=(2, 2), text_len=0)).double()
    report = load_mmaudio_weights(net, sd)
    assert set(report.skipped) == {k for k in sd if ".text_block." in k}
    assert set(report.folded) == {
        k for k in sd if k.startswith(("text_input_proj", "text_cond_proj", "empty_string"))
    }
    s = {k: v.numpy() for k, v in sd.items()}
    x = s["empty_string_feat"] @ s["text_input_proj.0.weight"].T + s["text_input_proj.0.bias"]
    text_c = (
        swiglu_ref(s, "text_input_proj.1", x).mean(0) @ s["text_cond_proj.weight"].T
        + s["text_cond_proj.bias"]
    )
    np.testing.assert_allclose(net.conditioning.global_bias.detach().numpy(), text_c, rtol=1e-10, atol=1e-10)


def test_timestep_embedding_matches(converted):
    sd, net, _ = converted
    s = {k: v.numpy() for k, v in sd.items()}
    t = np.array([0.0, 0.37, 1.0])
    args = t[:, None] * 10000.0 ** (-np.arange(0, 256, 2) / 256)
    e = np.concatenate([np.cos(args), np.sin(args)], -1)
    ref = (
        silu(e @ s["t_embed.mlp.0.weight"].T + s["t_embed.mlp.0.bias"]) @ s["t_embed.mlp.2.weight"].T
        + s["t_embed.mlp.2.bias"]
    )
    got = net.conditioning.t_embed(torch.from_numpy(t)).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("block", [0, 1])
def test_joint_block_matches_reference(converted, block):
    sd, net, _ = converted
    s = {k: v.numpy() for k, v in sd.items()}
    rng = np.random.default_rng(block)
    n, m = 12, 5
    left, right, c_l, c_r = (rng.standard_normal((n, D)) for _ in range(4))
    visual, c_v = rng.standard_normal((m, D)), rng.standard_normal((1, D))
    text = rng.standard_normal((NTXT, D))
    pos_a, pos_v = np.arange(n, dtype=float), np.arange(m) * n / m
    offset = rng.standard_normal(H)  # a trained offset, not only its -log 2 start
    with torch.no_grad():
        net.joint_blocks[block].audio_logit.copy_(torch.from_numpy(offset))
    ref_l, ref_r, ref_v, ref_t = joint_ref(
        s, block, left, right, visual, text, c_l, c_r, c_v, pos_a, pos_v, offset
    )
    t = torch.from_numpy
    with torch.no_grad():
        audio, vis, txt = net.joint_blocks[block](
            t(np.stack([left, right]))[None],
            t(visual)[None],
            t(np.stack([c_l, c_r]))[None],
            t(c_v)[None],
            rope_angles(t(pos_a), D // H),
            rope_angles(t(pos_v), D // H),
            t(text)[None],
        )
        net.joint_blocks[block].audio_logit.fill_(-np.log(2.0))
    np.testing.assert_allclose(audio[0, 0].numpy(), ref_l, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(audio[0, 1].numpy(), ref_r, rtol=1e-9, atol=1e-9)
    if block < JOINT - 1:  # the last block's visual/text streams are pre-only (returned unchanged)
        np.testing.assert_allclose(vis[0].numpy(), ref_v, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(txt[0].numpy(), ref_t, rtol=1e-9, atol=1e-9)


def test_branch_block_matches_reference(converted):
    sd, net, _ = converted
    s = {k: v.numpy() for k, v in sd.items()}
    rng = np.random.default_rng(7)
    x, c = rng.standard_normal((9, D)), rng.standard_normal((9, D))
    pos = np.arange(9.0)
    qkv, mods = stream_pre(s, "fused_blocks.0", x, c, pos)
    ref = stream_post(s, "fused_blocks.0", x, attend([qkv]), mods)
    with torch.no_grad():
        for b in (0, 1):
            got = net.branches[b].blocks[0](
                torch.from_numpy(x)[None],
                torch.from_numpy(c)[None],
                rope_angles(torch.from_numpy(pos), D // H),
            )
            np.testing.assert_allclose(got[0].numpy(), ref, rtol=1e-9, atol=1e-9)


def test_report_names_what_breaks_exactness(converted):
    _, _, report = converted
    assert report.inexact == [] and "MMAudio-exact" in report.summary()
    sd = official_state()
    cfg = config_from_mmaudio(sd, pe_dim=8, pe_grid=(2, 2), final_cond="local", sync_align="time")
    report = load_mmaudio_weights(ViSAudioNet(cfg).double(), sd)
    assert [r.split(" ")[0] for r in report.inexact] == ["final_cond='local'", "sync_align='time'"]
    assert "not MMAudio-exact: final_cond='local'" in report.summary()


def test_not_an_mmaudio_state():
    with pytest.raises(ValueError, match="not an MMAudio state dict"):
        config_from_mmaudio({"foo": torch.zeros(1)})
