"""Official checkpoint converter: a random official-layout state dict loads exactly, and our network
reproduces a reference forward written here from jaeyeonkim99/visage ``modeling/visage.py`` on the official
keys."""

import json
import math

import pytest
import torch

from spatialgen.models.visage import (
    ViSAGe,
    config_from_official,
    get_config,
    init_foa_from_mono,
    load_official,
)

from .conftest import make_inputs

CFG = get_config("visage_tiny", dropout=0.0)


def official_state_dict(cfg, *, mono=False, seed=0):
    """Every tensor of the official layout (``modeling/visage.py``) for ``cfg``, random values."""
    g = torch.Generator().manual_seed(seed)
    d, V, K = cfg.d_model, cfg.codebook_size, (1 if mono else cfg.num_channels) * cfg.num_codebooks
    rows = math.ceil((V + 1) / 64) * 64

    def r(*shape):
        return 0.3 * torch.randn(*shape, generator=g, dtype=torch.float64)

    sd = {"null_embedding": r(cfg.d_visual)}
    if not mono:
        sd |= {"dir_null_embedding": r(3), "energy_null_embedding": r(cfg.energy_map_dim)}
    e = "model.encoder."
    sd |= {e + "bos": r(1, d), e + "eos": r(1, d), e + "clip_projection.weight": r(d, cfg.d_visual)}
    sd |= {e + "clip_projection.bias": r(d), e + "embed_positions.weight": r(cfg.max_source_length, d)}
    sd |= {e + "embed_spatial.weight": r(4, d)}
    mlps = [] if mono else [("direction_embedding", 3), ("energy_map_projection", cfg.energy_map_dim)]
    for name, n_in in mlps:
        sd |= {f"{e}{name}.0.weight": r(d, n_in), f"{e}{name}.0.bias": r(d)}
        sd |= {f"{e}{name}.2.weight": r(d, d), f"{e}{name}.2.bias": r(d)}

    def attn(prefix):
        return {
            f"{prefix}.{p}_proj.{w}": r(d, d) if w == "weight" else r(d)
            for p in "qkvo"
            for w in ("weight", "bias")
        }

    def ln(prefix):
        return {f"{prefix}.weight": 1 + r(d), f"{prefix}.bias": r(d)}

    def ffn(prefix, h):
        return {
            f"{prefix}.fc1.weight": r(h, d),
            f"{prefix}.fc1.bias": r(h),
            f"{prefix}.fc2.weight": r(d, h),
            f"{prefix}.fc2.bias": r(d),
        }

    sd |= ln(e + "layernorm_embedding")
    for i in range(cfg.encoder_layers):
        p = f"{e}layers.{i}"
        sd |= (
            attn(p + ".self_attn")
            | ln(p + ".self_attn_layer_norm")
            | ffn(p, cfg.encoder_ffn_dim)
            | ln(p + ".final_layer_norm")
        )
    dd = "model.decoder."
    sd |= {dd + "bos": r(1, d), dd + "embed_positions.weight": r(cfg.max_target_length + 2, d)}
    for k in range(K):
        table = r(rows, d)
        table[V] = 0  # padding row
        sd[f"{dd}embed_dac.{k}.weight"] = table
    sd |= ln(dd + "layernorm_embedding")
    for i in range(cfg.decoder_layers):
        p = f"{dd}layers.{i}"
        sd |= attn(p + ".self_attn") | ln(p + ".self_attn_layer_norm")
        sd |= attn(p + ".encoder_attn") | ln(p + ".encoder_attn_layer_norm")
        sd |= ffn(p, cfg.decoder_ffn_dim) | ln(p + ".final_layer_norm")
    for k in range(K):
        sd |= {f"dac_heads.{k}.weight": r(V, d), f"dac_heads.{k}.bias": r(V)}
    # the "o" of attn() above stands for out_proj
    return {k.replace(".o_proj.", ".out_proj."): v for k, v in sd.items()}


