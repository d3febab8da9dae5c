"""Generation: KV-cached decoding equals teacher forcing; batched CFG equals separate passes; sampling."""

import pytest
import torch

from spatialgen.models.visage import ViSAGe, codes_to_audio, generate, get_config, sample_logits

from .conftest import make_inputs


def test_cached_decoding_equals_teacher_forced_pass(tiny_model):
    cfg = tiny_model.config
    visual, energy, direction, codes = make_inputs(cfg, 2)
    memory = tiny_model.encode(visual, energy, direction)
    seq, _ = tiny_model.pattern.build(codes, cfg.pad_token)
    full = tiny_model.heads(tiny_model.decode(seq, memory))  # [B, L, K, V]
    state = tiny_model.start_decoding(memory, cfg.num_frames)
    steps = [tiny_model.decode_step(state, None)]
    for p in range(1, seq.shape[1]):
        steps.append(tiny_model.decode_step(state, seq[:, p - 1 : p]))
    incremental = tiny_model.heads(torch.cat(steps, 1))
    assert incremental.dtype == torch.float32
    torch.testing.assert_close(incremental, full, rtol=0, atol=1e-5)
    assert (full[:, 1:] - full[:, :-1]).abs().max() > 1e-2  # positions really differ


def guided_reference(model, codes, visual, energy, direction, guidance, s, sd):
    """Logits at every position from separate (unbatched) teacher-forced passes per branch, combined."""
    seq, _ = model.pattern.build(codes, model.config.pad_token)
    B = visual.shape[0]
    yes, no = torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)

    def branch(dv, dd):
        memory = model.encode(visual, energy, direction, drop_visual=dv, drop_direction=dd)
        return model.heads(model.decode(seq, memory))

    full = branch(yes, yes)
    if guidance == "none":
        return seq, full
    uncond = branch(no, no)
    if guidance == "joint":
        return seq, full + s * (full - uncond)
    return seq, full + s * (branch(yes, no) - uncond) + sd * (branch(no, yes) - uncond)


@pytest.mark.parametrize("guidance", ["none", "joint", "dual"])
def test_greedy_generation_matches_separate_branch_passes(tiny_model, guidance):
    """Greedy tokens = argmax of guidance computed from separate teacher-forced passes on the output."""
    cfg = tiny_model.config
    visual, energy, direction, _ = make_inputs(cfg, 2, seed=3)
    s, sd = 1.5, 0.7
    codes = generate(
        tiny_model,
        visual,
        energy,
        direction,
        guidance=guidance,
        guidance_scale=s,
        direction_guidance_scale=sd,
        do_sample=False,
    )
    assert codes.shape == (2, 4, 2, cfg.num_frames) and codes.dtype == torch.long
    seq, logits = guided_reference(tiny_model, codes, visual, energy, direction, guidance, s, sd)
    mask = tiny_model.pattern.mask(cfg.num_frames)
    top2 = logits.topk(2, dim=-1).values
    decisive = (top2[..., 0] - top2[..., 1]) > 1e-4  # skip numerical near-ties
    agree = (logits.argmax(-1) == seq) | ~decisive
    assert agree[:, mask].all()
    assert decisive[:, mask].float().mean() > 0.95


def test_guidance_changes_the_output(tiny_model):
    cfg = tiny_model.config
    visual, energy, direction, _ = make_inputs(cfg, 2, seed=3)
    a = generate(tiny_model, visual, energy, direction, guidance="none", do_sample=False)
    b = generate(tiny_model, visual, energy, direction, guidance="joint", guidance_scale=3.0, do_sample=False)
    assert not torch.equal(a, b)


def test_seeded_sampling_is_reproducible(tiny_model):
    cfg = tiny_model.config
    visual, energy, direction, _ = make_inputs(cfg, 2)

    def run(seed, **kw):
        return generate(
            tiny_model, visual, energy, direction, generator=torch.Generator().manual_seed(seed), **kw
        )

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    assert torch.equal(run(0, do_sample=False), run(5, do_sample=False))


def test_output_is_padded_by_repeating_the_last_frame():
    cfg = get_config("visage_tiny", codec_hop_length=7, max_target_length=2 * 11 + 1)
    assert (cfg.num_frames, cfg.output_frames) == (11, 12)
    model = ViSAGe(cfg).eval()
    visual, energy, direction, _ = make_inputs(cfg, 1)
    codes = generate(model, visual, energy, direction, do_sample=False)
    assert codes.shape[-1] == 12 and torch.equal(codes[..., -1], codes[..., -2])
    assert generate(model, visual, energy, direction, do_sample=False, num_frames=4).shape[-1] == 4


def test_top_k_and_top_p_respect_their_support():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 50, generator=g)
    ids = sample_logits(logits.repeat(400, 1), top_k=5, generator=g).reshape(400, 8)
    top5 = logits.topk(5, dim=-1).indices
    for row in range(8):
        drawn = set(ids[:, row].tolist())
        assert drawn <= set(top5[row].tolist()) and len(drawn) == 5

    probs = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.05])
    ids = sample_logits(probs.log().repeat(2000, 1), top_p=0.75, generator=g)
    assert set(ids.tolist()) == {0, 1}  # the 0.8-mass nucleus {0, 1}; token 2 would exceed 0.75 already
    counts = torch.bincount(ids, minlength=2).double() / 2000
    assert abs(counts[0] - 0.5 / 0.8) < 0.05  # renormalised within the nucleus
    ids = sample_logits(probs.log().repeat(100, 1), top_p=0.01, generator=g)
    assert (ids == 0).all()  # the most likely token is always kept
    assert torch.equal(sample_logits(logits, do_sample=False), logits.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        sample_logits(logits, top_p=1.5)


def test_low_temperature_approaches_greedy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 30, generator=g)
    assert torch.equal(sample_logits(logits, temperature=1e-4, generator=g), logits.argmax(-1))


def test_dual_guidance_needs_direction():
    model = ViSAGe(get_config("visage_tiny", energy_map_dim=0, use_direction=False, num_channels=1)).eval()
    visual = torch.randn(1, model.config.source_length, model.config.d_visual)
    with pytest.raises(ValueError, match="dual"):
        generate(model, visual, guidance="dual")
    assert generate(model, visual, guidance="joint", num_frames=3).shape == (1, 1, 2, 3)


def test_codes_to_audio_decodes_every_channel():
    from spatialgen.codecs import create_codec

    codec = create_codec("dac_tiny")
    codes = torch.randint(0, codec.codebook_size, (2, 4, 2, 10))
    audio = codes_to_audio(codes, codec, length=77)
    assert audio.shape == (2, 4, 77)
    torch.testing.assert_close(audio[:, 1], codes_to_audio(codes[:, 1:2], codec, length=77)[:, 0])
