"""ViSAudioPipeline: config derivation, JSON round-trip, generation shape/rate/determinism, frame resampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spatialgen.models.pipeline import PIPELINES, build_pipeline
from spatialgen.models.visaudio.pipeline import ViSAudioPipeline, resample_frames

from .conftest import randomize_

TINY = {"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 4.0}}
CODEC = {"sample_rate": 8000, "n_fft": 64, "hop_length": 32}


@pytest.fixture(scope="module")
def pipe() -> ViSAudioPipeline:
    p = ViSAudioPipeline.build(
        "tiny",
        codec_name="stft",
        codec_kwargs=CODEC,
        encoder_kwargs=TINY,
        encoder_pretrained=False,
        clip_seconds=1.0,
        seed=3,
    )
    randomize_(p.network, seed=5, scale=0.1)  # a fresh network outputs zero velocity: hide nothing
    with torch.no_grad():
        p.network.normalizer.mean.normal_(0, 0.1)
        p.network.normalizer.std.uniform_(0.5, 2.0)
    return p.eval()


def frames(batch: int = 2, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"tiny": torch.randint(0, 256, (batch, n, 3, 40, 40), generator=g, dtype=torch.uint8)}


def test_config_derived_from_codec_and_encoders(pipe):
    cfg = pipe.network.config
    assert cfg.latent_dim == 2 * (64 // 2 + 1) == pipe.codec.latent_dim
    assert cfg.latent_rate == 8000 / 32
    assert (cfg.clip_dim, cfg.sync_dim, cfg.pe_dim) == (16, 16, 16)
    assert cfg.pe_grid == (4, 4)  # 32 / 8 per side
    assert (cfg.clip_fps, cfg.pe_fps, cfg.sync_fps) == (4.0, 4.0, 4.0)
    # a non-Synchformer sync encoder gives one token per frame: segments of one frame
    assert (cfg.sync_segment, cfg.sync_stride, cfg.sync_tokens_per_segment) == (1, 1, 1)
    assert pipe.frame_rates == {"tiny": 4.0}
    assert len(pipe.encoders) == 1  # one tiny serves all three roles
    assert pipe.sample_rate == 8000 and pipe.output_format == "binaural" and pipe.num_channels == 2


def test_generate_shape_rate_and_seed(pipe):
    a = pipe.generate(frames(), seed=7, steps=3, cfg_scale=2.0)
    assert a.shape == (2, 2, 8000) and a.dtype == torch.float32
    b = pipe.generate(frames(), seed=7, steps=3, cfg_scale=2.0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = pipe.generate(frames(), seed=8, steps=3, cfg_scale=2.0)
    assert (a - c).abs().max() > 1e-3
    half = pipe.generate(frames(), seed=7, steps=3, seconds=0.5)
    assert half.shape == (2, 2, 4000)


def test_generate_rejects_bad_input(pipe):
    with pytest.raises(ValueError, match="frames for encoder 'tiny' missing"):
        pipe.generate({"clip": frames()["tiny"]}, seed=0, steps=1)
    with pytest.raises(ValueError, match=r"T>=4"):
        pipe.generate(frames(n=2), seed=0, steps=1)
    with pytest.raises(ValueError, match="camera_direction"):
        pipe.generate(frames(), camera_direction=torch.zeros(2, 2), steps=1)


def test_pipeline_config_round_trip_identical_output(pipe):
    config = json.loads(json.dumps(pipe.pipeline_config()))
    assert config["kind"] == "visaudio" and PIPELINES.get("visaudio") is ViSAudioPipeline
    other = build_pipeline(config)
    state = pipe.export_state_dict()
    # stored: network (+ normaliser buffers) and the tiny encoder (no published weights); STFT has no weights
    assert "network.normalizer.mean" in state and "network.normalizer.std" in state
    assert any(k.startswith("encoders.tiny.") for k in state)
    assert all(k.startswith(("network.", "encoders.tiny.")) for k in state)
    other.load_export_state_dict(state)
    other.eval()
    for kwargs in ({"cfg_scale": 2.0, "steps": 3}, {"cfg_scale": 1.0, "steps": 2, "method": "heun"}):
        torch.testing.assert_close(
            other.generate(frames(), seed=11, **kwargs),
            pipe.generate(frames(), seed=11, **kwargs),
            rtol=0,
            atol=0,
        )
    with pytest.raises(ValueError, match="missing"):
        other.load_export_state_dict({k: v for k, v in state.items() if "normalizer" not in k})


def test_random_parts_rebuild_from_seed():
    kw = {"codec_kwargs": CODEC, "encoder_kwargs": TINY, "encoder_pretrained": False, "clip_seconds": 1.0}
    a = ViSAudioPipeline.build("tiny", seed=1, **kw)
    b = ViSAudioPipeline.build("tiny", seed=1, **kw)
    c = ViSAudioPipeline.build("tiny", seed=2, **kw)
    wa, wb, wc = (p.encoders["tiny"].features[0].weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_encode_audio_keeps_ild(pipe):
    """Joint peak normalisation + shared statistics: a 6 dB louder left ear stays 6 dB louder after decoding."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(1, 1, 8000, generator=g, dtype=torch.float64) * 3.0
    audio = torch.cat((s, s / 2), dim=1)
    z = pipe.encode_audio(audio.float(), 8000)
    back = pipe.codec.decode_latents(pipe.network.normalizer.denormalize(z), length=8000)
    energy = back.pow(2).sum(-1)[0]
    assert float(10 * torch.log10(energy[0] / energy[1])) == pytest.approx(20 * np.log10(2), abs=1e-3)
    assert float(back.abs().max()) == pytest.approx(0.95, abs=1e-4)


