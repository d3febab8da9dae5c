"""Real forwards (CPU): shapes, dtypes, freezing, inference mode, chunking, weight loading, offline errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from spatialgen.encoders import EncoderWeightsError, TimmImageEncoder, create_encoder
from spatialgen.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def clip_b32():
    return create_encoder("clip_vit_b32", pretrained=False)


def test_tiny_shapes_dtype_and_trainable() -> None:
    enc = create_encoder("tiny", pretrained=False, patch_tokens=True)
    assert not enc.frozen and enc.training
    out = enc(torch.randint(0, 256, (2, 5, 3, 48, 80), dtype=torch.uint8))
    assert out.global_features.shape == (2, 5, 32) and out.patch_tokens.shape == (2, 5, 64, 32)
    assert out.global_features.dtype == torch.float32 and out.fps == 8.0
    out.global_features.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_tiny_chunking_equals_one_pass_float64() -> None:
    enc = create_encoder("tiny", pretrained=False, embed_dim=48, input_size=(32, 48)).double().eval()
    frames = torch.rand(2, 7, 3, 40, 56, dtype=torch.float64)
    enc.chunk_size = 64
    whole = enc(frames, patch_tokens=True)
    enc.chunk_size = 3
    parts = enc(frames, patch_tokens=True)
    assert whole.global_features.dtype == torch.float64
    torch.testing.assert_close(parts.global_features, whole.global_features, rtol=0, atol=1e-13)
    torch.testing.assert_close(parts.patch_tokens, whole.patch_tokens, rtol=0, atol=1e-13)
    assert whole.patch_tokens.shape == (2, 7, 4 * 6, 48)


def test_clip_b32_forward_matches_timm_and_is_frozen(clip_b32) -> None:
    enc = clip_b32
    assert enc.frozen and not enc.training and not any(p.requires_grad for p in enc.parameters())
    enc.train()  # a frozen tower stays in eval mode when a parent module is put in training mode
    assert not enc.training
    modes = []
    handle = enc.model.patch_embed.register_forward_hook(
        lambda *_: modes.append(torch.is_inference_mode_enabled())
    )
    frames = torch.randint(0, 256, (1, 2, 3, 180, 240), dtype=torch.uint8)
    try:
        out = enc(frames, patch_tokens=True)
    finally:
        handle.remove()
    assert modes == [True]
    assert out.global_features.shape == (1, 2, 512) and out.patch_tokens.shape == (1, 2, 49, 768)
    assert out.fps == 4.0 and out.global_features.dtype == torch.float32
    # global = CLIP's projected CLS embedding (timm's full forward); patches = raw tokens before ln_post
    with torch.no_grad():
        pre = enc.preprocess(frames).flatten(0, 1)
        torch.testing.assert_close(out.global_features[0], enc.model(pre), rtol=0, atol=1e-5)
        normed = enc.model.forward_features(pre)[:, 1:]
        torch.testing.assert_close(enc.model.norm(out.patch_tokens[0]), normed, rtol=0, atol=1e-5)
    # outputs are ordinary tensors: usable as inputs of a trainable layer
    assert not out.global_features.is_inference()
    head = torch.nn.Linear(512, 1)
    head(out.global_features).sum().backward()
    assert head.weight.grad is not None
    # chunking over frames gives the same features
    enc.chunk_size = 1
    try:
        again = enc(frames, patch_tokens=True)
    finally:
        enc.chunk_size = 64
    torch.testing.assert_close(again.global_features, out.global_features, rtol=0, atol=1e-5)
    torch.testing.assert_close(again.patch_tokens, out.patch_tokens, rtol=0, atol=1e-5)


def test_pretrained_true_offline_raises_one_clear_error(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path / "weights"))
    with pytest.raises(WeightsNotFoundError) as info:
        create_encoder("clip_vit_b32", pretrained=True)
    msg = str(info.value)
    assert "timm/vit_base_patch32_clip_224.openai" in msg and "model.safetensors" in msg
    assert "HF_HUB_OFFLINE" in msg and "HF_HUB_CACHE" in msg and "\n" not in msg
    with pytest.raises(WeightsNotFoundError) as info:
        create_encoder("synchformer", pretrained=True)
    msg = str(info.value)
    assert "releases/download/v0.1/synchformer_state_dict.pth" in msg
    assert str(tmp_path / "weights" / "synchformer_state_dict.pth") in msg and "SPATIALGEN_CACHE" in msg


def test_pretrained_path_loads_strictly(tmp_path) -> None:
    src = create_encoder("tiny", pretrained=False)
    path = tmp_path / "tiny.safetensors"
    save_file(src.state_dict(), str(path))
    dst = create_encoder("tiny", pretrained=path)
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value, rtol=0, atol=0)
    # a torch pickle in a training-script container with a DDP prefix also loads
    pth = tmp_path / "tiny.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, pth)
    create_encoder("tiny", pretrained=pth)
    wrong = tmp_path / "wrong.safetensors"
    save_file(create_encoder("tiny", pretrained=False, embed_dim=16).state_dict(), str(wrong))
    with pytest.raises(EncoderWeightsError, match=r"wrong shape .*check the encoder name/config"):
        create_encoder("tiny", pretrained=wrong)
    with pytest.raises(EncoderWeightsError, match="weight file not found"):
        create_encoder("tiny", pretrained=tmp_path / "absent.safetensors")


def test_timm_encoder_loads_timm_layout_file(tmp_path) -> None:
    """A Hub ``model.safetensors`` is in timm's own layout (no ``model.`` prefix)."""
    src = TimmImageEncoder("test_vit.r160_in1k", name="test_vit", fps=8.0, pretrained=False)
    path = tmp_path / "model.safetensors"
    save_file(src.model.state_dict(), str(path))
    dst = TimmImageEncoder("test_vit.r160_in1k", name="test_vit", fps=8.0).load_weights(path)
    frames = torch.rand(1, 2, 3, 160, 160)
    torch.testing.assert_close(dst(frames).global_features, src(frames).global_features, rtol=0, atol=0)


