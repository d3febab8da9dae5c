"""Synchformer visual branch: segmentation, token layout, and the official-checkpoint converter.

The converter test builds a random state dict in the released checkpoint's key layout
(``vfeat_extractor.*`` MotionFormer keys plus unrelated branches), loads it through
``create_encoder(..., pretrained=path)`` and compares against a reference forward written here from
the architecture description: numpy for the divided space-time blocks, and for the spatial
aggregation the very torch layer the official code uses (``nn.TransformerEncoderLayer``, pre-LN).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spatialgen.encoders import create_encoder

# tiny config of the same code: 32x32 frames, 16x16 patches (2x2 grid), 4-frame segments, stride 2
CFG = dict(
    img_size=32, patch_size=16, tubelet=2, segment_frames=4, segment_stride=2, dim=16, depth=2, heads=4
)


def official_state_dict(cfg: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    d, p, tub = cfg["dim"], cfg["patch_size"], cfg["tubelet"]
    n, f, hid = (cfg["img_size"] // p) ** 2, cfg["segment_frames"] // tub, 4 * cfg["dim"]

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.3

    sd = {
        "cls_token": r(1, 1, d),
        "pos_embed": r(1, 1 + n, d),
        "temp_embed": r(1, f, d),
        "patch_embed.proj.weight": r(d, 3, p, p),  # 2-D embedding: unused by the video model
        "patch_embed.proj.bias": r(d),
        "patch_embed_3d.proj.weight": r(d, 3, tub, p, p),
        "patch_embed_3d.proj.bias": r(d),
        "norm.weight": 1 + r(d),
        "norm.bias": r(d),
        "spatial_attn_agg.cls_token": r(1, 1, d),
        "spatial_attn_agg.self_attn.in_proj_weight": r(3 * d, d),
        "spatial_attn_agg.self_attn.in_proj_bias": r(3 * d),
        "spatial_attn_agg.self_attn.out_proj.weight": r(d, d),
        "spatial_attn_agg.self_attn.out_proj.bias": r(d),
        "spatial_attn_agg.linear1.weight": r(hid, d),
        "spatial_attn_agg.linear1.bias": r(hid),
        "spatial_attn_agg.linear2.weight": r(d, hid),
        "spatial_attn_agg.linear2.bias": r(d),
    }
    for norm in ("norm1", "norm2"):
        sd[f"spatial_attn_agg.{norm}.weight"], sd[f"spatial_attn_agg.{norm}.bias"] = 1 + r(d), r(d)
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2", "norm3"):
            sd[b + norm + ".weight"], sd[b + norm + ".bias"] = 1 + r(d), r(d)
        for att in ("attn", "timeattn"):
            sd[b + att + ".qkv.weight"], sd[b + att + ".qkv.bias"] = r(3 * d, d), r(3 * d)
            sd[b + att + ".proj.weight"], sd[b + att + ".proj.bias"] = r(d, d), r(d)
        sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = r(hid, d), r(hid)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = r(d, hid), r(d)
    full = {f"vfeat_extractor.{k}": v for k, v in sd.items()}
    full["afeat_extractor.patch_embed.proj.weight"] = r(d, 1, p, p)  # other Synchformer parts: ignored
    full["transformer.off_head.weight"] = r(21, d)
    return full


# ------------------------------------------------------------------------------ numpy reference
def _ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    from math import erf

    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _divided_attention(x, w, prefix, heads, f, n, over_time):
    """x [1 + f*n, D]; token 1 + t*n + j is slot t, patch j."""
    d = x.shape[1]
    dh = d // heads
    qkv = x @ w[prefix + "qkv.weight"].T + w[prefix + "qkv.bias"]
    q, k, v = qkv[:, :d] * dh**-0.5, qkv[:, d : 2 * d], qkv[:, 2 * d :]
    out = np.zeros_like(x)
    for h in range(heads):
        s = slice(h * dh, (h + 1) * dh)
        out[0, s] = _softmax(q[0, s] @ k[:, s].T) @ v[:, s]  # CLS attends to every token
        for t in range(f):
            for j in range(n):
                i = 1 + t * n + j
                group = (
                    [1 + tt * n + j for tt in range(f)] if over_time else [1 + t * n + jj for jj in range(n)]
                )
                keys = [0, *group]  # CLS key/value shared with every group
                out[i, s] = _softmax(q[i, s] @ k[keys, s].T) @ v[keys, s]
    return out @ w[prefix + "proj.weight"].T + w[prefix + "proj.bias"]


def reference_forward(sd: dict, segment: np.ndarray, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """One segment [3, T, H, W] -> (slot tokens [F, D], normed patch tokens [F, N, D])."""
    w = {k[len("vfeat_extractor.") :]: v.numpy() for k, v in sd.items() if k.startswith("vfeat_extractor.")}
    p, tub, d, heads = cfg["patch_size"], cfg["tubelet"], cfg["dim"], cfg["heads"]
    g, f = cfg["img_size"] // p, cfg["segment_frames"] // tub
    n = g * g
    kernel = w["patch_embed_3d.proj.weight"]
    tokens = []
    for t in range(f):  # tubelet embedding as an explicit sum over each 2x16x16 block, order (t, h, w)
        for r in range(g):
            for c in range(g):
                block = segment[:, t * tub : (t + 1) * tub, r * p : (r + 1) * p, c * p : (c + 1) * p]
                tokens.append(np.einsum("ctyx,octyx->o", block, kernel) + w["patch_embed_3d.proj.bias"])
    x = np.stack(tokens)
    x = x + np.concatenate([w["pos_embed"][0, 1:] + w["temp_embed"][0, t] for t in range(f)])
    x = np.concatenate([w["cls_token"][0] + w["pos_embed"][0, :1], x])
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        x = x + _divided_attention(
            _ln(x, w[b + "norm3.weight"], w[b + "norm3.bias"]), w, b + "timeattn.", heads, f, n, True
        )
        x = x + _divided_attention(
            _ln(x, w[b + "norm1.weight"], w[b + "norm1.bias"]), w, b + "attn.", heads, f, n, False
        )
        hdn = _gelu(
            _ln(x, w[b + "norm2.weight"], w[b + "norm2.bias"]) @ w[b + "mlp.fc1.weight"].T
            + w[b + "mlp.fc1.bias"]
        )
        x = x + hdn @ w[b + "mlp.fc2.weight"].T + w[b + "mlp.fc2.bias"]
    patches = _ln(x[1:], w["norm.weight"], w["norm.bias"]).reshape(f, n, d)
    # spatial aggregation exactly as the official code builds it
    layer = nn.TransformerEncoderLayer(
        d,
        heads,
        dim_feedforward=4 * d,
        dropout=0.0,
        activation=nn.GELU(),
        batch_first=True,
        norm_first=True,
        layer_norm_eps=1e-6,
        dtype=torch.float64,
    ).eval()
    agg = {
        k[len("vfeat_extractor.spatial_attn_agg.") :]: v for k, v in sd.items() if "spatial_attn_agg." in k
    }
    cls = agg.pop("cls_token")
    layer.load_state_dict(agg, strict=True)
    seq = torch.cat([cls.expand(f, 1, d), torch.from_numpy(patches)], dim=1)
    with torch.no_grad():
        pooled = layer(seq)[:, 0].numpy()
    return pooled, patches


# ----------------------------------------------------------------------------------------- tests
def test_converted_official_checkpoint_matches_reference(tmp_path) -> None:
    sd = official_state_dict(CFG, torch.Generator().manual_seed(1))
    path = tmp_path / "synchformer_state_dict.pth"
    torch.save(sd, path)
    create_encoder("synchformer", pretrained=path, **CFG)  # the public path: converted + strict
    # load after .double() so the float64 random weights are not rounded through float32
    enc = create_encoder("synchformer", pretrained=False, **CFG).double().load_weights(path)
    frames = torch.rand(1, 6, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = enc(frames, patch_tokens=True)
    assert out.global_features.shape == (1, 2 * 2, 16) and out.patch_tokens.shape == (1, 4, 4, 16)
    x = enc.preprocess(frames)[0].numpy()  # [T, 3, H, W], already 32x32 -> only normalised
    for s in range(2):  # segments start at frames 0 and 2
        seg = x[2 * s : 2 * s + 4].transpose(1, 0, 2, 3)
        pooled, patches = reference_forward(sd, seg, CFG)
        np.testing.assert_allclose(
            out.global_features[0, 2 * s : 2 * s + 2].numpy(), pooled, rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            out.patch_tokens[0, 2 * s : 2 * s + 2].numpy(), patches, rtol=0, atol=1e-10
        )


def test_segmentation_chunking_and_token_layout() -> None:
    enc = create_encoder("synchformer", pretrained=False, **CFG).double()
    frames = torch.rand(2, 11, 3, 40, 48, dtype=torch.float64)  # S = (11 - 4) // 2 + 1 = 4 segments
    whole = enc(frames)
    assert whole.global_features.shape == (2, 4 * 2, 16) and whole.fps == 25.0 and whole.patch_tokens is None
    enc.chunk_size = 1  # one segment at a time: overlapping frames are re-read, result unchanged
    torch.testing.assert_close(enc(frames).global_features, whole.global_features, rtol=0, atol=1e-12)
    # segment s only sees frames [2s, 2s + 4): frame 9 only feeds the last segment, frame 10 none
    for frame, changed_tokens in ((9, slice(6, 8)), (10, slice(0, 0))):
        changed = frames.clone()
        changed[:, frame] = 0.0
        diff = (enc(changed).global_features - whole.global_features).abs().amax(dim=(0, 2))
        mask = torch.zeros(8, dtype=torch.bool)
        mask[changed_tokens] = True
        assert torch.all(diff[~mask] < 1e-12) and torch.all(diff[mask] > 1e-6)
    times = enc.token_times(11)  # frames 0..10 at 25 fps
    torch.testing.assert_close(
        times[:3], torch.tensor([0.5, 2.5, 2.5], dtype=torch.float64) / 25, rtol=0, atol=1e-15
    )
    # released layout: 16-frame segments with stride 8 -> 8 tokens each, time jumps back between segments
    full = create_encoder("synchformer", pretrained=False, device="meta")
    assert full.num_units(200) == 24 and full.unit_span(0, 24) == (0, 200)
    t = full.token_times(200)
    assert t.shape == (192,) and t[8] < t[7]


def test_too_few_frames_is_a_clear_error() -> None:
    enc = create_encoder("synchformer", pretrained=False, **CFG)
    with pytest.raises(ValueError, match=r"3 frames are too few; it needs at least 4 frames at 25 fps"):
        enc(torch.rand(1, 3, 3, 32, 32))
