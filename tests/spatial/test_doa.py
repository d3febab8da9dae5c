"""Pseudo-intensity DOA and diffuseness: physics on plane waves encoded here from the AmbiX formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial import doa
from spatialgen.spatial.geometry import DEG, direction, great_circle

SR = 16000


def encode(signal: torch.Tensor, azimuth, elevation) -> torch.Tensor:
    """AmbiX SN3D plane wave ``[s, s·uy, s·uz, s·ux]``; angles scalar or per sample ``[..., T]``."""
    az = torch.as_tensor(azimuth, dtype=torch.float64)
    el = torch.as_tensor(elevation, dtype=torch.float64)
    u = direction(az, el).to(signal.dtype)  # [..., 3] or [..., T, 3]
    if u.ndim == signal.ndim + 1:
        ux, uy, uz = u.unbind(-1)
    else:
        ux, uy, uz = (c.unsqueeze(-1) for c in u.unbind(-1))
    return torch.stack((signal, signal * uy, signal * uz, signal * ux), dim=-2)


def band_noise(n: int, fmin: float, fmax: float, generator: torch.Generator) -> torch.Tensor:
    """White noise brick-wall band-limited to [fmin, fmax] Hz (FFT-domain mask)."""
    spec = torch.fft.rfft(torch.randn(n, dtype=torch.float64, generator=generator))
    freqs = torch.fft.rfftfreq(n, 1 / SR, dtype=torch.float64)
    return torch.fft.irfft(spec * ((freqs >= fmin) & (freqs <= fmax)), n)


def random_directions(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform directions plus the hard cases: near the zenith/nadir and both sides of the ±180° seam."""
    az = rng.uniform(-math.pi, math.pi, n)
    el = np.arcsin(rng.uniform(-1, 1, n))
    extra_az = np.deg2rad([179.8, -179.8, 180.0, 37.0, -123.0, 0.0])
    extra_el = np.deg2rad([0.0, 12.0, -5.0, 88.5, -87.0, 89.9])
    return torch.tensor(np.r_[az, extra_az]), torch.tensor(np.r_[el, extra_el])