def test_resample_frames_nearest_time():
    video = torch.arange(25, dtype=torch.uint8).reshape(1, 25, 1, 1, 1).expand(1, 25, 3, 2, 2)
    out = resample_frames(video, 25.0, 8.0)
    # reference: frame j at (j + 0.5) / 8 s is covered by source frame floor((j + 0.5) / 8 * 25)
    expected = np.floor((np.arange(8) + 0.5) / 8 * 25).astype(np.int64)
    assert out.shape == (1, 8, 3, 2, 2)
    np.testing.assert_array_equal(out[0, :, 0, 0, 0].numpy(), expected)
    assert resample_frames(video, 25.0, 25.0) is video
    with pytest.raises(ValueError, match="too few"):
        resample_frames(video[:, :1], 25.0, 8.0)


def test_prompt_conditions_generation_and_is_dropped_in_the_null_pass(pipe, monkeypatch):
    """generate(prompt=...) encodes the prompt with the text encoder; "" / None is the empty prompt; the
    CFG null pass gets the prompt with drop_text set (the network then uses its empty-prompt features,
    tests/models/visaudio/test_flow.py); a network without a text stream refuses a prompt in one line."""
    from spatialgen.encoders import text as text_mod

    cfg = pipe.network.config
    tower = text_mod.create_text_encoder("clip_text_tiny", pretrained=False, context_length=cfg.text_len)
    monkeypatch.setitem(text_mod._CACHE, "clip_text_h14_384", tower.to(torch.float32))
    kw = {"seed": 7, "steps": 1, "cfg_scale": 3.0}
    none = pipe.generate(frames(), **kw)
    torch.testing.assert_close(pipe.generate(frames(), prompt="", **kw), none, rtol=0, atol=0)
    calls = []
    original = pipe.network.prepare_conditions

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipe.network, "prepare_conditions", spy)
    dog = pipe.generate(frames(), prompt=["a dog barks", "rain"], **kw)
    assert (dog - none).abs().max() > 1e-4
    (c, u) = calls
    torch.testing.assert_close(c["text"], tower(["a dog barks", "rain"]))
    assert c["drop_text"] is None and u["drop_text"].all() and u["drop"].all()
    with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
        pipe.encode_text(["a", "b"], 1)
    monkeypatch.setattr(pipe.network.config, "text_len", 0)
    with pytest.raises(ValueError, match="no text stream"):
        pipe.generate(frames(), prompt="a dog", **kw)
