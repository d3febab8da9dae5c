"""DAC wrapper: agreement with dac's own forward, weight norm, save/load, official .pth, n_quantizers."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from spatialgen.codecs import DAC_CONFIGS, DACCodec, create_codec, save_dac_codec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import dac

TINY = DAC_CONFIGS["dac_tiny"]


@pytest.fixture(scope="module")
def tiny() -> DACCodec:
    torch.manual_seed(1)
    return create_codec("dac_tiny")


def official_net(**overrides) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dac.DAC(**{**TINY, **overrides}).eval()


def test_matches_dac_forward(tiny: DACCodec) -> None:
    """codes and z from dac's own ``forward``; from_codes(codes) equals that z; audio equals its audio."""
    x = 0.3 * torch.randn(3, 1, 203)
    with torch.no_grad():
        ref = tiny.net(x, 16000)
        codes = tiny.encode(x)
        z = tiny.codes_to_latents(codes)
        audio = tiny.decode(codes, length=203)
    assert torch.equal(codes[:, 0], ref["codes"])
    torch.testing.assert_close(z[:, 0], ref["z"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio, ref["audio"], rtol=1e-5, atol=1e-6)
    # encode_latents is the pre-quantisation encoder output; quantising it gives the same codes.
    pre = tiny.encode_latents(x)
    torch.testing.assert_close(pre[:, 0], tiny.net.encoder(tiny._pad_to_hop(x[:, 0]).unsqueeze(1)))
    assert torch.equal(tiny.latents_to_codes(pre), codes)


def test_n_quantizers_prefix(tiny: DACCodec) -> None:
    """Residual VQ: the first q levels do not depend on how many levels are used after them."""
    two = DACCodec(TINY, n_quantizers=2, model=copy.deepcopy(tiny.net))
    x = 0.3 * torch.randn(1, 2, 160)
    codes2 = two.encode(x)
    assert codes2.shape == (1, 2, 2, 20) and two.num_codebooks == 2
    assert torch.equal(codes2, tiny.encode(x)[:, :, :2])
    assert two.decode(codes2, length=160).shape == (1, 2, 160)
    with pytest.raises(ValueError, match=r"n_quantizers must be in \[1, 4\]"):
        DACCodec(TINY, n_quantizers=5, model=tiny.net)


def test_weight_norm_removal_keeps_outputs() -> None:
    codec = create_codec("dac_tiny", frozen=False, remove_weight_norm=False)
    assert codec.has_weight_norm and codec.training
    codec.eval()
    x = 0.3 * torch.randn(2, 1, 96)
    with torch.no_grad():
        before_codes, before = codec.encode(x), codec.decode_latents(codec.encode_latents(x))
        codec.remove_weight_norm()
        after_codes, after = codec.encode(x), codec.decode_latents(codec.encode_latents(x))
    assert not codec.has_weight_norm
    assert not any(k.endswith(("weight_g", "weight_v")) for k in codec.state_dict())
    assert torch.equal(before_codes, after_codes)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    copy.deepcopy(codec)  # old weight_norm breaks deepcopy (EMA); removed, it works


def test_unfrozen_codec_trains_but_codes_are_deterministic() -> None:
    codec = create_codec("dac_tiny", frozen=False, remove_weight_norm=False)
    codec.train()
    assert codec.net.training and all(p.requires_grad for p in codec.parameters())
    x = 0.3 * torch.randn(4, 1, 80)
    assert torch.equal(codec.encode(x), codec.encode(x))  # quantizer dropout is bypassed for codes
    assert codec.net.quantizer.training


def test_save_load_round_trip(tiny: DACCodec, tmp_path: Path) -> None:
    save_dac_codec(tiny, tmp_path / "c")
    assert json.loads((tmp_path / "c" / "config.json").read_text())["encoder_rates"] == [2, 4]
    loaded = create_codec("dac_tiny", pretrained=tmp_path / "c")
    assert loaded.name == "dac_tiny"
    sd, sd2 = tiny.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    x = 0.3 * torch.randn(1, 4, 250)
    assert torch.equal(loaded.encode(x), tiny.encode(x))
    assert torch.equal(loaded.decode(tiny.encode(x), length=250), tiny.decode(tiny.encode(x), length=250))
    # The file path form and a tampered file (missing key) -> strict load error naming the file.
    from_file = create_codec("dac_tiny", pretrained=tmp_path / "c" / "model.safetensors")
    assert torch.equal(from_file.encode(x), tiny.encode(x))
    state = load_file(str(tmp_path / "c" / "model.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors: weights do not match"):
        create_codec("dac_tiny", pretrained=tmp_path / "c")


def test_save_with_weight_norm_then_load(tmp_path: Path) -> None:
    """A codec saved mid-training (weight norm kept) loads into the inference layout."""
    trainable = create_codec("dac_tiny", frozen=False, remove_weight_norm=False).eval()
    save_dac_codec(trainable, tmp_path)
    assert any(k.endswith("weight_g") for k in load_file(str(tmp_path / "model.safetensors")))
    loaded = create_codec("dac_tiny", pretrained=tmp_path)
    assert not loaded.has_weight_norm
    x = 0.3 * torch.randn(1, 1, 120)
    with torch.no_grad():
        got = loaded.decode_latents(loaded.encode_latents(x))
        want = trainable.decode_latents(trainable.encode_latents(x))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_official_pth_loads(tmp_path: Path) -> None:
    """A file written by dac's own ``save(package=False)`` loads strictly and reproduces its outputs."""
    net = official_net()
    path = net.save(str(tmp_path / "weights.pth"), package=False)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"state_dict", "metadata"} and "kwargs" in blob["metadata"]
    codec = create_codec("dac_tiny", pretrained=path)
    x = 0.3 * torch.randn(2, 1, 100)
    with torch.no_grad():
        ref = net(x, 16000)
    assert torch.equal(codec.encode(x)[:, 0], ref["codes"])
    audio = codec.decode(codec.encode(x), length=100)
    torch.testing.assert_close(audio[:, 0], ref["audio"][:, 0], rtol=1e-5, atol=1e-6)


def test_architecture_comes_from_file_and_conflicts_are_errors(tmp_path: Path) -> None:
    path = official_net(n_codebooks=3).save(str(tmp_path / "w.pth"), package=False)
    codec = create_codec("dac_tiny", pretrained=path)
    assert codec.num_codebooks == 3
    with pytest.raises(ValueError, match=r"weights have n_codebooks=3 but codec 'dac_tiny' was asked for"):
        create_codec("dac_tiny", pretrained=path, n_codebooks=4)
    with pytest.raises(ValueError, match=r"sample_rate=16000 but codec 'dac_44khz'"):
        create_codec("dac_44khz", pretrained=path)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pth: not a DAC \.pth"):
        create_codec("dac_tiny", pretrained=tmp_path / "bad.pth")


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="'dac_synthetic' has no official weights"):
        create_codec("dac_synthetic", pretrained=True)
    with pytest.raises(ValueError, match=r"unknown option\(s\) n_codebook for codec 'dac_tiny'"):
        create_codec("dac_tiny", n_codebook=3)