def test_intensity_doa_recovers_random_directions_batched() -> None:
    az, el = random_directions(10, np.random.default_rng(1))
    s = torch.randn(az.numel(), SR // 2, dtype=torch.float64)
    x = encode(s, az, el)  # [16, 4, T] in one batch
    est_az, est_el = doa.intensity_doa(x, SR)
    assert est_az.shape == est_el.shape == az.shape
    err = torch.rad2deg(great_circle(est_az, est_el, az, el))
    assert err.max() < 0.5
    assert err.max() < 1e-6  # an anechoic plane wave is exact for PIV
    # Seam: the estimate stays on the correct side of ±180° (azimuth in (−π, π]).
    assert est_az[-6] > 3.0 and est_az[-5] < -3.0


def test_left_right_and_up_down_signs() -> None:
    s = torch.randn(4000, dtype=torch.float64)
    left_az, _ = doa.intensity_doa(encode(s, 90 * DEG, 0.0), SR)
    right_az, _ = doa.intensity_doa(encode(s, -90 * DEG, 0.0), SR)
    _, up_el = doa.intensity_doa(encode(s, 0.0, 40 * DEG), SR)
    assert left_az.item() == pytest.approx(math.pi / 2, abs=1e-9)
    assert right_az.item() == pytest.approx(-math.pi / 2, abs=1e-9)
    assert up_el.item() == pytest.approx(40 * DEG, abs=1e-9)


def test_unit_weighting_and_numpy_input_and_dtype() -> None:
    s = torch.randn(3000, dtype=torch.float64)
    x = encode(s, -2.0, 0.7)
    az_u, el_u = doa.intensity_doa(x, SR, weighting="unit")
    assert az_u.item() == pytest.approx(-2.0, abs=1e-9) and el_u.item() == pytest.approx(0.7, abs=1e-9)
    az_np, _ = doa.intensity_doa(x.numpy(), SR)
    assert az_np.item() == pytest.approx(-2.0, abs=1e-9)
    az32, el32 = doa.intensity_doa(x.float(), SR)
    assert az32.dtype == el32.dtype == torch.float32
    assert doa.intensity_doa(x, SR)[0].dtype == torch.float64


def test_per_frame_doa_tracks_moving_source() -> None:
    n = SR  # 1 s
    t = torch.arange(n, dtype=torch.float64) / SR
    az_t = (-60 + 120 * t) * DEG  # sweeps -60° -> +60° at 120°/s
    el_t = (10 + 30 * t) * DEG
    x = encode(torch.randn(n, dtype=torch.float64), az_t, el_t)
    est_az, est_el = doa.intensity_doa(x, SR, n_fft=256, hop=64, per_frame=0.1)
    assert est_az.shape == (10,)
    centre = (torch.arange(10, dtype=torch.float64) + 0.5) * 0.1
    true_az, true_el = (-60 + 120 * centre) * DEG, (10 + 30 * centre) * DEG
    err = torch.rad2deg(great_circle(est_az, est_el, true_az, true_el))
    assert err.max() < 1.0, err
    assert torch.all(torch.diff(est_az) > 0)  # monotone sweep to the left


def test_per_frame_block_count_and_static_source() -> None:
    x = encode(torch.randn(2, 5000, dtype=torch.float64), torch.tensor([0.3, -1.2]), torch.tensor([0.1, 0.5]))
    az, el = doa.intensity_doa(x, SR, per_frame=0.1)  # 1600-sample blocks: ceil(5000/1600) = 4
    assert az.shape == el.shape == (2, 4)
    assert torch.allclose(az, torch.tensor([[0.3], [-1.2]], dtype=torch.float64).expand(2, 4), atol=1e-9)
    assert torch.allclose(el, torch.tensor([[0.1], [0.5]], dtype=torch.float64).expand(2, 4), atol=1e-9)


def test_band_limited_doa_isolates_each_source() -> None:
    g = torch.Generator().manual_seed(3)
    n = SR // 2
    low = encode(band_noise(n, 200, 2200, g), 70 * DEG, 20 * DEG)
    high = encode(band_noise(n, 4000, 6000, g), -110 * DEG, -30 * DEG)
    x = low + high
    for band, (az, el) in (((250, 2100), (70, 20)), ((4100, 5900), (-110, -30))):
        est = doa.intensity_doa(x, SR, band=band)
        assert math.degrees(great_circle(*est, az * DEG, el * DEG)) < 0.5
    # Broadband mixes both: the estimate is far from either source.
    mixed = doa.intensity_doa(x, SR)
    assert math.degrees(great_circle(*mixed, 70 * DEG, 20 * DEG)) > 10
    assert math.degrees(great_circle(*mixed, -110 * DEG, -30 * DEG)) > 10


def test_intensity_vectors_plane_wave_identity() -> None:
    x = encode(torch.randn(4000, dtype=torch.float64), 1.0, -0.4)
    field = doa.intensity_vectors(x, SR, n_fft=256, band=(500, 2000))
    u = direction(1.0, -0.4).to(torch.float64)
    assert field.intensity.shape == (3, field.freqs.numel(), field.times.numel())
    assert field.freqs.min() >= 500 and field.freqs.max() <= 2000
    # I = |S|² u and ‖I‖ = E in every bin.
    assert torch.allclose(field.intensity, field.energy.unsqueeze(0) * u[:, None, None], atol=1e-9)
    assert field.times[1].item() == pytest.approx(128 / SR)


def test_diffuseness_plane_wave_and_diffuse_field() -> None:
    n = SR // 2
    assert doa.diffuseness(encode(torch.randn(n, dtype=torch.float64), 0.4, 0.9), SR).item() < 1e-9
    # Many uncorrelated sources on a Fibonacci sphere approximate an isotropic diffuse field.
    k = 96
    i = torch.arange(k, dtype=torch.float64) + 0.5
    el = torch.asin(1 - 2 * i / k)
    az = torch.remainder(i * math.pi * (3 - math.sqrt(5)), 2 * math.pi) - math.pi
    field = encode(torch.randn(k, n, dtype=torch.float64), az, el).sum(0)
    psi = doa.diffuseness(field, SR)
    assert psi.item() > 0.8
    # A plane wave with the same W power as the field: ‖ΣI‖ ≈ k and ΣE ≈ 2k, so ψ ≈ ½.
    mix = field + math.sqrt(k) * encode(torch.randn(n, dtype=torch.float64), 0.0, 0.0)
    assert doa.diffuseness(mix, SR).item() == pytest.approx(0.5, abs=0.1)
    per = doa.diffuseness(field, SR, per_frame=0.25)
    assert per.shape == (2,) and torch.all(per > 0.7)


def test_silence_gives_zero_direction_and_full_diffuseness() -> None:
    x = torch.zeros(4, 1000)
    az, el = doa.intensity_doa(x, SR)
    assert az.item() == 0.0 and el.item() == 0.0
    assert doa.diffuseness(x, SR).item() == 1.0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(3, 100), r"x: expected 4 FOA channels \[\.\.\., 4, samples\]"),
        (torch.zeros(100), "x: expected 4 FOA channels"),
        (torch.zeros(2, 4, 0), "x: has zero samples"),
        (torch.tensor([[0.0, float("nan")]] * 4), "x: contains NaN"),
    ],
)
def test_invalid_audio_is_rejected(bad: torch.Tensor, match: str) -> None:
    for fn in (doa.intensity_doa, doa.diffuseness):
        with pytest.raises(InvalidAudioError, match=match):
            fn(bad, SR)


def test_invalid_parameters_are_rejected() -> None:
    x = torch.randn(4, 1000)
    with pytest.raises(ValueError, match="weighting"):
        doa.intensity_doa(x, SR, weighting="loud")
    with pytest.raises(ValueError, match="band"):
        doa.intensity_doa(x, SR, band=(2000, 1000))
    with pytest.raises(ValueError, match="no STFT bin"):
        doa.intensity_doa(x, SR, band=(10, 12))
    with pytest.raises(ValueError, match="per_frame"):
        doa.diffuseness(x, SR, per_frame=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        doa.intensity_doa(x, 0)
