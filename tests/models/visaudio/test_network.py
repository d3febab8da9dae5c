"""ViSAudio network: shapes and time alignment at 8 s, ear symmetry/equivariance, config round-trip."""

import copy
import json

import pytest
import torch

from spatialgen.models.visaudio import (
    VISAUDIO_CONFIGS,
    ViSAudioConfig,
    ViSAudioNet,
    flip_patches,
    visaudio_config,
)
from spatialgen.models.visaudio.conditioning import linear_time_matrix, sync_alignment_matrix
from spatialgen.nn.rope import rope_angles

from .conftest import make_features, randomize_


@pytest.mark.parametrize(("name", "latents"), [("S_16k", 250), ("S_44k", 345)])
def test_sequence_lengths_for_8s(name, latents):
    cfg = visaudio_config(name)
    assert (cfg.latent_len(), cfg.clip_len(), cfg.sync_len(), cfg.pe_len()) == (latents, 64, 192, 64)
    assert cfg.head_dim == 64


def test_shapes_8s_and_zero_init():
    cfg = visaudio_config("tiny")
    net = ViSAudioNet(cfg)
    clip, sync, pe = make_features(cfg, 2, 8.0, dtype=torch.float32)
    cond = net.prepare_conditions(clip, sync, pe)
    assert cond.visual.shape == (2, 64, cfg.hidden_dim) and cond.local_c.shape == (2, 2, 250, cfg.hidden_dim)
    x = torch.randn(2, 2, cfg.latent_dim, 250)
    v = net(x, torch.rand(2), cond)
    assert v.shape == x.shape and not v.any()  # DiT zero-init: a fresh model predicts exactly 0
    randomize_(net)
    v = net(x, torch.rand(2), net.prepare_conditions(clip, sync, pe))
    assert v.shape == x.shape and torch.isfinite(v).all() and v.abs().mean() > 0


def test_rope_positions_time_aligned():
    cfg = visaudio_config("S_16k")
    net = ViSAudioNet(visaudio_config("tiny"))
    audio, visual = net.rope_positions(cfg.latent_len(), cfg.clip_len())
    assert torch.equal(audio, torch.arange(250, dtype=torch.float64))
    # CLIP frame j (at j / 8 s) sits at latent coordinate j / 8 * 31.25.
    torch.testing.assert_close(visual, torch.arange(64, dtype=torch.float64) / cfg.clip_fps * cfg.latent_rate)
    # A visual token and the audio token at the same time get the same rotation.
    ang_a, ang_v = rope_angles(audio, cfg.head_dim), rope_angles(visual, cfg.head_dim)
    assert float(visual[32]) == 125.0  # CLIP frame 32 (4 s) and latent frame 125 (4 s)
    torch.testing.assert_close(ang_v[32], ang_a[125], rtol=0, atol=0)


