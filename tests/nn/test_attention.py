"""MultiHeadAttention (SDPA) against a naive softmax(QKᵀ/√d)V written here, and its KV cache."""

import math

import pytest
import torch

from spatialgen.nn.attention import KVCache, MultiHeadAttention, causal_mask


def naive_attention(mha: MultiHeadAttention, x, context=None, causal=False):
    """softmax(Q Kᵀ / √d) V per head with the module's projection weights (float64, explicit loops)."""
    ctx = x if context is None else context
    B, N, _ = x.shape
    M = ctx.shape[1]
    H, Dh = mha.num_heads, mha.head_dim
    q = x @ mha.q_proj.weight.T + mha.q_proj.bias
    k = ctx @ mha.k_proj.weight.T + mha.k_proj.bias
    v = ctx @ mha.v_proj.weight.T + mha.v_proj.bias
    out = torch.zeros(B, N, H * Dh, dtype=x.dtype)
    for h in range(H):
        sl = slice(h * Dh, (h + 1) * Dh)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(Dh)
        if causal:
            allowed = torch.arange(M)[None, :] <= torch.arange(N)[:, None] + (M - N)
            scores = scores.masked_fill(~allowed, float("-inf"))
        out[..., sl] = scores.softmax(-1) @ v[..., sl]
    return out @ mha.out_proj.weight.T + mha.out_proj.bias


@pytest.fixture
def mha():
    return MultiHeadAttention(24, 3).double().eval()


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_naive(mha, causal):
    x = torch.randn(2, 7, 24, dtype=torch.float64)
    torch.testing.assert_close(
        mha(x, causal=causal), naive_attention(mha, x, causal=causal), rtol=0, atol=1e-12
    )


def test_cross_attention_matches_naive_and_cached_kv(mha):
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    ctx = torch.randn(2, 9, 24, dtype=torch.float64)
    expected = naive_attention(mha, x, ctx)
    torch.testing.assert_close(mha(x, ctx), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(mha(x, kv=mha.project_kv(ctx)), expected, rtol=0, atol=1e-12)


def test_causal_attention_does_not_see_the_future(mha):
    x = torch.randn(1, 6, 24, dtype=torch.float64)
    y = x.clone()
    y[:, 4:] += 1.0
    a, b = mha(x, causal=True), mha(y, causal=True)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-12)
    assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-3


@pytest.mark.parametrize("chunks", [[1] * 8, [3, 1, 4], [8]])
def test_kv_cache_incremental_equals_full_causal(mha, chunks):
    x = torch.randn(2, 8, 24, dtype=torch.float64)
    full = mha(x, causal=True)
    cache = KVCache(2, 3, 8, capacity=8, dtype=torch.float64)
    outs, start = [], 0
    for n in chunks:
        outs.append(mha(x[:, start : start + n], causal=True, cache=cache))
        start += n
    assert cache.length == 8
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=0, atol=1e-12)


def test_kv_cache_float32_tolerance():
    mha = MultiHeadAttention(64, 4).eval()
    x = torch.randn(3, 10, 64)
    cache = KVCache(3, 4, 16, capacity=10)
    steps = torch.cat([mha(x[:, i : i + 1], causal=True, cache=cache) for i in range(10)], 1)
    torch.testing.assert_close(steps, mha(x, causal=True), rtol=0, atol=1e-5)


def test_causal_mask_is_bottom_right_aligned():
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2)
    cache = KVCache(1, 2, 4, capacity=2)
    with pytest.raises(ValueError, match="capacity"):
        mha(torch.randn(1, 3, 8), causal=True, cache=cache)
    with pytest.raises(ValueError, match="KVCache"):
        mha(torch.randn(1, 1, 8), torch.randn(1, 2, 8), cache=KVCache(1, 2, 4, capacity=2))
