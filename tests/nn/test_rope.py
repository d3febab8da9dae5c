"""RoPE: equals complex multiplication of interleaved pairs; scores depend on relative position only."""

import numpy as np
import pytest
import torch

from spatialgen.nn.rope import apply_rope, rope_angles, rope_frequencies


def test_matches_complex_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 8))
    pos = np.array([0.0, 1.0, 2.5, 7.0, 100.25])
    freqs = 10000.0 ** (-np.arange(0, 8, 2) / 8)
    z = x[..., 0::2] + 1j * x[..., 1::2]
    ref = z * np.exp(1j * pos[:, None] * freqs)
    expected = np.stack([ref.real, ref.imag], axis=-1).reshape(x.shape)
    out = apply_rope(torch.from_numpy(x), rope_angles(torch.from_numpy(pos), 8))
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_scores_depend_on_relative_position_only():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 16, generator=gen, dtype=torch.float64)

    def score(pq, pk):
        aq, ak = rope_angles(torch.tensor([pq]), 16), rope_angles(torch.tensor([pk]), 16)
        return float((apply_rope(q[None], aq) * apply_rope(k[None], ak)).sum())

    assert score(3.0, 1.0) == pytest.approx(score(12.5, 10.5), abs=1e-12)
    assert score(3.0, 1.0) != pytest.approx(score(3.0, 2.0), abs=1e-3)


def test_float32_and_errors():
    x = torch.randn(4, 6)
    out = apply_rope(x, rope_angles(torch.arange(4.0), 6))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps the norm
    torch.testing.assert_close(rope_frequencies(4), torch.tensor([1.0, 0.01], dtype=torch.float64))
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(5)
    with pytest.raises(ValueError, match="half"):
        apply_rope(x, rope_angles(torch.arange(4.0), 4))