def test_left_right_share_positions_in_joint_block(tiny_net):
    """Swapping the ear tokens (and their conditioning) swaps the joint block's outputs exactly. With
    naively concatenated positions (right ear at N..2N-1) this would fail."""
    cfg = tiny_net.config
    gen = torch.Generator().manual_seed(3)
    n, m, d = 20, 6, cfg.hidden_dim
    audio, c = torch.randn(2, 2, 2, n, d, generator=gen, dtype=torch.float64)
    visual = torch.randn(2, m, d, generator=gen, dtype=torch.float64)
    vc = torch.randn(2, 1, d, generator=gen, dtype=torch.float64)
    pos_a, pos_v = tiny_net.rope_positions(n, m)
    ang_a, ang_v = rope_angles(pos_a, cfg.head_dim), rope_angles(pos_v, cfg.head_dim)
    block = tiny_net.joint_blocks[0]
    text = torch.randn(2, cfg.text_len, d, generator=gen, dtype=torch.float64)
    out_a, out_v, out_t = block(audio, visual, c, vc, ang_a, ang_v, text)
    sw_a, sw_v, sw_t = block(audio.flip(1), visual, c.flip(1), vc, ang_a, ang_v, text)
    torch.testing.assert_close(sw_a, out_a.flip(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(sw_v, out_v, rtol=0, atol=1e-12)
    torch.testing.assert_close(sw_t, out_t, rtol=0, atol=1e-12)
    shifted = rope_angles(torch.cat((pos_a, pos_a + n)), cfg.head_dim)
    # control: the same check with the right ear at positions N..2N-1 breaks the symmetry
    qkv_l = block.audio.pre_attention(audio[:, 0], c[:, 0], shifted[:n])[0][0]
    qkv_r = block.audio.pre_attention(audio[:, 0], c[:, 0], shifted[n:])[0][0]
    assert not torch.allclose(qkv_l, qkv_r)


def test_sync_tokens_resampled_in_time_order():
    """Token (segment i, slot j) covers 25 fps frames 8i+2j, 8i+2j+1. Feeding each token's own centre time
    through the alignment matrix must give each latent frame (nearly) its own time: monotonic, and within
    half a tubelet (0.04 s) plus interpolation. MMAudio's index resize is off by up to ~0.32 s."""
    cfg = visaudio_config("S_16k")
    seg, slot = torch.arange(192) // 8, torch.arange(192) % 8
    token_time = ((8 * seg + 2 * slot).double() + 1.0) / 25.0  # centre of the two frames
    latent_time = (torch.arange(250, dtype=torch.float64) + 0.5) / cfg.latent_rate
    got = sync_alignment_matrix(192, 250, cfg) @ token_time.double()
    assert (got.diff() >= -1e-12).all()
    inner = (latent_time > 0.05) & (latent_time < 7.63)  # tubelet centres span 0.04 .. 7.64 s
    assert (got - latent_time)[inner].abs().max() < 1e-9
    index = sync_alignment_matrix(192, 250, cfg.replace(sync_align="index")) @ token_time.double()
    assert (index - latent_time).abs().max() > 0.25 and (index.diff() < 0).any()


def test_linear_time_matrix_interpolates_exactly():
    src = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    w = linear_time_matrix(src, torch.tensor([-1.0, 0.5, 2.0, 3.0, 9.0]))
    torch.testing.assert_close(w.sum(1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(
        w @ torch.tensor([0.0, 10.0, 30.0], dtype=torch.float64),
        torch.tensor([0.0, 5.0, 20.0, 30.0, 30.0], dtype=torch.float64),
    )


def _mirror_ears(net):
    """Relabel ears: E_l' = flip(E_r), E_r' = flip(E_l), swap the branch stacks."""
    other = copy.deepcopy(net)
    grid = net.config.pe_grid
    with torch.no_grad():
        e = net.conditioning.ear_embed
        other.conditioning.ear_embed.copy_(torch.stack((flip_patches(e[1], grid), flip_patches(e[0], grid))))
    other.branches[0].load_state_dict(net.branches[1].state_dict())
    other.branches[1].load_state_dict(net.branches[0].state_dict())
    return other


def test_swapping_ear_embeddings_and_flipping_video_swaps_ears(tiny_net):
    """Exact by construction, on a random model: mirrored video + swapped ear parameters + swapped input
    latents gives swapped output velocities. A flipped video alone (or swapped embeddings alone) does not."""
    cfg = tiny_net.config
    clip, sync, pe = make_features(cfg, 2)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, cfg.latent_dim, cfg.latent_len(), generator=gen, dtype=torch.float64)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    v = tiny_net(x, t, tiny_net.prepare_conditions(clip, sync, pe))
    mirrored = _mirror_ears(tiny_net)
    pe_flip = flip_patches(pe, cfg.pe_grid)
    v_m = mirrored(x.flip(1), t, mirrored.prepare_conditions(clip, sync, pe_flip))
    torch.testing.assert_close(v_m, v.flip(1), rtol=0, atol=1e-10)
    # controls: either change alone breaks it
    v_noflip = mirrored(x.flip(1), t, mirrored.prepare_conditions(clip, sync, pe))
    assert (v_noflip - v.flip(1)).abs().max() > 1e-3
    v_noswap = tiny_net(x.flip(1), t, tiny_net.prepare_conditions(clip, sync, pe_flip))
    assert (v_noswap - v.flip(1)).abs().max() > 1e-3


def test_mirror_symmetric_model_is_physically_equivariant(tiny_net):
    """With tied branches and E_r = flip(E_l), mirroring the scene swaps the ears (no relabelling)."""
    cfg = tiny_net.config
    tiny_net.branches[1].load_state_dict(tiny_net.branches[0].state_dict())
    with torch.no_grad():
        tiny_net.conditioning.ear_embed[1] = flip_patches(tiny_net.conditioning.ear_embed[0], cfg.pe_grid)
    clip, sync, pe = make_features(cfg, 1, seed=7)
    x = torch.randn(1, 2, cfg.latent_dim, cfg.latent_len(), dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    v = tiny_net(x, t, tiny_net.prepare_conditions(clip, sync, pe))
    v_m = tiny_net(x.flip(1), t, tiny_net.prepare_conditions(clip, sync, flip_patches(pe, cfg.pe_grid)))
    torch.testing.assert_close(v_m, v.flip(1), rtol=0, atol=1e-10)


def test_null_conditions_and_drop_mask(tiny_net):
    cfg = tiny_net.config
    clip, sync, pe = make_features(cfg, 2)
    drop = torch.tensor([True, False])
    cond = tiny_net.prepare_conditions(clip, sync, pe, drop=drop)
    null = tiny_net.prepare_conditions(None, None, None, latent_len=cfg.latent_len(), batch_size=2)
    full = tiny_net.prepare_conditions(clip, sync, pe)
    for a, b, c in zip(cond.tensors(), null.tensors(), full.tensors(), strict=True):
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], c[1])


def test_config_roundtrip_and_errors():
    for cfg in VISAUDIO_CONFIGS.values():
        d = json.loads(json.dumps(cfg.to_dict()))
        assert ViSAudioConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown ViSAudioConfig keys"):
        ViSAudioConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="heads"):
        ViSAudioConfig(hidden_dim=100, num_heads=7)
    with pytest.raises(ValueError, match="unknown ViSAudio config"):
        visaudio_config("XL")
    net = ViSAudioNet(visaudio_config("tiny"))
    cond = net.prepare_conditions(None, None, None, batch_size=1)
    with pytest.raises(ValueError, match="x must be"):
        net(torch.zeros(1, 1, 8, 250), torch.zeros(1), cond)
    with pytest.raises(ValueError, match="prepare_conditions"):
        net(torch.zeros(1, 2, 8, 100), torch.zeros(1), cond)
    with pytest.raises(ValueError, match="pe_grid"):
        net.prepare_conditions(None, None, torch.zeros(1, 16, 3, 16))


def test_parameter_counts_of_published_sizes():
    """S keeps MMAudio's 4+8 blocks at width 448 with the branch stack duplicated per ear."""
    with torch.device("meta"):
        s = ViSAudioNet(visaudio_config("S_16k"))
    per_branch = sum(p.numel() for p in s.branches[0].parameters())
    joint = sum(p.numel() for p in s.joint_blocks.parameters())
    assert len(s.joint_blocks) == 4 and len(s.branches[1].blocks) == 8
    # MMAudio S: fused 60.6M + final 0.47M; joint 66.2M including the text stream; joint_offset adds
    # one logit offset per head and joint block
    assert 60.9e6 < per_branch < 61.2e6 and 66.1e6 < joint < 66.3e6
    with torch.device("meta"):
        offset = ViSAudioNet(visaudio_config("S_16k", ear_attention="joint_offset"))
    assert sum(p.numel() for p in offset.parameters()) - sum(p.numel() for p in s.parameters()) == 4 * 7


def _spatial_materialised(cond, pe):
    """The spatial pooling as written in the formulas: per-ear tokens ``LN(PE + E_b)`` [B, 2, T, P, Dp],
    per-patch keys and values, softmax over patches, output projection (before the time resampling)."""
    cfg = cond.config
    h = cfg.num_heads
    tokens = torch.nn.functional.layer_norm(
        pe[:, None] + cond.ear_embed[None, :, None], (cfg.pe_dim,), cond.pe_norm.weight, cond.pe_norm.bias
    )
    keys = (tokens @ cond.pe_key.weight.T + cond.pe_key.bias).unflatten(-1, (h, -1))
    values = (tokens @ cond.pe_value.weight.T + cond.pe_value.bias).unflatten(-1, (h, -1))
    q = cond.pe_query.unflatten(-1, (h, -1))
    w = torch.softmax((keys * q).sum(-1) / (cfg.head_dim**0.5), dim=-2)
    return cond.pe_out((w[..., None] * values).sum(-3).flatten(-2))


def test_spatial_pooling_equals_materialised_formula(tiny_net):
    """The memory-lean spatial path (no per-ear patch tensor) equals the direct formula, per frame."""
    cfg = tiny_net.config
    pe = make_features(cfg, 2)[2] * 3 + 0.5  # offset and scale: the LayerNorm statistics matter
    cond = tiny_net.conditioning
    frames = pe.shape[1]
    with torch.no_grad():
        ref = _spatial_materialised(cond, pe)  # [B, 2, T, D]
        # latent frames placed exactly at the PE frame centres read the pooled frames unchanged
        got = cond.config.replace(latent_rate=cfg.pe_fps)
        cond.config = got
        try:
            out = cond.spatial(pe, frames)
            cond.pe_chunk_frames = 3  # uneven chunks give the same result
            chunked = cond.spatial(pe, frames)
        finally:
            cond.config = cfg
            del cond.pe_chunk_frames
    assert frames > 3
    torch.testing.assert_close(chunked, out, rtol=0, atol=1e-13)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    assert ref.abs().max() > 1e-3 and (ref[:, 0] - ref[:, 1]).abs().max() > 1e-3  # the ears differ


def test_text_and_mmaudio_option_errors(tiny_cfg):
    for bad, match in (
        ({"ear_attention": "both"}, "ear_attention must be one of"),
        ({"final_cond": "token"}, "final_cond must be one of"),
        ({"text_len": -1}, "text_len must be >= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            tiny_cfg.replace(**bad)
    net = ViSAudioNet(tiny_cfg.replace(text_len=0))
    with pytest.raises(ValueError, match="no text stream"):
        net.prepare_conditions(None, None, None, batch_size=1, text=torch.zeros(1, 4, 16))
    net = ViSAudioNet(tiny_cfg)
    with pytest.raises(ValueError, match="feature width 8 does not match"):
        net.prepare_conditions(None, None, None, text=torch.zeros(1, 4, 8))
    with pytest.raises(ValueError, match="dropping text needs equal lengths"):
        net.prepare_conditions(
            None, None, None, text=torch.zeros(1, 5, 16), drop_text=torch.ones(1, dtype=torch.bool)
        )
    cond = net.prepare_conditions(None, None, None, text=torch.zeros(1, 9, 16))  # any prompt length
    assert cond.text.shape == (1, 9, tiny_cfg.hidden_dim)
    with pytest.raises(ValueError, match="with and without a text stream"):
        cond.cat(ViSAudioNet(tiny_cfg.replace(text_len=0)).prepare_conditions(None, None, None, batch_size=1))


@pytest.mark.parametrize("mode", ["joint", "joint_offset", "per_ear"])
def test_ear_attention_modes_keep_ear_swap_equivariance(tiny_cfg, mode):
    """Every ear_attention mode treats the ears symmetrically: swapping the ear latents and the ear
    parameters (embeddings mirrored, branches swapped) swaps the velocities."""
    net = randomize_(ViSAudioNet(tiny_cfg.replace(ear_attention=mode)).double()).eval()
    clip, sync, pe = make_features(net.config, 2)
    x = torch.randn(2, 2, tiny_cfg.latent_dim, tiny_cfg.latent_len(), dtype=torch.float64)
    t = torch.tensor([0.1, 0.7], dtype=torch.float64)
    mirrored = _mirror_ears(net)
    with torch.no_grad():
        v = net(x, t, net.prepare_conditions(clip, sync, pe))
        v_m = mirrored(
            x.flip(1), t, mirrored.prepare_conditions(clip, sync, flip_patches(pe, tiny_cfg.pe_grid))
        )
    torch.testing.assert_close(v_m, v.flip(1), rtol=1e-9, atol=1e-10)
