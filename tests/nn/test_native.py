"""Native few-row linear kernel (``spatialgen.nn.native``): exact products, row independence, fallbacks."""

import pytest
import torch

from spatialgen.nn import native
from spatialgen.nn.native import NativeLinear, native_available, native_unavailable_reason

needs_native = pytest.mark.skipif(
    not native_available(), reason=f"no native kernels: {native_unavailable_reason()}"
)


@needs_native
@pytest.mark.parametrize("n_out, k_in", [(64, 32), (37, 13), (16, 1), (1, 5), (3072, 1024)])
@pytest.mark.parametrize("bias", [True, False])
def test_products_equal_a_float64_reference(n_out, k_in, bias):
    g = torch.Generator().manual_seed(n_out * 131 + k_in)
    w = torch.randn(n_out, k_in, generator=g)
    b = torch.randn(n_out, generator=g) if bias else None
    layer = NativeLinear(w, b)
    for rows in (1, 2, 3, 4, 7, 8, 9, 17):  # the kernel takes rows 8 at a time
        x = torch.randn(rows, k_in, generator=g)
        ref = x.double() @ w.double().T + (0 if b is None else b.double())
        out = layer(x)
        assert out.shape == (rows, n_out) and out.dtype == torch.float32
        scale = (x.double().abs() @ w.double().abs().T).max()
        assert (out.double() - ref).abs().max() <= 1e-6 * scale, (rows, n_out, k_in)


@needs_native
def test_a_row_does_not_depend_on_the_other_rows_or_their_count():
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(100, 70, generator=g), torch.randn(100, generator=g)
    layer = NativeLinear(w, b)
    x = torch.randn(19, 70, generator=g)
    alone = torch.cat([layer(x[i : i + 1]) for i in range(19)])
    for rows in (2, 3, 5, 8, 19):
        assert torch.equal(layer(x[:rows]), alone[:rows]), rows
    assert torch.equal(layer(x), layer(x))  # and repeatable


@needs_native
def test_strided_rows_and_bad_inputs():
    w = torch.randn(48, 40)
    layer = NativeLinear(w, None)
    big = torch.randn(3, 100)
    x = big[:, 10:50]  # rows 100 floats apart
    assert torch.equal(layer(x), layer(x.contiguous()))
    assert torch.equal(layer(big[:, 10:50:1].T.contiguous().T), layer(x.contiguous()))  # column-major input
    for bad in (torch.randn(2, 41), torch.randn(2, 40, dtype=torch.float64), torch.randn(40)):
        with pytest.raises(ValueError, match=r"expected a float32 CPU tensor \[R, 40\]"):
            layer(bad)


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """A clean load of the kernel library (own cache folder), restored afterwards."""
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.delenv(native.DISABLE_ENV, raising=False)
    native._library.cache_clear()
    yield tmp_path / "kernels"
    native._library.cache_clear()


def test_disabled_by_environment(monkeypatch, fresh_library):
    monkeypatch.setenv(native.DISABLE_ENV, "0")
    assert not native_available()
    assert "SPATIALGEN_NATIVE=0" in native_unavailable_reason()
    with pytest.raises(RuntimeError, match="native kernels unavailable: disabled"):
        NativeLinear(torch.randn(4, 4), None)


def test_a_failing_compiler_is_reported_not_raised(monkeypatch, fresh_library, tmp_path):
    fake = tmp_path / "badcc"
    fake.write_text("#!/bin/sh\necho 'badcc: cannot compile' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    assert not native_available()
    assert "badcc" in native_unavailable_reason() and "failed" in native_unavailable_reason()
    assert not list(fresh_library.glob("*.so"))  # nothing half-written is left to be loaded later


@needs_native
def test_compiled_once_then_loaded_from_the_cache(fresh_library):
    assert native_available()
    (built,) = fresh_library.glob("linear-*.so")
    stamp = built.stat().st_mtime_ns
    native._library.cache_clear()
    assert native_available()
    assert [p.stat().st_mtime_ns for p in fresh_library.glob("linear-*.so")] == [stamp]


def reference_attention(q, keys, values, length):
    """softmax(q K^T / sqrt(dim)) V in float64, written from the definition."""
    q, k, v = q.double(), keys[:, :, :length].double(), values[:, :, :length].double()
    scores = torch.einsum("rhd,rhpd->rhp", q, k) / q.shape[-1] ** 0.5
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("rhp,rhpd->rhd", weights, v)


@needs_native
@pytest.mark.parametrize("rows, heads, dim", [(1, 1, 16), (2, 4, 64), (3, 16, 64), (2, 2, 256)])
def test_attend_one_equals_the_attention_formula(rows, heads, dim):
    from spatialgen.nn.native import attend_one

    g = torch.Generator().manual_seed(rows * 7 + heads)
    capacity = 37
    keys = torch.randn(rows, heads, capacity, dim, generator=g)
    values = torch.randn(rows, heads, capacity, dim, generator=g)
    qkv = torch.randn(rows, 3, heads, dim, generator=g) * 3  # peaked softmax too
    q = qkv.unbind(1)[0]  # heads dim apart, rows 3 * heads * dim apart: the fused product's view
    for length in (1, 2, 17, capacity):
        out = attend_one(q, keys, values, length)
        torch.testing.assert_close(
            out.double(), reference_attention(q, keys, values, length), rtol=0, atol=2e-6
        )
    # only the first `length` positions are read: garbage after them changes nothing
    spoiled = keys.clone()
    spoiled[:, :, 17:] = float("nan")
    assert torch.equal(attend_one(q, spoiled, values, 17), attend_one(q, keys, values, 17))


@needs_native
def test_attend_one_rejects_what_it_cannot_read():
    from spatialgen.nn.native import attend_one

    keys = torch.randn(2, 4, 10, 64)
    q = torch.randn(2, 4, 64)
    for bad_q, bad_k, length in (
        (q, keys, 0),
        (q, keys, 11),
        (q.double(), keys, 3),
        (torch.randn(2, 64, 4).transpose(1, 2), keys, 3),  # heads not dim apart
        (q, keys.transpose(2, 3).contiguous().transpose(2, 3), 3),  # not contiguous
        (torch.randn(2, 4, 24), torch.randn(2, 4, 10, 24), 3),  # dim not a multiple of 16
    ):
        with pytest.raises(ValueError, match="attend_one: expected"):
            attend_one(bad_q, bad_k, bad_k if bad_k.is_contiguous() else keys, length)
