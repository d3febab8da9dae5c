"""Overlap-add multichannel convolution against scipy's direct/FFT convolution, for every length regime."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from spatialgen.spatial import convolve, foa
from spatialgen.spatial.binaural import foa_decoder_filters, render_foa, render_source
from spatialgen.spatial.hrir import load_hrir

RNG = np.random.default_rng(19)


def reference(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """y[b, e] = Σ_c h[b|0, e, c] * x[b, c], first T samples, with scipy (independent of torch)."""
    b, c, t = x.shape
    hb = np.broadcast_to(h, (b, *h.shape[1:]))
    out = np.zeros((b, h.shape[1], t))
    for i in range(b):
        for e in range(h.shape[1]):
            for k in range(c):
                out[i, e] += scipy.signal.fftconvolve(x[i, k], hb[i, e, k])[:t]
    return out


@pytest.mark.parametrize("taps", [1, 5, 100])
def test_ola_equals_scipy_for_every_length_regime(taps: int) -> None:
    n_fft = convolve.ola_fft_size(taps)
    hop = n_fft - taps + 1
    assert taps - 1 <= hop  # one block's tail spills into the next block only
    h = RNG.standard_normal((1, 2, 4, taps))
    for t in (1, taps - 1 or 1, hop - 1, hop, hop + 1, 2 * hop + 7, 5 * hop, 7 * hop + 3):
        x = RNG.standard_normal((2, 4, t))
        want = reference(x, h)
        for mode in ("ola", "full", "auto"):
            got = convolve.mix_convolve(torch.from_numpy(x), torch.from_numpy(h), mode).numpy()
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-11, err_msg=f"T={t} mode={mode}")


def test_ola_group_boundaries_carry_the_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of 1, 2 and 3 blocks: every tail crossing a group boundary is added exactly once."""
    taps = 33
    hop = convolve.ola_fft_size(taps) - taps + 1
    h = RNG.standard_normal((3, 2, 1, taps))  # per-item filters (render_source's layout)
    x = RNG.standard_normal((3, 1, 10 * hop + 11))
    want = reference(x, h)
    for blocks_per_group in (1, 2, 3):
        monkeypatch.setattr(convolve, "_CHUNK_SAMPLES", blocks_per_group * hop)
        got = convolve.mix_convolve(torch.from_numpy(x), torch.from_numpy(h), "ola").numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_float32_ola_is_as_accurate_as_the_full_fft() -> None:
    taps = 512
    h = RNG.standard_normal((1, 2, 4, taps)) / taps**0.5
    x = RNG.standard_normal((1, 4, 3 * convolve.ola_fft_size(taps) + 17))
    want = reference(x, h)
    ola = convolve.mix_convolve(torch.from_numpy(x).float(), torch.from_numpy(h).float(), "ola").double()
    full = convolve.mix_convolve(torch.from_numpy(x).float(), torch.from_numpy(h).float(), "full").double()
    err_ola, err_full = (float(np.abs(y.numpy() - want).max()) for y in (ola, full))
    assert err_ola < 2e-5 and err_ola < 2 * err_full + 1e-6  # measured ~3e-6 vs ~4e-6


def test_ola_fft_size_minimises_work_per_sample() -> None:
    assert convolve.ola_fft_size(512) == 4096  # 4096·13/3585 < 8192·14/7681 < 2048·12/1537
    assert convolve.ola_fft_size(1) == 64
    for taps in (2, 100, 257, 1000):
        n = convolve.ola_fft_size(taps)
        assert n & (n - 1) == 0 and n >= 2 * taps - 1


def test_auto_mode_keeps_gradients_on_the_full_path() -> None:
    taps = 9
    hop = convolve.ola_fft_size(taps) - taps + 1
    x = torch.randn(1, 4, 5 * hop, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 2, 4, taps, dtype=torch.float64)
    y = convolve.mix_convolve(x, h)
    y.square().sum().backward()
    # d/dx of Σ y² is the correlation of 2y with h, summed over ears: checked against scipy
    g = np.zeros((4, x.shape[-1]))
    for e in range(2):
        for c in range(4):
            full = scipy.signal.correlate(2 * y[0, e].detach().numpy(), h[0, e, c].numpy(), mode="full")
            g[c] += full[taps - 1 : taps - 1 + x.shape[-1]]
    np.testing.assert_allclose(x.grad[0].numpy(), g, rtol=0, atol=1e-9)
    with torch.no_grad():
        torch.testing.assert_close(convolve.mix_convolve(x, h), y, rtol=0, atol=1e-12)


def test_bad_mode_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^mix_convolve: mode must be 'auto', 'full' or 'ola', got 'fast'$"):
        convolve.mix_convolve(torch.zeros(1, 1, 4), torch.zeros(1, 1, 1, 2), "fast")  # type: ignore[arg-type]


def test_long_render_foa_and_source_equal_scipy() -> None:
    """Both renderers on a signal long enough for several OLA groups, against scipy and the decoder."""
    sr = 16000
    x = torch.from_numpy(RNG.standard_normal((4, 3 * (1 << 16) + 101)))
    filters = foa_decoder_filters("spherical-head", sr).numpy()[None]
    np.testing.assert_allclose(render_foa(x, sr).numpy(), reference(x.numpy()[None], filters)[0], atol=1e-10)
    s = x[0]
    irs = (
        load_hrir("spherical-head", sr)
        .at(torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))
        .numpy()
    )  # [2, taps]
    want = reference(s.numpy()[None, None], irs[None, :, None])[0]
    np.testing.assert_allclose(render_source(s, 0.7, 0.1, sr).numpy(), want, rtol=0, atol=1e-10)


def test_results_do_not_depend_on_the_thread_count() -> None:
    """Render, both rotation paths and mono rendering are bit-identical on 1 and 2 torch threads, whether
    the loops take torch's setting (``threads=None``) or their own; the setting is restored after."""
    x = torch.from_numpy(RNG.standard_normal((2, 4, 40_000))).float()
    yaw = torch.linspace(-3, 3, 40_000).expand(2, -1)
    before = torch.get_num_threads()
    runs = []
    try:
        for global_threads, threads in ((1, 1), (2, None), (1, 2), (2, 1)):
            torch.set_num_threads(global_threads)
            runs.append(
                (
                    render_foa(x, 16000, threads=threads),
                    render_source(x[:, 0], 0.5, 0.1, 16000, threads=threads),
                    foa.rotate(x, 0.3, 0.1, -0.2, threads=threads),
                    foa.rotate(x, yaw, 0.2 * yaw, -0.1, threads=threads),
                )
            )
            assert torch.get_num_threads() == global_threads
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        for one, other in zip(runs[0], run, strict=True):
            assert torch.equal(one, other)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_threads_is_one_line_before_any_work(bad: object) -> None:
    x = torch.zeros(4, 100)
    for call in (
        lambda: render_foa(x, 16000, threads=bad),
        lambda: render_source(x[0], 0.0, 0.0, 16000, threads=bad),
        lambda: foa.rotate(x, 0.1, threads=bad),
        lambda: convolve.mix_convolve(x[None], torch.zeros(1, 2, 4, 3), threads=bad),
    ):
        with pytest.raises(ValueError, match=r"^threads: expected a positive integer or None"):
            call()