def test_pretrained_true_loads_the_resolved_hub_file(monkeypatch, tmp_path) -> None:
    """``pretrained=True`` resolves ``hf://<hf_hub_id>/model.safetensors`` and hands the file to timm."""
    import spatialgen.weights

    src = TimmImageEncoder("test_vit.r160_in1k", name="test_vit", fps=8.0)
    path = tmp_path / "model.safetensors"
    save_file(src.model.state_dict(), str(path))
    asked = []
    monkeypatch.setattr(spatialgen.weights, "resolve_weights", lambda spec, **kw: asked.append(spec) or path)
    dst = TimmImageEncoder("test_vit.r160_in1k", name="test_vit", fps=8.0, pretrained=True)
    assert asked == ["hf://timm/test_vit.r160_in1k/model.safetensors"]
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clip_vit_h14_384", "pe_spatial", "pe_spatial_base"])
def test_large_towers_match_timm_forward(name: str) -> None:
    """Real CPU forward of the big towers on one frame (slow): global = timm's output on the model crop."""
    import torch.nn.functional as F

    enc = create_encoder(name, pretrained=False)
    frames = torch.randint(0, 256, (1, 1, 3, 200, 300), dtype=torch.uint8)
    out = enc(frames, patch_tokens=True)
    mh, mw = enc.model_size
    with torch.no_grad():
        pre = enc.preprocess(frames)[0, :, :, :mh, :mw]  # H14: top-left 378 of the 384 squash, as open_clip
        want = enc.model(pre)
        if name == "clip_vit_h14_384":
            want = F.normalize(want, dim=-1)
            torch.testing.assert_close(out.global_features.norm(dim=-1), torch.ones(1, 1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.global_features[0], want, rtol=0, atol=1e-4)
    rows, cols = enc.patch_grid
    assert out.patch_tokens.shape == (1, 1, rows * cols, enc.patch_dim)
