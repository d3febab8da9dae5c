"""ViSAGePipeline: energy map (vs a numpy reference), generation shapes, config round trip, state dict."""

import json
import math

import numpy as np
import pytest
import torch

from spatialgen.models.pipeline import build_pipeline
from spatialgen.models.visage.pipeline import ViSAGePipeline, visual_energy_map

TINY_ENCODER = {"embed_dim": 16, "input_size": [56, 56], "fps": 800.0}


def _pipeline() -> ViSAGePipeline:
    return ViSAGePipeline(
        "visage_tiny",
        encoder="tiny",
        encoder_kwargs=TINY_ENCODER,
        encoder_pretrained=False,
        codec_pretrained=False,
    )


def _frames(pipe: ViSAGePipeline, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(
        0, 256, (batch, pipe.config.source_length, 3, 56, 56), dtype=torch.uint8, generator=g
    )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x[np.isfinite(x)].max())
    return e / e.sum()


def _reference_energy(F: np.ndarray, rows: int, cols: int, tau=0.1, top_p=0.7) -> np.ndarray:
    """jaeyeonkim99/visage ``data/infer_clip_energy.py``, one frame and one patch at a time."""
    T, N, _ = F.shape
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    out = np.zeros((T, N))
    for t in range(T):
        s_sp, s_tp = np.zeros(N), np.zeros(N)
        for i in range(rows):
            for j in range(cols):
                nb = [(i + di, j + dj) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))]
                nb = [F[t, a * cols + b] for a, b in nb if 0 <= a < rows and 0 <= b < cols]
                k = i * cols + j
                s_sp[k] = np.linalg.norm(unit(F[t, k]) - unit(np.mean(nb, axis=0)))
                if t == 0:
                    a = F[1, k]
                elif t == T - 1:
                    a = F[T - 2, k]
                else:
                    a = (F[t - 1, k] + F[t + 1, k]) / 2
                s_tp[k] = np.linalg.norm(unit(F[t, k]) - unit(a))
        e0 = 0.5 * (_softmax(s_sp / tau) + _softmax(s_tp / tau))
        order = np.argsort(e0, kind="stable")
        removed = order[np.cumsum(e0[order]) <= 1 - top_p]
        s_sp[removed] = -np.inf
        s_tp[removed] = -np.inf
        out[t] = 0.5 * (_softmax(s_sp / tau) + _softmax(s_tp / tau))
    return out


def test_energy_map_matches_reference():
    tokens = torch.randn(2, 5, 49, 12, dtype=torch.float64)
    got = visual_energy_map(tokens)
    assert got.shape == (2, 5, 49) and got.dtype == torch.float64
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), _reference_energy(tokens[b].numpy(), 7, 7), atol=1e-12)
    assert torch.allclose(got.sum(-1), torch.ones(2, 5, dtype=torch.float64), atol=1e-12)
    # As the official ``infer_clip_energy.py`` does: random 768-d CLIP-sized tokens
    # leave 17-18 of the 49 entries exactly 0
    zeros = (visual_energy_map(torch.randn(1, 20, 49, 768)) == 0).sum(-1)
    assert ((zeros >= 17) & (zeros <= 18)).all()
    # non-square grid, float32 and half inputs
    rect = torch.randn(1, 3, 12, 8)
    np.testing.assert_allclose(
        visual_energy_map(rect, (3, 4))[0].numpy(),
        _reference_energy(rect[0].double().numpy(), 3, 4),
        atol=1e-5,
    )
    assert visual_energy_map(rect.half(), (3, 4)).dtype == torch.float32


