"""Registry, configuration and preprocessing of every registered encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialgen.encoders import EncoderOutput, create_encoder, list_encoders
from spatialgen.encoders.base import resize_frames
from spatialgen.registry import UnknownNameError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

# name: (input fps, output fps, input size, mean, std, embed_dim, patch_dim, patch grid, outputs per unit)
EXPECTED = {
    "clip_vit_b32": (4.0, 4.0, (224, 224), CLIP_MEAN, CLIP_STD, 512, 768, (7, 7), 1),
    "clip_vit_h14_384": (8.0, 8.0, (384, 384), CLIP_MEAN, CLIP_STD, 1024, 1280, (27, 27), 1),
    "pe_spatial": (8.0, 8.0, (448, 448), HALF, HALF, 1024, 1024, (32, 32), 1),
    "pe_spatial_base": (8.0, 8.0, (512, 512), HALF, HALF, 768, 768, (32, 32), 1),
    "pe_spatial_gigantic": (8.0, 8.0, (448, 448), HALF, HALF, 1536, 1536, (32, 32), 1),
    "synchformer": (25.0, 25.0, (224, 224), HALF, HALF, 768, 768, (14, 14), 8),
    "tiny": (8.0, 8.0, (64, 64), HALF, HALF, 32, 32, (8, 8), 1),
}


def test_every_registered_encoder_has_expectations() -> None:
    assert set(list_encoders()) == set(EXPECTED)
    assert list_encoders("pe_*") == ["pe_spatial", "pe_spatial_base", "pe_spatial_gigantic"]
    assert list_encoders("clip_*") == ["clip_vit_b32", "clip_vit_h14_384"]


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown encoder 'clip_vit_b23'.*'clip_vit_b32'"):
        create_encoder("clip_vit_b23", pretrained=False)


@pytest.mark.parametrize("name", list_encoders())
def test_config_and_shapes_on_meta(name: str) -> None:
    """Full-size architectures built on the meta device: config, frozen state, output shapes."""
    fps, out_fps, size, mean, std, dim, pdim, grid, per_unit = EXPECTED[name]
    enc = create_encoder(name, pretrained=False, device="meta")
    assert (enc.fps, enc.output_fps, enc.input_size) == (fps, out_fps, size)
    np.testing.assert_allclose(enc.mean, mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(enc.std, std, rtol=0, atol=1e-8)
    assert (enc.embed_dim, enc.patch_dim, enc.patch_grid) == (dim, pdim, grid)
    assert enc.frozen is (name != "tiny")
    frames = 16 if name == "synchformer" else 2  # one Synchformer segment, two frames otherwise
    out = enc(torch.zeros(2, frames, 3, *size, device="meta"), patch_tokens=True)
    steps = per_unit if name == "synchformer" else frames
    assert isinstance(out, EncoderOutput) and out.fps == out_fps
    assert out.global_features.shape == (2, steps, dim)
    assert out.patch_tokens.shape == (2, steps, grid[0] * grid[1], pdim)


def _numpy_normalise(x: np.ndarray, mean, std) -> np.ndarray:
    return (x - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None]


def test_preprocess_normalises_with_the_formula() -> None:
    enc = create_encoder("tiny", pretrained=False)  # 64x64, mean = std = 0.5
    enc.mean, enc.std = CLIP_MEAN, CLIP_STD  # exercise per-channel statistics
    u8 = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    got = enc.preprocess(u8)
    assert got.dtype == torch.float32
    want = _numpy_normalise(u8.numpy().astype(np.float64) / 255.0, CLIP_MEAN, CLIP_STD)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-6)
    f64 = torch.rand(1, 2, 3, 64, 64, dtype=torch.float64)
    got = enc.preprocess(f64)
    assert got.dtype == torch.float64  # float input keeps its dtype
    np.testing.assert_allclose(
        got.numpy(), _numpy_normalise(f64.numpy(), CLIP_MEAN, CLIP_STD), rtol=0, atol=1e-14
    )


def test_preprocess_resizes_constant_colour_exactly() -> None:
    enc = create_encoder("tiny", pretrained=False)
    colour = torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64)
    frames = colour.view(1, 1, 3, 1, 1).expand(1, 2, 3, 90, 160).clone()
    got = enc.preprocess(frames)
    assert got.shape == (1, 2, 3, 64, 64)
    want = ((colour - 0.5) / 0.5).view(1, 1, 3, 1, 1).expand_as(got)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_shorter_crop_keeps_centre_and_squash_keeps_everything() -> None:
    # a 64x192 frame: left/right thirds black, centre third white
    x = torch.zeros(1, 3, 64, 192, dtype=torch.float64)
    x[..., 64:128] = 1.0
    crop = resize_frames(x, (32, 32), "shorter_crop")  # scale 0.5 -> 32x96, centre 32x32 = white
    assert crop.shape == (1, 3, 32, 32)
    torch.testing.assert_close(crop[..., 2:-2], torch.ones_like(crop[..., 2:-2]), rtol=0, atol=1e-9)
    squash = resize_frames(x, (32, 32), "squash")  # whole frame: white only in the middle third
    assert squash[..., :, :9].max() < 0.05 and squash[..., :, 23:].max() < 0.05
    assert squash[..., :, 13:19].min() > 0.95
    assert float(squash.min()) >= 0.0 and float(squash.max()) <= 1.0  # bicubic overshoot clamped


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (torch.zeros(2, 3, 64, 64), r"shape \[batch, time, 3, height, width\]"),
        (torch.zeros(1, 2, 64, 64, 3), r"shape \[batch, time, 3, height, width\]"),
        (torch.zeros(1, 2, 3, 64, 64, dtype=torch.int32), "uint8 .* or float"),
    ],
)
def test_bad_frames_raise_one_line_value_error(frames: torch.Tensor, match: str) -> None:
    enc = create_encoder("tiny", pretrained=False)
    with pytest.raises(ValueError, match=match):
        enc(frames)


def test_create_encoder_and_create_codec_share_the_pretrained_default() -> None:
    """One convention for every registry (timm's): ``pretrained`` defaults to False, random weights."""
    import inspect

    from spatialgen.codecs import create_codec

    defaults = {
        f.__name__: inspect.signature(f).parameters["pretrained"].default
        for f in (create_encoder, create_codec)
    }
    assert defaults == {"create_encoder": False, "create_codec": False}


@pytest.mark.parametrize("name", list_encoders())
def test_default_build_is_random_and_offline(name: str, monkeypatch) -> None:
    """Without ``pretrained`` nothing is fetched: every encoder builds (on meta) with the network off."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = create_encoder(name, device="meta")
    assert enc.fps == EXPECTED[name][0]
