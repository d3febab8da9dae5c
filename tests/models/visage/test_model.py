"""ViSAGe network: config round trip, full-size parameter count, forward, embeddings, loss."""

import json
import math

import pytest
import torch

from spatialgen.models.visage import ViSAGe, ViSAGeConfig, get_config, list_configs, stream_cross_entropy

from .conftest import make_inputs


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_config_round_trips_through_json():
    for name in list_configs():
        cfg = get_config(name)
        assert ViSAGeConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        ViSAGeConfig.from_dict({"d_model": 8, "colour": 1})
    with pytest.raises(ValueError, match="unknown ViSAGe config"):
        get_config("visage_huge")
    with pytest.raises(ValueError, match="divisible"):
        ViSAGeConfig(d_model=100)


def test_full_config_lengths():
    cfg = ViSAGeConfig()
    assert (cfg.num_streams, cfg.embedding_rows, cfg.pad_token) == (36, 1088, 1024)
    assert (cfg.source_length, cfg.num_frames, cfg.output_frames, cfg.num_samples) == (20, 430, 431, 220500)


def test_full_size_parameter_count_matches_reference():
    """The official model's counts include its dead ``embed_spatial`` (4 x 1024), which this network omits."""
    with torch.device("meta"):
        foa = ViSAGe()
        mono = ViSAGe(get_config("visage_mono"))
    dead = 4 * 1024
    assert count(foa) == 358_626_868 - dead
    assert count(mono) == 298_052_096 - dead
    assert count(foa.encoder) == 78_285_824 - dead
    assert count(foa.encoder.layers) == 75_577_344
    assert count(foa.encoder.direction_mlp) == 1_053_696 and count(foa.encoder.energy_mlp) == 1_100_800
    assert count(foa.decoder) == 242_554_880
    assert count(foa.decoder.layers) == 201_560_064
    assert foa.decoder.token_embedding.numel() == 40_108_032
    assert count(foa.heads) == 37_785_600


def test_forward_shapes_and_initial_loss():
    cfg = get_config("visage_tiny")
    model = ViSAGe(cfg)
    visual, energy, direction, codes = make_inputs(cfg, 3)
    out = model(visual, codes, energy, direction)
    assert out.logits.shape == (3, 4, 2, cfg.num_frames, cfg.codebook_size)
    assert out.hidden.shape == (3, model.pattern.sequence_length(cfg.num_frames), cfg.d_model)
    loss, per_stream = stream_cross_entropy(out.logits, codes)
    # At init (std 0.02) logits are ~0: each stream's CE is ~ln V and the sum ~K ln V (249.5 at full size).
    assert per_stream.shape == (8,)
    assert torch.allclose(per_stream, torch.full((8,), math.log(cfg.codebook_size)), atol=0.05)
    assert loss.item() == pytest.approx(per_stream.sum().item())


def test_embed_tokens_is_the_sum_of_stream_lookups_and_pad_is_zero(tiny_model):
    cfg = tiny_model.config
    rows = torch.randint(0, cfg.codebook_size, (2, 5, cfg.num_streams))
    rows[0, 1, 3] = cfg.pad_token
    rows[1, 2, :] = cfg.pad_token
    rows[1, 4, 0] = -100
    table = tiny_model.decoder.token_embedding
    expected = torch.zeros(2, 5, cfg.d_model)
    for b in range(2):
        for n in range(5):
            for k in range(cfg.num_streams):
                if 0 <= rows[b, n, k] < cfg.codebook_size:
                    expected[b, n] += table[k, rows[b, n, k]]
    torch.testing.assert_close(tiny_model.decoder.embed_tokens(rows), expected, rtol=0, atol=1e-6)
    assert (tiny_model.decoder.embed_tokens(rows)[1, 2] == 0).all()


def test_loss_equals_masked_cross_entropy_over_the_pattern_sequence(tiny_model):
    """The gathered per-stream logits equal all heads on the whole sequence restricted by the pattern mask."""
    cfg = tiny_model.config
    visual, energy, direction, codes = make_inputs(cfg, 2, dtype=torch.float64)
    model = tiny_model.double()
    codes[1, :, :, -2:] = -100  # a clip shorter than the others: its last frames are ignored
    out = model(visual, codes, energy, direction)
    weights = torch.arange(1.0, cfg.num_streams + 1, dtype=torch.float64)
    loss, per_stream = stream_cross_entropy(out.logits, codes, weights)

    seq, mask = model.pattern.build(codes, cfg.pad_token)
    all_logits = model.heads(out.hidden)  # [B, L, K, V]
    expected = []
    for k in range(cfg.num_streams):
        sel = mask[:, k][None, :].expand(2, -1) & (seq[..., k] >= 0) & (seq[..., k] < cfg.codebook_size)
        lp = all_logits[:, :, k].log_softmax(-1)
        picked = lp.gather(-1, seq[..., k].clamp(0, cfg.codebook_size - 1)[..., None])[..., 0]
        expected.append(-picked[sel].mean())
    expected = torch.stack(expected)
    torch.testing.assert_close(per_stream, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(loss, (weights * expected).sum(), rtol=0, atol=1e-9)


def test_stream_without_targets_contributes_zero():
    logits = torch.randn(1, 2, 1, 3, 5)
    codes = torch.tensor([[[[1, 2, 3]], [[-100, -100, -100]]]])
    loss, per_stream = stream_cross_entropy(logits, codes)
    assert per_stream[1] == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="weights"):
        stream_cross_entropy(logits, codes, [1.0, 2.0, 3.0])


def test_null_embeddings_replace_each_condition_group(tiny_model):
    cfg = tiny_model.config
    visual, energy, direction, _ = make_inputs(cfg, 2)
    drop = torch.tensor([True, False])
    a = tiny_model.encode(visual, energy, direction, drop_visual=drop)
    b = tiny_model.encode(visual + 1, energy.flip(-1), direction, drop_visual=drop)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)  # dropped row ignores CLIP and energy
    assert (a[1] - b[1]).abs().max() > 1e-3
    c = tiny_model.encode(visual, energy, direction, drop_direction=drop)
    d = tiny_model.encode(visual, energy, -direction, drop_direction=drop)
    torch.testing.assert_close(c[0], d[0], rtol=0, atol=0)
    assert (c[1] - d[1]).abs().max() > 1e-3


def test_bad_inputs_raise_clear_errors(tiny_model):
    cfg = tiny_model.config
    visual, energy, direction, codes = make_inputs(cfg, 1)
    with pytest.raises(ValueError, match="energy_map must be"):
        tiny_model(visual, codes, None, direction)
    with pytest.raises(ValueError, match="direction must be"):
        tiny_model(visual, codes, energy, None)
    with pytest.raises(ValueError, match="visual has"):
        tiny_model(torch.randn(1, cfg.max_source_length + 1, cfg.d_visual), codes, energy, direction)
    with pytest.raises(ValueError, match="codes must be"):
        tiny_model(visual, codes[:, :1], energy, direction)
    with pytest.raises(ValueError, match="max_target_length"):
        long = torch.zeros(1, 4, 2, cfg.num_frames + 5, dtype=torch.long)
        tiny_model(visual, long, energy, direction)