# ----------------------------------------------------------------------------- reference forward (official)
def layer_norm(x, sd, p, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[p + ".weight"] + sd[p + ".bias"]


def linear(x, sd, p):
    return x @ sd[p + ".weight"].T + sd[p + ".bias"]


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def mha(x, ctx, sd, p, heads, causal):
    B, N, d = x.shape
    hd = d // heads
    q = linear(x, sd, p + ".q_proj") * hd**-0.5  # BART scales q after the projection
    k, v = linear(ctx, sd, p + ".k_proj"), linear(ctx, sd, p + ".v_proj")
    split = lambda t: t.reshape(B, -1, heads, hd).transpose(1, 2)  # noqa: E731
    w = split(q) @ split(k).transpose(-1, -2)
    if causal:
        w = w + torch.triu(torch.full((N, N), float("-inf"), dtype=x.dtype), 1)
    o = (w.softmax(-1) @ split(v)).transpose(1, 2).reshape(B, N, d)
    return linear(o, sd, p + ".out_proj")


def reference_encoder(sd, cfg, clip, energy, direction):
    """Official encoder states [B, T + 2, d]; ``direction`` [B, 3] in the official image frame."""
    e = "model.encoder."
    B, T, _ = clip.shape
    mlp = lambda x, p: linear(gelu(linear(x, sd, p + ".0")), sd, p + ".2")  # noqa: E731
    x = linear(clip, sd, e + "clip_projection") + mlp(energy, e + "energy_map_projection")
    x = x + sd[e + "embed_positions.weight"][:T] + mlp(direction, e + "direction_embedding")[:, None]
    h = torch.cat([sd[e + "bos"].expand(B, 1, -1), x, sd[e + "eos"].expand(B, 1, -1)], 1)
    h = layer_norm(h, sd, e + "layernorm_embedding")
    for i in range(cfg.encoder_layers):
        p = f"{e}layers.{i}"
        h = layer_norm(
            h + mha(h, h, sd, p + ".self_attn", cfg.encoder_heads, False), sd, p + ".self_attn_layer_norm"
        )
        f = linear(gelu(linear(h, sd, p + ".fc1")), sd, p + ".fc2")
        h = layer_norm(h + f, sd, p + ".final_layer_norm")
    return h


def reference_logits(sd, cfg, clip, energy, direction, rows_in):
    """All-head logits [B, L, K, V] of the official model; rows_in [B, L-1, K] are decoder input rows."""
    dd = "model.decoder."
    B = clip.shape[0]
    memory = reference_encoder(sd, cfg, clip, energy, direction)
    K = rows_in.shape[-1]
    emb = sum(sd[f"{dd}embed_dac.{k}.weight"][rows_in[..., k]] for k in range(K))  # PAD row is zero
    y = torch.cat([sd[dd + "bos"].expand(B, 1, -1), emb], 1)
    L = y.shape[1]
    y = y + sd[dd + "embed_positions.weight"][2 : L + 2]  # BART offset 2
    y = layer_norm(y, sd, dd + "layernorm_embedding")
    for i in range(cfg.decoder_layers):
        p = f"{dd}layers.{i}"
        y = layer_norm(
            y + mha(y, y, sd, p + ".self_attn", cfg.decoder_heads, True), sd, p + ".self_attn_layer_norm"
        )
        y = layer_norm(
            y + mha(y, memory, sd, p + ".encoder_attn", cfg.decoder_heads, False),
            sd,
            p + ".encoder_attn_layer_norm",
        )
        f = linear(gelu(linear(y, sd, p + ".fc1")), sd, p + ".fc2")
        y = layer_norm(y + f, sd, p + ".final_layer_norm")
    return torch.stack([linear(y, sd, f"dac_heads.{k}") for k in range(K)], 2)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_converted_model_reproduces_the_reference_forward(prefix):
    # float32-representable values: the model is built in float32 and then moved to float64
    sd = {k: v.float().double() for k, v in official_state_dict(CFG).items()}
    model = load_official({prefix + k: v for k, v in sd.items()}, CFG).double()
    visual, energy, direction, codes = make_inputs(CFG, 2, dtype=torch.float64)
    seq, _ = model.pattern.build(codes, CFG.pad_token)
    ours = model.heads(model.decode(seq, model.encode(visual, energy, direction)))
    # the official network reads the same direction in its image frame (x right, y down, z forward)
    x, y, z = direction.unbind(-1)
    expected = reference_logits(sd, CFG, visual, energy, torch.stack((-y, -z, x), -1), seq[:, :-1])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-9)
    # and the nulls landed where CFG uses them
    assert torch.equal(model.null_visual, sd["null_embedding"])


def official_direction(el_bin, az_bin):
    """The official camera vector R_y(2a - 179) R_x(89 - 2e) z (image frame), written from its definition."""
    yaw, pitch = math.radians(2 * az_bin - 179), math.radians(89 - 2 * el_bin)
    ry = torch.tensor(
        [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]],
        dtype=torch.float64,
    )
    rx = torch.tensor(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]],
        dtype=torch.float64,
    )
    return ry @ rx @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)


# YT-Ambigen (elevation, azimuth) bins: front, back, quarter left/right of the image, up, down, oblique
BINS = [(45, 90), (45, 0), (45, 45), (45, 135), (0, 90), (89, 90), (30, 60)]


def test_official_direction_reference_matches_the_published_examples():
    s = math.sin(math.radians(1.0))
    table = {(45, 90): (s, s, 1.0), (45, 45): (-1.0, s, s), (0, 90): (0.0, -1.0, s), (89, 90): (0.0, 1.0, s)}
    table[(30, 60)] = (-0.750, -0.485, 0.450)  # published to three decimals
    for (el, az), v in table.items():
        torch.testing.assert_close(
            official_direction(el, az), torch.tensor(v, dtype=torch.float64), atol=6e-4, rtol=0
        )


