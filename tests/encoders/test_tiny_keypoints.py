"""TinyEncoder spatial soft-argmax keypoints: layout (x right, y down, row-major), reference equality, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spatialgen.encoders import create_encoder

ROWS, COLS = 4, 6  # input_size (32, 48) -> non-square grid, so rows and columns cannot be confused
EMBED = 8
# the patch-centre grid is built in float32 (linspace), so keypoints are exact to float32 rounding only
KP_TOL = 1e-7


class FixedMap(nn.Module):
    """Stands in for ``enc.features``: returns the same ``[D, rows, cols]`` map for every frame."""

    def __init__(self, fmap: torch.Tensor) -> None:
        super().__init__()
        self.fmap = fmap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fmap.to(x.dtype).expand(x.shape[0], *self.fmap.shape)


def _reference_global(enc, fmap: np.ndarray, keypoints: bool) -> np.ndarray:
    """numpy: head(cat(mean_patches(LayerNorm(tokens)), per-channel soft-argmax (x, y))), float64."""
    d = fmap.shape[0]
    tokens = fmap.reshape(d, -1).T  # [N, D] row-major patches
    mu = tokens.mean(-1, keepdims=True)
    var = tokens.var(-1, keepdims=True)
    ln = (tokens - mu) / np.sqrt(var + enc.norm.eps) * enc.norm.weight.detach().double().numpy()
    ln = ln + enc.norm.bias.detach().double().numpy()
    pooled = ln.mean(0)
    if keypoints:
        flat = fmap.reshape(d, -1)
        p = np.exp(flat - flat.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        r, c = np.divmod(np.arange(ROWS * COLS), COLS)
        px, py = 2 * c / (COLS - 1) - 1, 2 * r / (ROWS - 1) - 1  # patch centres, x right, y down
        kp = np.stack((p @ px, p @ py), -1)  # [D, 2]
        pooled = np.concatenate((pooled, kp.reshape(-1)))
    w = enc.head.weight.detach().double().numpy()
    return w @ pooled + enc.head.bias.detach().double().numpy()


def _encoder(keypoints: bool = True):
    enc = create_encoder("tiny", pretrained=False, embed_dim=EMBED, input_size=(32, 48), keypoints=keypoints)
    with torch.no_grad():  # non-trivial LayerNorm affine so the reference checks it
        enc.norm.weight.uniform_(0.5, 1.5)
        enc.norm.bias.normal_(0, 0.3)
    return enc.double().eval()


def test_one_hot_maps_give_patch_centre_keypoints() -> None:
    """Channel d peaks at patch (r_d, c_d): its keypoint is ((2c/(cols-1)) - 1, (2r/(rows-1)) - 1)."""
    enc = _encoder()
    assert enc.patch_grid == (ROWS, COLS) and enc.head.in_features == 3 * EMBED
    g = torch.Generator().manual_seed(1)
    hot = [(0, 0), (0, 5), (3, 0), (1, 4), (2, 1), (3, 5), (1, 2), (2, 3)]
    fmap = 0.1 * torch.randn(EMBED, ROWS, COLS, generator=g, dtype=torch.float64)
    for d, (r, c) in enumerate(hot):
        fmap[d, r, c] = 60.0 + d  # softmax mass off the peak ~ N * exp(-60): nil
    enc.features = FixedMap(fmap)
    frames = torch.rand(2, 3, 3, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        out = enc(frames, patch_tokens=True)
    ref = _reference_global(enc, fmap.numpy(), keypoints=True)
    assert out.global_features.shape == (2, 3, EMBED)
    np.testing.assert_allclose(out.global_features.numpy(), np.broadcast_to(ref, (2, 3, EMBED)), atol=KP_TOL)
    # the keypoints themselves: top-left (-1, -1), top-right (1, -1), bottom-left (-1, 1), ...
    where = fmap.reshape(EMBED, -1).softmax(-1) @ enc.patch_xy
    expect = torch.tensor(
        [[2 * c / (COLS - 1) - 1, 2 * r / (ROWS - 1) - 1] for r, c in hot], dtype=torch.float64
    )
    torch.testing.assert_close(where, expect, rtol=0, atol=KP_TOL)
    assert where[1, 0] == pytest.approx(1.0) and where[2, 1] == pytest.approx(1.0)  # right column, bottom row
    # patch tokens are the LayerNormed map, row-major: token r*cols + c is patch (r, c)
    tok = out.patch_tokens[0, 0]
    assert tok.shape == (ROWS * COLS, EMBED)
    with torch.no_grad():
        torch.testing.assert_close(tok[1 * COLS + 4], enc.norm(fmap[:, 1, 4]), rtol=0, atol=1e-12)


def test_keypoints_track_a_moving_peak() -> None:
    """Moving every channel's peak one column right raises x by 2/(cols-1) and leaves y alone."""
    enc = _encoder()
    frames = torch.rand(1, 1, 3, 32, 48, dtype=torch.float64)
    feats = []
    for c in (1, 2):
        fmap = torch.zeros(EMBED, ROWS, COLS, dtype=torch.float64)
        fmap[:, 2, c] = 50.0
        enc.features = FixedMap(fmap)
        feats.append(_reference_global(enc, fmap.numpy(), keypoints=True))
        with torch.no_grad():
            got = enc(frames).global_features[0, 0].numpy()
        np.testing.assert_allclose(got, feats[-1], atol=KP_TOL)
    # the difference is the head's x-keypoint columns times the shift (mean tokens identical)
    w = enc.head.weight.detach().double().numpy()
    shift = np.zeros(3 * EMBED)
    shift[EMBED::2] = 2 / (COLS - 1)
    np.testing.assert_allclose(feats[1] - feats[0], w @ shift, atol=1e-12)


def test_without_keypoints_head_sees_mean_tokens_only() -> None:
    enc = _encoder(keypoints=False)
    assert enc.head.in_features == EMBED and not enc.keypoints
    fmap = torch.randn(EMBED, ROWS, COLS, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    enc.features = FixedMap(fmap)
    with torch.no_grad():
        out = enc(torch.rand(1, 2, 3, 32, 48, dtype=torch.float64)).global_features
    ref = _reference_global(enc, fmap.numpy(), keypoints=False)
    np.testing.assert_allclose(out[0].numpy(), np.stack([ref, ref]), atol=1e-12)


def test_patch_xy_is_not_saved_and_default_is_keypoints() -> None:
    enc = create_encoder("tiny", pretrained=False)
    assert enc.keypoints and enc.head.in_features == 3 * enc.embed_dim
    assert "patch_xy" not in enc.state_dict()  # a derived constant, not a weight


def test_gradients_reach_every_parameter_and_through_keypoints() -> None:
    enc = create_encoder("tiny", pretrained=False, embed_dim=EMBED, input_size=(32, 48))
    frames = torch.rand(2, 2, 3, 32, 48)
    enc(frames).global_features.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    # with the head blind to the mean tokens, the convs still learn: through the keypoints alone
    enc.zero_grad()
    with torch.no_grad():
        enc.head.weight[:, :EMBED] = 0
    enc(frames).global_features.square().mean().backward()
    assert enc.norm.weight.grad.abs().sum() == 0  # LayerNorm only feeds the mean part
    assert all(p.grad.abs().sum() > 0 for p in enc.features.parameters())
