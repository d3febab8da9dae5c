"""Energy maps: peaks at the source, grid layout, and ViSAGe's map against a loop-form numpy reference."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial import doa
from spatialgen.spatial.geometry import DEG, direction, great_circle


def encode(signal: torch.Tensor, azimuth: float, elevation: float) -> torch.Tensor:
    """AmbiX SN3D plane wave ``[s, s·uy, s·uz, s·ux]``."""
    ux, uy, uz = direction(
        torch.tensor(azimuth, dtype=torch.float64), torch.tensor(elevation, dtype=torch.float64)
    )
    return torch.stack((signal, signal * uy, signal * uz, signal * ux), dim=-2)


# ------------------------------------------------------------------ generic steered-response map


@pytest.mark.parametrize("beam", ["cardioid", "max_re", "hypercardioid"])
def test_energy_map_peaks_at_source(beam: str) -> None:
    rng = np.random.default_rng(7)
    dirs = [(179.5, 3.0), (-179.5, -20.0), (90.0, 0.0), (-37.0, 75.0), (120.0, -80.0)]
    dirs += [(rng.uniform(-180, 180), math.degrees(math.asin(rng.uniform(-1, 1)))) for _ in range(3)]
    x = torch.stack([encode(torch.randn(2000, dtype=torch.float64), a * DEG, e * DEG) for a, e in dirs])
    maps = doa.energy_map(x, n_el=90, n_az=180, beam=beam)
    assert maps.shape == (len(dirs), 90, 180)
    grid_az, grid_el = doa.energy_map_grid(90, 180)
    for m, (a, e) in zip(maps, dirs):
        r, c = np.unravel_index(int(m.argmax()), m.shape)
        # The argmax is the cell nearest the source: within half a cell diagonal (≈1.41°).
        assert math.degrees(great_circle(grid_az[c], grid_el[r], a * DEG, e * DEG)) < 1.42


def test_energy_map_equals_direct_beam_power() -> None:
    """mean_t b² computed per cell in a loop from b = W + w1 u·[X, Y, Z] (numpy, independent)."""
    a = torch.randn(2, 4, 700, dtype=torch.float64)
    n_el, n_az, w1 = 5, 8, math.sqrt(3.0)
    got = doa.energy_map(a, n_el=n_el, n_az=n_az, beam="max_re").numpy()
    got_rms = doa.energy_map(a, n_el=n_el, n_az=n_az, beam=w1, rms=True).numpy()
    an = a.numpy()
    for i in range(n_el):
        el = math.pi / 2 - math.pi * (i + 0.5) / n_el
        for j in range(n_az):
            az = math.pi - 2 * math.pi * (j + 0.5) / n_az
            ux, uy, uz = math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)
            beam = an[:, 0] + w1 * (ux * an[:, 3] + uy * an[:, 1] + uz * an[:, 2])
            np.testing.assert_allclose(got[:, i, j], (beam**2).mean(-1), rtol=1e-12)
            np.testing.assert_allclose(got_rms[:, i, j], np.sqrt((beam**2).mean(-1)), rtol=1e-12)


def test_energy_map_plane_wave_shape_and_layout() -> None:
    s = torch.randn(3000, dtype=torch.float64)
    m = doa.energy_map(encode(s, 90 * DEG, 0.0), n_el=18, n_az=36, beam="cardioid")
    power = (s**2).mean()
    grid_az, grid_el = doa.energy_map_grid(18, 36)
    # Cardioid on a plane wave: s²(1 + cos γ)², 4 s² on axis, exactly 0 at the antipode.
    gamma = great_circle(grid_az[None, :], grid_el[:, None], 90 * DEG, 0.0)
    assert torch.allclose(m, power * (1 + torch.cos(gamma)) ** 2, rtol=1e-10, atol=1e-12)
    # +90° (left) is in the left half of the map; row 0 is the top.
    assert int(m.amax(0).argmax()) < 18
    assert grid_el[0] > 0 > grid_el[-1] and grid_az[0] > 0 > grid_az[-1]
    assert grid_az[0].item() == pytest.approx(math.pi - math.pi / 36)


def test_energy_map_dtype_and_errors() -> None:
    x = torch.randn(4, 500)
    assert doa.energy_map(x, n_el=4, n_az=8).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown beam"):
        doa.energy_map(x, beam="shotgun")
    with pytest.raises(InvalidAudioError, match="x: expected 4 FOA channels"):
        doa.energy_map(torch.randn(2, 500))
    with pytest.raises(InvalidAudioError, match="x: contains NaN"):
        doa.energy_map(torch.full((4, 10), float("inf")))


# ------------------------------------------------------------------ ViSAGe metric map


@functools.cache
def visage_gains_reference() -> np.ndarray:
    """[90, 4, 180] gains g(φ, ν) = [1, √2 cos ν sin φ, sin ν, √2 cos ν cos φ], cell by cell."""
    gains = np.empty((90, 4, 180))
    for r in range(90):
        nu = math.radians(88 - 2 * r)
        for c in range(180):
            phi = math.radians(178 - 2 * c)
            gains[r, :, c] = [
                1.0,
                math.sqrt(2) * math.cos(nu) * math.sin(phi),
                math.sin(nu),
                math.sqrt(2) * math.cos(nu) * math.cos(phi),
            ]
    return gains


def visage_map_reference(a: np.ndarray) -> np.ndarray:
    """ViSAGe's map in loop form: a [T, 4] (W, Y, Z, X) -> sqrt(mean_t (g·a)²), row by row in time domain."""
    gains = visage_gains_reference()
    return np.stack([np.sqrt(((a @ gains[r]) ** 2).mean(0)) for r in range(90)])