def test_official_weights_read_project_frame_camera_directions_like_the_official_encoder():
    from spatialgen.models.visage.pipeline import camera_direction_vector

    sd = {k: v.float().double() for k, v in official_state_dict(CFG, seed=3).items()}
    model = load_official(sd, CFG).double()
    B = len(BINS)
    visual, energy, _, _ = make_inputs(CFG, B, dtype=torch.float64)
    # project convention: AmbiX azimuth 179 - 2a, elevation 89 - 2e (radians)
    angles = torch.tensor(
        [[math.radians(179 - 2 * a), math.radians(89 - 2 * e)] for e, a in BINS], dtype=torch.float64
    )
    ours = model.encode(visual, energy, camera_direction_vector(angles, B))
    official = torch.stack([official_direction(e, a) for e, a in BINS])
    expected = reference_encoder(sd, CFG, visual, energy, official)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-9)
    # without the frame change the project vector would condition differently (the test can fail)
    wrong = reference_encoder(sd, CFG, visual, energy, camera_direction_vector(angles, B))
    assert (wrong - expected).abs().amax() > 1e-2
    # the learned null direction conditions exactly as the official null does
    dropped = model.encode(visual, energy, official, drop_direction=torch.ones(B, dtype=torch.bool))
    null = sd["dir_null_embedding"].expand(B, 3)
    torch.testing.assert_close(dropped, reference_encoder(sd, CFG, visual, energy, null), rtol=0, atol=1e-9)


def test_official_key_count_matches_the_release_layout():
    full = get_config("visage")
    names = official_state_dict(
        full.replace(
            d_model=16,
            encoder_heads=1,
            decoder_heads=1,
            encoder_ffn_dim=16,
            decoder_ffn_dim=16,
            d_visual=4,
            codebook_size=8,
        )
    )
    assert len(names) == 539  # 539 tensors in the released FOA checkpoint


def test_unmapped_and_missing_keys_are_listed():
    sd = official_state_dict(CFG)
    with pytest.raises(ValueError, match=r"map to nothing: \['model.decoder.extra'\]"):
        load_official({**sd, "model.decoder.extra": torch.zeros(1)}, CFG)
    del sd["dac_heads.3.bias"]
    with pytest.raises(ValueError, match="dac_heads"):
        load_official(sd, CFG)
    sd = official_state_dict(CFG)
    with pytest.raises(ValueError, match="shapes do not match"):
        load_official(sd, CFG.replace(max_source_length=7, clip_seconds=0.004))


def test_load_from_folder_with_official_config(tmp_path):
    sd = official_state_dict(CFG)
    torch.save({k: v.float() for k, v in sd.items()}, tmp_path / "pytorch_model.bin")
    official = {
        "model_type": "bart",
        "d_model": CFG.d_model,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "d_clip": CFG.d_visual,
        "num_rvq": 2,
        "dac_vocab_size": 64,
        "dac_pad_token_id": 64,
        "max_source_length": CFG.max_source_length,
        "max_target_length": CFG.max_target_length,
        "dac_sample_rate": 16000,
        "clip_frame_rate": 800,
    }
    (tmp_path / "config.json").write_text(json.dumps(official))
    model = load_official(tmp_path)
    cfg = model.config
    assert (cfg.num_channels, cfg.num_codebooks, cfg.energy_map_dim, cfg.use_direction) == (4, 2, 49, True)
    torch.testing.assert_close(model.heads.weight[5], sd["dac_heads.5.weight"].float(), rtol=0, atol=0)
    torch.testing.assert_close(
        model.decoder.token_embedding[7], sd["model.decoder.embed_dac.7.weight"].float()
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"pytorch_model\.bin"):
        load_official(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_official(tmp_path / "missing.bin")
    mono = config_from_official(official, official_state_dict(CFG, mono=True))
    assert (mono.num_channels, mono.energy_map_dim, mono.use_direction) == (1, 0, False)


def test_init_foa_from_mono_copies_w_to_every_channel():
    mono_cfg = CFG.replace(num_channels=1, energy_map_dim=0, use_direction=False)
    mono = load_official(official_state_dict(mono_cfg, mono=True), mono_cfg)
    foa = ViSAGe(CFG)
    fresh_direction = foa.encoder.direction_mlp[0].weight.clone()
    init_foa_from_mono(foa, mono.state_dict())
    Q = CFG.num_codebooks
    for k in range(CFG.num_streams):
        assert torch.equal(foa.decoder.token_embedding[k], mono.decoder.token_embedding[k % Q])
        assert torch.equal(foa.heads.weight[k], mono.heads.weight[k % Q])
        assert torch.equal(foa.heads.bias[k], mono.heads.bias[k % Q])
    assert torch.equal(
        foa.decoder.layers[0].cross_attn.q_proj.weight, mono.decoder.layers[0].cross_attn.q_proj.weight
    )
    assert torch.equal(foa.encoder.visual_proj.weight, mono.encoder.visual_proj.weight)
    assert torch.equal(foa.encoder.direction_mlp[0].weight, fresh_direction)  # new modules keep their init
    with pytest.raises(ValueError, match="not in the FOA model"):
        init_foa_from_mono(foa, {**mono.state_dict(), "bogus": torch.zeros(1)})
