"""Fast decoding engine (DecodeStepper): same greedy tokens and logits as the module-by-module path."""

import pytest
import torch

from spatialgen.models.visage import generate
from spatialgen.models.visage.stepper import DecodeStepper, onednn_available, packed_weights
from spatialgen.nn.native import native_available

from .conftest import make_inputs

# Every product kernel this machine can run (auto resolves to one of them).
KERNELS = ["torch"] + ["onednn"] * onednn_available() + ["native"] * native_available()


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("guidance", ["none", "joint"])
def test_fast_greedy_tokens_equal_plain(tiny_model, batch, guidance):
    """tiny_model has every tensor perturbed, constants included (biases, norms, BOS/EOS, nulls)."""
    visual, energy, direction, _ = make_inputs(tiny_model.config, batch, seed=5)
    kw = dict(guidance=guidance, guidance_scale=2.5, do_sample=False)
    plain = generate(tiny_model, visual, energy, direction, engine="plain", **kw)
    for kernel in KERNELS:
        for static in (False, True):
            fast = generate(tiny_model, visual, energy, direction, kernel=kernel, static=static, **kw)
            assert torch.equal(fast, plain), (kernel, static)


def test_fast_dual_guidance_and_sampling_equal_plain(tiny_model):
    visual, energy, direction, _ = make_inputs(tiny_model.config, 2, seed=6)
    kw = dict(guidance="dual", guidance_scale=1.5, direction_guidance_scale=0.7, do_sample=False)
    plain = generate(tiny_model, visual, energy, direction, engine="plain", **kw)
    assert torch.equal(generate(tiny_model, visual, energy, direction, **kw), plain)
    # Same logits -> the same seeded draws (top-k sampling consumes the generator identically).
    kw = dict(guidance="joint", top_k=8)
    a = generate(
        tiny_model,
        visual,
        energy,
        direction,
        engine="plain",
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    b = generate(tiny_model, visual, energy, direction, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b)


def _teacher_forced_and_stepped(model, dtype=None, static=False, kernel="auto"):
    cfg = model.config
    visual, energy, direction, codes = make_inputs(cfg, 2, seed=7)
    memory = model.encode(visual, energy, direction)
    seq, _ = model.pattern.build(codes, cfg.pad_token)
    full = model.heads(model.decode(seq, memory))  # [B, L, K, V]
    schedule = model.pattern.schedule(cfg.num_frames)
    stepper = DecodeStepper(model, memory, len(schedule), schedule, dtype=dtype, static=static, kernel=kernel)
    everything = tuple(range(cfg.num_streams))
    stepper_all = packed_weights(model, 2, (everything,), stepper.dtype, stepper.kernel).head_linears[
        everything
    ]
    out, x = [], None
    for p in range(seq.shape[1]):
        h = stepper.step(x)
        out.append(stepper_all(h).float().view(2, cfg.num_streams, -1))
        x = stepper.embed_rows(seq[:, p])
    return torch.stack(out, 1), full


@pytest.mark.parametrize("static", [False, True])
def test_stepped_logits_equal_teacher_forced(tiny_model, static):
    for kernel in KERNELS:
        stepped, full = _teacher_forced_and_stepped(tiny_model, static=static, kernel=kernel)
        torch.testing.assert_close(stepped, full, rtol=0, atol=2e-5)
    assert (full[:, 1:] - full[:, :-1]).abs().max() > 1e-2  # positions really differ


def test_bf16_logits_are_close(tiny_model):
    stepped, full = _teacher_forced_and_stepped(tiny_model, dtype=torch.bfloat16)
    err = (stepped - full).norm() / full.norm()
    assert 1e-4 < err < 3e-2  # really bf16 (not silently float32), and still the same network


def test_packed_weights_are_reused_and_refreshed(tiny_model):
    visual, energy, direction, _ = make_inputs(tiny_model.config, 1, seed=8)
    kw = dict(guidance="none", do_sample=False)
    generate(tiny_model, visual, energy, direction, **kw)
    schedule = tiny_model.pattern.schedule(tiny_model.config.num_frames)
    rows_key = tuple(dict.fromkeys(tuple(s.tolist()) for s in schedule))  # what generate() packs
    first = packed_weights(tiny_model, 1, rows_key, torch.float32, KERNELS[-1])
    assert packed_weights(tiny_model, 1, rows_key, torch.float32, KERNELS[-1]) is first
    with torch.no_grad():  # an in-place update (as an optimizer step) must invalidate the packing
        tiny_model.decoder.layers[0].ffn.fc1.weight.mul_(-1.0)
    assert packed_weights(tiny_model, 1, rows_key, torch.float32, KERNELS[-1]) is not first
    plain = generate(tiny_model, visual, energy, direction, engine="plain", **kw)
    assert torch.equal(generate(tiny_model, visual, energy, direction, **kw), plain)


def test_bad_options_fail_clearly(tiny_model):
    visual, energy, direction, _ = make_inputs(tiny_model.config, 1)
    with pytest.raises(ValueError, match="engine must be"):
        generate(tiny_model, visual, energy, direction, engine="turbo")
    with pytest.raises(ValueError, match="options of engine='fast'"):
        generate(tiny_model, visual, energy, direction, engine="plain", dtype=torch.bfloat16)
    memory = tiny_model.encode(visual, energy, direction)
    schedule = tiny_model.pattern.schedule(1)
    with pytest.raises(ValueError, match="exceed max_target_length"):
        DecodeStepper(tiny_model, memory, tiny_model.config.max_target_length + 1, schedule)
    stepper = DecodeStepper(tiny_model, memory, 1, schedule)
    stepper.step(None)
    with pytest.raises(ValueError, match="all 1 positions are decoded"):
        stepper.step(None)


@pytest.mark.slow
def test_compiled_static_step_gives_plain_tokens(tiny_model):
    """torch.compile of the static step (minutes on a CPU: inductor builds C++ kernels)."""
    visual, energy, direction, _ = make_inputs(tiny_model.config, 1, seed=9)
    kw = dict(guidance="joint", do_sample=False)
    plain = generate(tiny_model, visual, energy, direction, engine="plain", **kw)
    assert torch.equal(generate(tiny_model, visual, energy, direction, compile=True, **kw), plain)


@pytest.mark.parametrize("kernel", ["onednn", "native"])
def test_compile_rejects_an_explicit_kernel(tiny_model, kernel):
    visual, energy, direction, _ = make_inputs(tiny_model.config, 1)
    with pytest.raises(ValueError, match="compile=True uses the compiler's own kernels"):
        generate(tiny_model, visual, energy, direction, compile=True, kernel=kernel)


def test_kernel_choice_and_its_errors(tiny_model):
    from spatialgen.models.visage.stepper import choose_kernel

    cpu, f32 = torch.device("cpu"), torch.float32
    assert choose_kernel("auto", torch.device("cuda"), f32, 1, False) == "torch"
    assert choose_kernel("auto", cpu, f32, 1, True) == "torch"  # compile brings its own kernels
    assert choose_kernel("auto", cpu, torch.float16, 1, False) == "torch"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        if native_available():
            assert choose_kernel("auto", cpu, f32, 8, False) == "native"
        if onednn_available():
            assert choose_kernel("auto", cpu, f32, 9, False) == "onednn"
            torch.set_num_threads(2)  # the native kernel is single-threaded: oneDNN from 3 rows on
            assert choose_kernel("auto", cpu, f32, 3, False) == "onednn"
            if native_available():
                assert choose_kernel("auto", cpu, f32, 2, False) == "native"
    finally:
        torch.set_num_threads(threads)
    if onednn_available():
        assert choose_kernel("auto", cpu, torch.bfloat16, 1, False) == "onednn"
    with pytest.raises(ValueError, match="kernel must be one of"):
        choose_kernel("blas", cpu, f32, 1, False)
    with pytest.raises(ValueError, match="runs float32 on CPU"):
        choose_kernel("native", cpu, torch.bfloat16, 1, False)
    visual, energy, direction, _ = make_inputs(tiny_model.config, 1)
    with pytest.raises(ValueError, match="options of engine='fast'"):
        generate(tiny_model, visual, energy, direction, engine="plain", kernel="native")


def test_packed_weights_keep_the_most_recent_geometries(tiny_model):
    from spatialgen.models.visage.stepper import MAX_PACKED

    keys = ((0,),)
    packs = [
        packed_weights(tiny_model, rows, keys, torch.float32, False) for rows in range(1, MAX_PACKED + 1)
    ]
    assert packed_weights(tiny_model, 1, keys, torch.float32, False) is packs[0]  # hit, now most recent
    packed_weights(tiny_model, MAX_PACKED + 1, keys, torch.float32, False)  # evicts the least recent (rows 2)
    assert packed_weights(tiny_model, 1, keys, torch.float32, False) is packs[0]
    assert packed_weights(tiny_model, 2, keys, torch.float32, False) is not packs[1]


def test_float64_model_uses_the_fast_engine_exactly(tiny_model):
    model = tiny_model.double()
    visual, energy, direction, _ = make_inputs(model.config, 2, seed=10, dtype=torch.float64)
    kw = dict(guidance="joint", do_sample=False)
    plain = generate(model, visual, energy, direction, engine="plain", **kw)
    assert torch.equal(generate(model, visual, energy, direction, **kw), plain)


@pytest.mark.skipif(not native_available(), reason="no native kernels")
def test_native_kernel_with_heads_the_attention_pass_cannot_take():
    """Head size 8 (not a multiple of 16): native products, PyTorch attention, the plain path's tokens."""
    from spatialgen.models.visage import ViSAGe, get_config

    torch.manual_seed(0)
    model = ViSAGe(get_config("visage_tiny", dropout=0.0, decoder_heads=4, encoder_heads=4)).eval()
    visual, energy, direction, _ = make_inputs(model.config, 1, seed=3)
    kw = dict(guidance="joint", do_sample=False)
    plain = generate(model, visual, energy, direction, engine="plain", **kw)
    assert torch.equal(generate(model, visual, energy, direction, kernel="native", **kw), plain)
