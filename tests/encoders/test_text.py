"""CLIP text tower (MMAudio's text features): equals a reference written from the formulas, loads a full
open_clip CLIP checkpoint strictly, tokenises as open_clip, registry and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialgen.encoders import EncoderWeightsError
from spatialgen.encoders.text import ClipTextEncoder, create_text_encoder, list_text_encoders
from spatialgen.registry import UnknownNameError


def _perturbed_tiny(seed: int = 0) -> ClipTextEncoder:
    enc = create_text_encoder("clip_text_tiny", pretrained=False, context_length=12).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in enc.named_parameters():  # LayerNorm weights/biases and attention biases included
            noise = 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_(
                (1 + noise) if name.endswith(("ln_1.weight", "ln_2.weight", "ln_final.weight")) else noise
            )
    return enc


def _ln(x, w, b):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b


def _reference(sd: dict[str, np.ndarray], tokens: np.ndarray, heads: int) -> np.ndarray:
    """Token + positional embedding, pre-LN causal transformer with QuickGELU MLPs, ln_final, per-token
    L2 normalisation (MMAudio's patched ``encode_text``), one prompt at a time."""
    out = []
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    for row in tokens:
        x = sd["token_embedding.weight"][row] + sd["positional_embedding"]
        n, d = x.shape
        causal = np.triu(np.full((n, n), -np.inf), 1)
        for i in range(layers):
            p = f"transformer.resblocks.{i}."
            h = _ln(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
            q, k, v = np.split(h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"], 3, axis=-1)
            q, k, v = (t.reshape(n, heads, -1).transpose(1, 0, 2) for t in (q, k, v))
            s = q @ k.transpose(0, 2, 1) / np.sqrt(d // heads) + causal
            w = np.exp(s - s.max(-1, keepdims=True))
            a = ((w / w.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, d)
            x = x + a @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
            h = _ln(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
            h = h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
            h = h / (1 + np.exp(-1.702 * h))  # QuickGELU
            x = x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
        x = _ln(x, sd["ln_final.weight"], sd["ln_final.bias"])
        out.append(x / np.linalg.norm(x, axis=-1, keepdims=True))
    return np.stack(out)


def test_features_equal_reference_formula() -> None:
    enc = _perturbed_tiny()
    prompts = ["a dog barks on the left", ""]
    tokens = enc.tokenize(prompts)
    with torch.no_grad():
        got = enc(prompts).numpy()
    sd = {k: v.numpy() for k, v in enc.tower.state_dict().items()}
    assert got.shape == (2, 12, 16)
    np.testing.assert_allclose(got, _reference(sd, tokens.numpy(), heads=2), rtol=1e-9, atol=1e-10)
    assert np.abs(got[0] - got[1]).max() > 1e-3  # the prompt matters
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-12)


def test_tokenizer_is_open_clips_with_zero_padding() -> None:
    enc = create_text_encoder("clip_text_tiny", pretrained=False)
    t = enc.tokenize("")
    assert t.shape == (1, 77) and t[0, :2].tolist() == [49406, 49407] and not t[0, 2:].any()
    long = enc.tokenize(" ".join(["word"] * 200))
    assert long.shape == (1, 77) and long[0, -1] == 49407  # truncated, end token kept
    with pytest.raises(ValueError, match="prompts"):
        enc.tokenize([])


def test_loads_full_clip_checkpoint_strictly(tmp_path) -> None:
    src = _perturbed_tiny(seed=1)
    full = {k: v.float() for k, v in src.tower.state_dict().items()}
    full |= {
        "visual.proj": torch.zeros(4, 4),
        "text_projection": torch.zeros(16, 8),
        "logit_scale": torch.ones(()),
    }
    torch.save(full, tmp_path / "open_clip_pytorch_model.bin")
    dst = create_text_encoder(
        "clip_text_tiny", pretrained=tmp_path / "open_clip_pytorch_model.bin", context_length=12
    )
    for k, v in src.tower.state_dict().items():
        torch.testing.assert_close(dst.tower.state_dict()[k], v.float())
    del full["ln_final.bias"]
    torch.save(full, tmp_path / "broken.bin")
    with pytest.raises(
        EncoderWeightsError, match=r"broken.bin: weights do not match.*missing 1: ln_final.bias"
    ):
        dst.load_weights(tmp_path / "broken.bin")


def test_registry_and_published_size() -> None:
    assert list_text_encoders() == ["clip_text_h14_384", "clip_text_tiny"]
    with torch.device("meta"):
        enc = create_text_encoder("clip_text_h14_384", pretrained=False)
    assert (enc.width, enc.context_length, len(enc.tower.transformer.resblocks)) == (1024, 77, 24)
    assert enc.frozen and not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert sum(p.numel() for p in enc.parameters()) == 49408 * 1024 + 77 * 1024 + 24 * 12596224 + 2048
    with pytest.raises(UnknownNameError, match="clip_text_tiny"):
        create_text_encoder("clip_text_tny")