def sphere_sample_reference(m: np.ndarray) -> np.ndarray:
    """ViSAGe's ``er_sphere_sample`` (``utils/wild_360.py``) with np.interp, row by row."""
    out = []
    for e in range(90):
        count = int(np.round(180 * math.sin(math.pi * (e + 0.5) / 90)))
        xk = np.arange(count) * (180 - 90 / count) / count
        out.append(np.interp(xk, np.arange(180), m[e], period=360))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def clip() -> tuple[torch.Tensor, int]:
    """2 s at 4 kHz: two uncorrelated sources plus a little noise (1 fps: 2 chunks, 5 fps: 10 chunks)."""
    sr = 4000
    g = torch.Generator().manual_seed(11)
    n = 2 * sr
    gate = (torch.arange(n) < n // 2).to(torch.float64)  # the first source stops half-way
    x = encode(torch.randn(n, generator=g, dtype=torch.float64) * gate, 40 * DEG, 15 * DEG)
    x = x + encode(torch.randn(n, generator=g, dtype=torch.float64), -120 * DEG, -50 * DEG)
    x = x + 0.05 * torch.randn(4, n, generator=g, dtype=torch.float64)
    return x, sr


def test_visage_energy_map_matches_reference(clip: tuple[torch.Tensor, int]) -> None:
    x, sr = clip
    a = x.numpy().T
    whole = doa.visage_energy_map(x, sr)
    assert whole.shape == (90, 180) and whole.dtype == torch.float64
    np.testing.assert_allclose(whole.numpy(), visage_map_reference(a), rtol=1e-12)
    for fps, n_chunks in ((1, 2), (5, 10)):
        maps = doa.visage_energy_map(x, sr, fps=fps)
        assert maps.shape == (n_chunks, 90, 180)
        chunk = sr // fps
        for k in sorted({0, n_chunks // 2, n_chunks - 1}):
            ref = visage_map_reference(a[k * chunk : (k + 1) * chunk])
            np.testing.assert_allclose(maps[k].numpy(), ref, rtol=1e-12)
    # Batched input gives the same maps per item; float32 input stays float32 and agrees.
    batch = torch.stack((x, 2 * x))
    bm = doa.visage_energy_map(batch, sr, fps=5)
    assert bm.shape == (2, 10, 90, 180)
    assert torch.allclose(bm[1], 2 * bm[0], rtol=1e-12)
    m32 = doa.visage_energy_map(x.float(), sr)
    assert m32.dtype == torch.float32
    assert torch.allclose(m32.double(), whole, rtol=1e-6)


def test_visage_sphere_sample_matches_reference() -> None:
    rng = np.random.default_rng(5)
    maps = rng.random((3, 90, 180))
    got = doa.visage_sphere_sample(torch.from_numpy(maps))
    assert got.shape == (3, doa.VISAGE_VECTOR_LENGTH) == (3, 10312)
    for k in range(3):
        np.testing.assert_allclose(got[k].numpy(), sphere_sample_reference(maps[k]), rtol=0, atol=1e-15)
    # Polar rows keep few samples: the first rows hold 3, 9, 16, 22, 28 values.
    row_ids = doa.visage_sphere_sample(torch.arange(90, dtype=torch.float64)[:, None].expand(90, 180))
    counts = torch.bincount(row_ids.round().long(), minlength=90)
    assert counts[:5].tolist() == [3, 9, 16, 22, 28] and counts[:5].tolist() == counts[-5:].flip(0).tolist()
    with pytest.raises(ValueError, match=r"\[\.\.\., 90, 180\]"):
        doa.visage_sphere_sample(torch.zeros(45, 90))


def test_visage_map_vector_composes(clip: tuple[torch.Tensor, int]) -> None:
    x, sr = clip
    vec = doa.visage_map_vector(x, sr, fps=1)
    assert vec.shape == (2, 10312)
    ref = sphere_sample_reference(visage_map_reference(x.numpy().T[sr:]))
    np.testing.assert_allclose(vec[1].numpy(), ref, rtol=1e-12)


def test_visage_grid_and_beam_weights() -> None:
    az, el = doa.visage_grid()
    assert torch.allclose(
        torch.rad2deg(az[[0, 1, 89, 179]]), torch.tensor([178.0, 176.0, 0.0, -180.0], dtype=torch.float64)
    )
    assert torch.allclose(
        torch.rad2deg(el[[0, 44, 89]]), torch.tensor([88.0, 0.0, -90.0], dtype=torch.float64)
    )
    g = doa.visage_beam_weights()
    # ViSAGe's steering: at φ = 30°, ν = 20° the gains are [1, .6645, .342, 1.1509] (row 34, column 74).
    assert torch.allclose(
        g[34, 74], torch.tensor([1.0, 0.6645, 0.342, 1.1509], dtype=torch.float64), atol=1e-4
    )


@pytest.mark.parametrize(("az", "el", "row", "col"), [(60, 30, 33, 59), (-60, 30, 33, 119), (0, 60, 19, 89)])
def test_visage_map_peak_has_the_sqrt2_elevation_bias(az: int, el: int, row: int, col: int) -> None:
    """The peak sits at azimuth col 178−2c = φ and elevation atan(tan θ/√2): 30° → 22°, 60° → 50°."""
    m = doa.visage_energy_map(encode(torch.randn(4000, dtype=torch.float64), az * DEG, el * DEG), 16000)
    r, c = np.unravel_index(int(m.argmax()), m.shape)
    assert (r, c) == (row, col)
    assert 88 - 2 * r == round(math.degrees(math.atan(math.tan(math.radians(el)) / math.sqrt(2))) / 2) * 2


def test_visage_fit_length_and_chunk_errors() -> None:
    x = torch.randn(4, 1000)
    assert doa.visage_fit_length(x, 100, 5.0).shape == (4, 500)
    padded = doa.visage_fit_length(x, 400, 5.0)
    assert padded.shape == (4, 2000) and torch.equal(padded[:, :1000], x) and not padded[:, 1000:].any()
    with pytest.raises(InvalidAudioError, match="whole number of 200-sample chunks"):
        doa.visage_energy_map(torch.randn(4, 1100), 1000, fps=5)
    with pytest.raises(ValueError, match="fps"):
        doa.visage_energy_map(x, 1000, fps=0)
    with pytest.raises(InvalidAudioError, match="x: has zero samples"):
        doa.visage_energy_map(torch.zeros(4, 0), 1000)


@pytest.mark.parametrize(("az", "el", "cc"), [(10, 0, 0.98), (90, 0, -0.007), (180, 0, -0.95), (0, 60, 0.62)])
def test_visage_vectors_reproduce_reference_sanity_values(az: int, el: int, cc: float) -> None:
    """ViSAGe's metric (``evaluate_spatial.py``), GT = front plane wave: Pearson CC of the 10,312-vectors."""
    s = torch.randn(3200, dtype=torch.float64)
    gt = doa.visage_map_vector(encode(s, 0.0, 0.0), 16000).numpy()
    pred = doa.visage_map_vector(encode(s, az * DEG, el * DEG), 16000).numpy()
    assert np.corrcoef(pred, gt)[0, 1] == pytest.approx(cc, abs=0.006)
    assert int((gt > gt.max() - gt.std()).sum()) == 2691  # the reference's "fixation" count


def test_maps_are_differentiable() -> None:
    x = torch.randn(2, 4, 6400, dtype=torch.float64, requires_grad=True)
    loss = doa.visage_map_vector(x, 16000, fps=5).sum() + doa.energy_map(x, n_el=8, n_az=16).sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
