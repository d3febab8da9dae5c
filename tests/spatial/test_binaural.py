"""FOA/mono -> binaural rendering and the ILD/ITD/IPD cue helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial.binaural import CUBE_LAYOUT, foa_decoder_filters, render_foa, render_source
from spatialgen.spatial.cues import ild, ipd, itd
from spatialgen.spatial.hrir import SphericalHead, load_hrir

SR = 16000
DEG = math.pi / 180
METHODS = ["magls", "max_re"]


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.randn(SR // 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))


def plane_wave(s: torch.Tensor, az_deg: float, el_deg: float = 0.0) -> torch.Tensor:
    """AmbiX SN3D first-order encoding [s, s·uy, s·uz, s·ux], written from the formula."""
    az, el = az_deg * DEG, el_deg * DEG
    ux, uy, uz = math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)
    return torch.stack([s, s * uy, s * uz, s * ux], dim=-2)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("az_deg", [60.0, 90.0])
def test_foa_left_source_is_louder_and_earlier_left(noise, method: str, az_deg: float) -> None:
    left = render_foa(plane_wave(noise, az_deg), SR, method=method)
    right = render_foa(plane_wave(noise, -az_deg), SR, method=method)
    ild_l, itd_l = ild(left, SR).item(), itd(left, SR).item()
    assert ild_l > 6.0  # measured 8.5–9.6 dB (direct spherical head: 10.7–10.8 dB)
    assert 300e-6 < itd_l < 500e-6  # first order shrinks the ITD: measured ≈ 400 µs (direct 620–775 µs)
    assert ild(right, SR).item() == pytest.approx(-ild_l, abs=1e-6)
    assert itd(right, SR).item() == pytest.approx(-itd_l, abs=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_foa_front_source_is_balanced(noise, method: str) -> None:
    front = render_foa(plane_wave(noise, 0.0, 10.0), SR, method=method)
    assert abs(ild(front, SR).item()) < 1e-6 and abs(itd(front, SR).item()) < 1e-8


def test_magls_keeps_high_frequency_ild(noise) -> None:
    """Pitfall 10: plain first-order least squares collapses the HF ILD; MagLS restores it."""
    direct = ild(render_source(noise, 90 * DEG, 0.0, SR), SR, band=(3000, 7000)).item()
    x = plane_wave(noise, 90.0)
    magls = ild(render_foa(x, SR, method="magls"), SR, band=(3000, 7000)).item()
    ls = foa_decoder_filters("spherical-head", SR, "magls", cutoff=SR / 2)  # LS at every bin
    n = 2 * x.shape[-1]
    y = torch.fft.irfft(torch.einsum("cf,ecf->ef", torch.fft.rfft(x, n), torch.fft.rfft(ls, n)), n)
    ls_ild = ild(y[..., : x.shape[-1]], SR, band=(3000, 7000)).item()
    assert ls_ild < 7.0 < 12.0 < magls  # measured 5.9 and 13.3 dB
    assert abs(magls - direct) < 2.0  # direct: 14.3 dB


def test_max_re_filters_equal_virtual_loudspeaker_rendering(noise) -> None:
    """Folded 4-filter rendering == feeding a max-rE cube of HRIRs, written here from the formula."""
    x = plane_wave(noise[:2000], 35.0, -20.0) + plane_wave(noise[2000:4000], -120.0, 40.0)
    model = SphericalHead()
    az, el = CUBE_LAYOUT[:, 0].numpy(), CUBE_LAYOUT[:, 1].numpy()
    np.testing.assert_allclose(np.sort(np.abs(el)), np.full(8, math.atan(1 / math.sqrt(2))))
    irs = model.impulse_responses(az, el, SR)  # [8, 2, taps]
    u = np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)], -1)
    w, dipole = x[0].numpy(), x[[3, 1, 2]].numpy()  # W and (X, Y, Z)
    feeds = (w[None] + math.sqrt(3) * (u @ dipole)) / 8  # p_l = (1/L)[W + 3·g1·u_l·d], g1 = 1/√3
    expected = np.zeros((2, x.shape[-1]))
    for spk in range(8):
        for ear in range(2):
            expected[ear] += np.convolve(feeds[spk], irs[spk, ear])[: x.shape[-1]]
    got = render_foa(x, SR, method="max_re").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_render_foa_batched_dtype_and_causal_trim(method: str) -> None:
    x = torch.randn(3, 4, 1000)
    out = render_foa(x, SR, method=method)
    assert out.shape == (3, 2, 1000) and out.dtype == torch.float32
    single = render_foa(x[1].double(), SR, method=method)
    torch.testing.assert_close(out[1].double(), single, atol=1e-5, rtol=1e-4)
    # an impulse in channel c returns the first T taps of filter c: output = causal start of the convolution
    filters = foa_decoder_filters("spherical-head", SR, method)
    impulse = torch.zeros(4, 100, dtype=torch.float64)
    impulse[2, 0] = 1.0
    torch.testing.assert_close(
        render_foa(impulse, SR, method=method), filters[:, 2, :100], atol=1e-12, rtol=0
    )
    assert foa_decoder_filters("spherical-head", SR, method) is filters  # cached


def test_render_source_matches_numpy_convolution(noise) -> None:
    sig = noise[:3000]
    out = render_source(sig, 40 * DEG, -15 * DEG, SR)
    irs = SphericalHead().impulse_responses(np.array([40 * DEG]), np.array([-15 * DEG]), SR)[0]
    for ear in range(2):
        np.testing.assert_allclose(out[ear].numpy(), np.convolve(sig.numpy(), irs[ear])[:3000], atol=1e-12)
    # per-item directions broadcast over the batch; the sign of the ILD follows the azimuth
    batch = render_source(torch.stack([sig, sig]).float(), torch.tensor([70 * DEG, -70 * DEG]), 0.0, SR)
    assert batch.shape == (2, 2, 3000) and batch.dtype == torch.float32
    levels = ild(batch, SR)
    assert levels[0] > 6 and levels[1] < -6


def test_hrir_set_at_another_rate_is_resampled(noise) -> None:
    hset48 = load_hrir("spherical-head", 48000)
    a = render_foa(plane_wave(noise, 90.0), SR, hrir=hset48)
    b = render_foa(plane_wave(noise, 90.0), SR, hrir="spherical-head")
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_cues_on_a_known_delay_and_gain() -> None:
    """R = 0.5 × L delayed by 3.3 samples (band-limited) -> ILD +6.02 dB, ITD +3.3/sr, IPD = 2πf·ITD."""
    n = 8192
    spec = torch.fft.rfft(torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    spec[-1] = 0  # no Nyquist content, so the fractional delay is exact and energy-preserving
    delay = 3.3
    f = torch.fft.rfftfreq(n, dtype=torch.float64)
    s = torch.fft.irfft(spec, n)
    r = 0.5 * torch.fft.irfft(spec * torch.exp(-2j * math.pi * f * delay), n)
    x = torch.stack([s, r])
    assert ild(x, SR).item() == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert ild(x, SR, band=(500, 4000)).item() == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert itd(x, SR).item() == pytest.approx(delay / SR, abs=2e-6)  # within 1/30 sample
    swapped = itd(x.flip(0), SR).item()
    assert swapped == pytest.approx(-delay / SR, abs=2e-6)
    phase = ipd(x, SR, n_fft=512, band=(50, 1500))
    freqs = torch.fft.rfftfreq(512, 1 / SR, dtype=torch.float64)
    freqs = freqs[(freqs >= 50) & (freqs <= 1500)]
    expected = 2 * math.pi * freqs * delay / SR
    interior = phase[:, 2:-2]  # skip the edge frames (circular delay wraps there)
    # per-frame phases scatter a little (window leakage of the 3.3-sample shift); their median is tight
    torch.testing.assert_close(interior.median(dim=-1).values, expected, atol=0.02, rtol=0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(2, 3, 100), r"\[\.\.\., 4, samples\]"),
        (torch.zeros(4, 0), "zero samples"),
        (torch.full((4, 10), float("nan")), "NaN"),
        (torch.zeros(4, 10, dtype=torch.long), "floating-point"),
    ],
)
def test_render_foa_rejects_bad_audio(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=rf"^x: .*{match}"):
        render_foa(bad, SR)


def test_other_bad_inputs() -> None:
    with pytest.raises(InvalidAudioError, match=r"^signal: .*NaN"):
        render_source(torch.tensor([0.0, float("inf")]), 0.0, 0.0, SR)
    with pytest.raises(InvalidAudioError, match=r"^binaural: .*2 ear channels"):
        ild(torch.zeros(3, 10), SR)
    with pytest.raises(ValueError, match="method"):
        foa_decoder_filters("spherical-head", SR, "ls")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_rate"):
        render_foa(torch.zeros(4, 10), 0)