def test_energy_map_single_frame_and_errors():
    one = visual_energy_map(torch.randn(1, 1, 49, 8))
    assert torch.allclose(one.sum(-1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="grid"):
        visual_energy_map(torch.randn(1, 2, 48, 8))
    with pytest.raises(ValueError, match="patch_tokens"):
        visual_energy_map(torch.randn(2, 49, 8))


def test_generate_shape_rate_and_seed():
    pipe = _pipeline()
    assert pipe.sample_rate == 16000 and pipe.clip_seconds == pipe.config.clip_seconds
    assert pipe.frame_rates == {"tiny": 800.0} and pipe.num_channels == 4
    frames = _frames(pipe)
    cam = torch.tensor([[0.5, 0.1], [-1.0, 0.0]])
    a = pipe.generate({"tiny": frames}, camera_direction=cam, seed=3)
    assert a.shape == (2, 4, round(pipe.clip_seconds * pipe.sample_rate)) and a.dtype == torch.float32
    assert torch.equal(a, pipe.generate({"tiny": frames}, camera_direction=cam, seed=3))
    assert not torch.equal(a, pipe.generate({"tiny": frames}, camera_direction=cam, seed=4))
    with pytest.raises(ValueError, match="one window is"):
        pipe.generate({"tiny": frames[:, :2]}, seed=0)
    with pytest.raises(ValueError, match="no 'tiny' entry"):
        pipe.generate({"clip_vit_b32": frames}, seed=0)
    with pytest.raises(ValueError, match="camera_direction"):
        pipe.generate(frames, camera_direction=torch.zeros(2, 3), seed=0)


def test_camera_direction_changes_output():
    pipe = _pipeline()
    with torch.no_grad():  # a direction path that matters (random init is near-silent at std 0.02)
        for layer in pipe.network.encoder.direction_mlp:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 2.0)
        pipe.network.heads.weight.normal_(0.0, 1.0)
    frames = _frames(pipe, 1)
    # the network's first-step logits move with the direction (sampled tokens may still coincide)
    visual, energy = pipe.encode_video(frames)
    codes = torch.zeros(1, pipe.config.num_channels, pipe.config.num_codebooks, 4, dtype=torch.long)
    logits = {}
    for name, cam in (("left", [[math.pi / 2, 0.0]]), ("right", [[-math.pi / 2, 0.0]]), ("null", None)):
        d = pipe.direction_input(None if cam is None else torch.tensor(cam), 1, torch.device("cpu"))
        with torch.no_grad():
            logits[name] = pipe.network(visual, codes, energy, d).logits[..., 0, :]
    assert (logits["left"] - logits["right"]).abs().max() > 1e-3
    assert (logits["left"] - logits["null"]).abs().max() > 1e-3
    # and generate() takes the direction end to end
    left = pipe.generate(frames, camera_direction=torch.tensor([[math.pi / 2, 0.0]]), seed=0, guidance="none")
    assert left.shape[:2] == (1, 4) and torch.isfinite(left).all()
    # the direction input is the unit vector (+y = left) and None is the learned null
    d = pipe.direction_input(torch.tensor([[math.pi / 2, 0.0]]), 1, torch.device("cpu"))
    assert torch.allclose(d, torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-7)
    assert torch.equal(
        pipe.direction_input(None, 2, torch.device("cpu")), pipe.network.null_direction.expand(2, 3)
    )


def test_config_round_trip_gives_identical_outputs():
    pipe = _pipeline()
    config = json.loads(json.dumps(pipe.pipeline_config()))
    assert config["kind"] == "visage" and config["encoder"]["pretrained"] is False
    rebuilt = build_pipeline(config)
    assert isinstance(rebuilt, ViSAGePipeline)
    rebuilt.load_state_dict(pipe.state_dict(), strict=True)  # random codec/encoder travel in the state dict
    frames, cam = _frames(pipe), torch.tensor([[0.3, 0.2], [2.0, -0.4]])
    for guidance in ("joint", "dual"):
        a = pipe.generate(frames, camera_direction=cam, seed=7, guidance=guidance)
        b = rebuilt.generate(frames, camera_direction=cam, seed=7, guidance=guidance)
        assert torch.equal(a, b)


def test_official_parts_left_out_of_state_dict():
    pipe = _pipeline()
    keys = pipe.state_dict().keys()
    assert any(k.startswith("network.") for k in keys) and any(k.startswith("encoder.") for k in keys)
    pipe.encoder_spec["pretrained"] = True  # as if built from the official weights: referenced by name
    state = pipe.state_dict()
    assert not any(k.startswith("encoder.") for k in state) and any(k.startswith("codec.") for k in state)
    before = {k: v.clone() for k, v in pipe.encoder.state_dict().items()}
    pipe.load_state_dict(state, strict=True)  # missing official weights are kept as they are
    assert all(torch.equal(before[k], v) for k, v in pipe.encoder.state_dict().items())
    assert pipe.pipeline_config()["encoder"]["pretrained"] is True


def test_bad_parts_are_rejected():
    with pytest.raises(ValueError, match="num_channels=4"):
        ViSAGePipeline("visage_small_mono", encoder="tiny", encoder_pretrained=False, codec_pretrained=False)
    with pytest.raises(ValueError, match="d_visual"):
        ViSAGePipeline(
            "visage_tiny",
            encoder="tiny",
            encoder_kwargs={**TINY_ENCODER, "embed_dim": 8},
            encoder_pretrained=False,
            codec_pretrained=False,
        )
    with pytest.raises(ValueError, match="patch grid"):
        ViSAGePipeline(
            "visage_tiny",
            encoder="tiny",
            encoder_kwargs={**TINY_ENCODER, "input_size": [64, 64]},
            encoder_pretrained=False,
            codec_pretrained=False,
        )
    with pytest.raises(ValueError, match="not a ViSAGe pipeline config"):
        ViSAGePipeline.from_pipeline_config({"kind": "visage"})
