"""HRIR sets: Brown & Duda spherical head against its formulas, SOFA round trips, KEMAR, resampling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spatialgen.errors import MediaError
from spatialgen.registry import UnknownNameError
from spatialgen.spatial import hrir as hrir_mod
from spatialgen.spatial.binaural import render_source
from spatialgen.spatial.cues import ild, itd
from spatialgen.spatial.hrir import HRIRSet, SphericalHead, list_hrirs, load_hrir, read_sofa, sphere_grid

SR = 16000
A, C = 0.0875, 343.0
DEG = math.pi / 180


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.randn(SR // 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def brown_duda_parts(az: float, el: float, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent numpy Brown & Duda (1998), ears on ±y: shadow filters [2, n//2+1] and delays [2] (s)."""
    u = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
    w = 2 * math.pi * np.fft.rfftfreq(n, 1 / sr)
    w0 = C / A
    shadows, taus = [], []
    for ear in (np.array([0, 1.0, 0]), np.array([0, -1.0, 0])):
        theta = math.acos(float(np.clip(u @ ear, -1, 1)))
        alpha = 1.05 + 0.95 * math.cos(theta / (150 * DEG) * math.pi)
        shadows.append((1 + 1j * alpha * w / (2 * w0)) / (1 + 1j * w / (2 * w0)))
        taus.append(
            A / C * (1 - math.cos(theta)) if theta < math.pi / 2 else A / C * (theta + 1 - math.pi / 2)
        )
    return np.stack(shadows), np.array(taus)


@pytest.mark.parametrize("az_deg, el_deg", [(0, 0), (30, 0), (90, 0), (-45, -30), (150, 20), (60, 75)])
def test_spherical_head_matches_brown_duda_formula(az_deg: float, el_deg: float) -> None:
    model = SphericalHead()
    irs = model.impulse_responses(np.array([az_deg * DEG]), np.array([el_deg * DEG]), SR)[0]
    n = irs.shape[-1]
    assert n == model.taps(SR) == 128
    shadow, tau = brown_duda_parts(az_deg * DEG, el_deg * DEG, n, SR)
    w = 2 * math.pi * np.fft.rfftfreq(n, 1 / SR)
    expected = shadow * np.exp(-1j * w * (tau[:, None] + (n // 8) / SR))
    got = np.fft.rfft(irs, axis=-1)
    # all bins but Nyquist (where a real IR keeps only the real part)
    np.testing.assert_allclose(got[:, :-1], expected[:, :-1], atol=1e-12)


@pytest.mark.parametrize("az_deg, el_deg", [(20, 0), (90, 0), (-60, 10), (120, -40)])
def test_spherical_head_delay_is_woodworth(az_deg: float, el_deg: float) -> None:
    """Dividing out the shadow filters leaves a pure delay difference = (a/c)(lat + sin lat)."""
    az, el = az_deg * DEG, el_deg * DEG
    irs = SphericalHead().impulse_responses(np.array([az]), np.array([el]), SR)[0]
    n = irs.shape[-1]
    spec = np.fft.rfft(irs, axis=-1)
    shadow, _ = brown_duda_parts(az, el, n, SR)
    w = 2 * math.pi * np.fft.rfftfreq(n, 1 / SR)
    k = slice(1, int(700 / SR * n))  # below 700 Hz: |ω·ITD| < π, no phase wrapping
    # L·R* with the shadow filters divided out has phase ω(τR − τL) = ω·ITD
    delay_only = spec[0, k] * np.conj(spec[1, k]) / (shadow[0, k] * np.conj(shadow[1, k]))
    lat = math.asin(math.sin(az) * math.cos(el))
    woodworth = A / C * (lat + math.sin(lat))
    np.testing.assert_allclose(np.angle(delay_only) / w[k], woodworth, atol=1e-9)
    assert math.isclose(A / C * (math.pi / 2 + 1), 656e-6, rel_tol=2e-3)  # 656 µs at 90°


def test_spherical_head_cues_left_right_front(noise: torch.Tensor) -> None:
    left = render_source(noise, 90 * DEG, 0.0, SR)
    right = render_source(noise, -90 * DEG, 0.0, SR)
    front = render_source(noise, 0.0, 0.0, SR)
    ild_l, itd_l = ild(left, SR).item(), itd(left, SR).item()
    assert ild_l > 6.0  # broadband (0–8 kHz): measured 10.7 dB
    assert ild(left, SR, band=(3000, 7000)).item() > 12.0  # head shadow at HF: measured 14.3 dB
    assert 600e-6 < itd_l < 850e-6  # LF GCC-PHAT ≈ Kuhn's 3a/c = 765 µs (reference: 775 µs)
    assert abs(ild(right, SR).item() + ild_l) < 1e-9
    assert abs(itd(right, SR).item() + itd_l) < 1e-9
    assert abs(ild(front, SR).item()) < 1e-9 and abs(itd(front, SR).item()) < 1e-9
    # no pinna: front/back symmetric (45° ≡ 135°)
    a, b = render_source(noise, 45 * DEG, 0.0, SR), render_source(noise, 135 * DEG, 0.0, SR)
    assert torch.allclose(a, b, atol=1e-12)


def test_sphere_grid_and_nearest() -> None:
    grid = sphere_grid(5.0)
    u = torch.stack([grid[:, 0].cos() * grid[:, 1].cos(), grid[:, 0].sin() * grid[:, 1].cos()], -1)
    assert grid.shape[0] > 1500 and grid[:, 1].min() == -math.pi / 2 and grid[:, 1].max() == math.pi / 2
    # mirror-symmetric in azimuth (needed for exact left/right mirroring of decoders)
    mirrored = torch.stack([u[:, 0], -u[:, 1]], -1)
    sq_dist = (mirrored[:, None] - u[None]).square().sum(-1).min(dim=1).values
    assert sq_dist.max() < 1e-24
    hset = load_hrir("spherical-head", SR)
    idx = hset.nearest(torch.tensor([90 * DEG, -92 * DEG]), torch.tensor([0.0, 1 * DEG]))
    np.testing.assert_allclose(hset.directions[idx].numpy(), [[90 * DEG, 0], [-90 * DEG, 0]], atol=1e-12)
    # analytic set: `at` is exact at any direction, the stored IRs are exact on the grid
    torch.testing.assert_close(hset.at(90 * DEG, 0.0), hset.irs[idx[0]])
    moved = hset.to(dtype=torch.float32)
    assert moved.irs.dtype == torch.float32 and moved.fingerprint == hset.fingerprint


def _write_sofa(path, irs: np.ndarray, positions, sr: int, *, receivers_swapped=False, cartesian=False):
    sofar = pytest.importorskip("sofar")
    sofa = sofar.Sofa("SimpleFreeFieldHRIR")
    sofa.Data_IR = irs[:, ::-1] if receivers_swapped else irs
    sofa.Data_SamplingRate = sr
    sofa.ReceiverPosition = (
        [[0, -0.09, 0], [0, 0.09, 0]] if receivers_swapped else [[0, 0.09, 0], [0, -0.09, 0]]
    )
    if cartesian:
        sofa.SourcePosition_Type, sofa.SourcePosition_Units = "cartesian", "metre"
    sofa.SourcePosition = positions
    sofar.write_sofa(str(path), sofa)


# SOFA spherical degrees, azimuth in [0, 360): 270° is our −90° (right)
SOFA_DIRS_DEG = [(0.0, 0.0), (90.0, 0.0), (270.0, 0.0), (45.0, 30.0), (200.0, -20.0)]


@pytest.mark.parametrize("variant", ["spherical", "cartesian", "swapped-receivers"])
def test_sofa_round_trip(tmp_path, variant: str) -> None:
    az = np.array([d[0] for d in SOFA_DIRS_DEG]) * DEG
    el = np.array([d[1] for d in SOFA_DIRS_DEG]) * DEG
    irs = SphericalHead().impulse_responses(az, el, SR)
    if variant == "cartesian":
        r = 1.5
        positions = np.stack([r * np.cos(az) * np.cos(el), r * np.sin(az) * np.cos(el), r * np.sin(el)], -1)
    else:
        positions = [[a, e, 1.2] for a, e in SOFA_DIRS_DEG]
    path = tmp_path / f"{variant}.sofa"
    _write_sofa(
        path,
        irs,
        positions,
        SR,
        receivers_swapped=variant == "swapped-receivers",
        cartesian=variant == "cartesian",
    )
    loaded = load_hrir(path, SR)
    assert loaded.sample_rate == SR and loaded.model is None
    np.testing.assert_allclose(loaded.irs.numpy(), irs, atol=1e-12)
    expected_az = np.array([0, 90, -90, 45, -160]) * DEG  # wrapped to (−π, π]
    np.testing.assert_allclose(loaded.directions[:, 0].numpy(), expected_az, atol=1e-9)
    np.testing.assert_allclose(loaded.directions[:, 1].numpy(), el, atol=1e-9)
    # the +90° measurement is the louder/earlier-left one (pitfall 9)
    left = loaded.irs[loaded.nearest(90 * DEG, 0.0)]
    assert left[0].square().sum() > left[1].square().sum()


_LEFT, _RIGHT = (0.0, 0.09, 0.0), (0.0, -0.09, 0.0)
_SPH_LEFT, _SPH_RIGHT = (90.0, 0.0, 0.09), (270.0, 0.0, 0.09)
# per-measurement ear order for the [R, C, M] layout: True = the file stores the right ear first
_ORDER = [False, True, True, False, True]


@pytest.mark.parametrize(
    "layout",
    [
        "cartesian-left-first",
        "cartesian-right-first",
        "spherical-left-first",
        "spherical-right-first",
        "cartesian-per-measurement",
        "spherical-per-measurement",
    ],
)
def test_sofa_receiver_layouts_load_left_then_right(tmp_path, layout: str) -> None:
    """Ears come out [L, R] whatever the ReceiverPosition type, the ear order and per-measurement layout."""
    sofar = pytest.importorskip("sofar")
    az = np.array([d[0] for d in SOFA_DIRS_DEG]) * DEG
    el = np.array([d[1] for d in SOFA_DIRS_DEG]) * DEG
    irs = SphericalHead().impulse_responses(az, el, SR)  # [M, 2 = (L, R), N]
    spherical = layout.startswith("spherical")
    left, right = (_SPH_LEFT, _SPH_RIGHT) if spherical else (_LEFT, _RIGHT)
    if "per-measurement" in layout:
        swapped = np.array(_ORDER)
        receivers = np.stack(
            [
                np.stack([right if sw else left for sw in swapped], -1),
                np.stack([left if sw else right for sw in swapped], -1),
            ]
        )  # [2, 3, M]
    else:
        swapped = np.full(len(az), "right-first" in layout)
        receivers = np.array([right, left] if swapped[0] else [left, right])
    stored = np.where(swapped[:, None, None], irs[:, ::-1], irs)
    sofa = sofar.Sofa("SimpleFreeFieldHRIR")
    sofa.Data_IR = stored
    sofa.Data_SamplingRate = SR
    sofa.SourcePosition = [[a, e, 1.2] for a, e in SOFA_DIRS_DEG]
    if spherical:
        sofa.ReceiverPosition_Type, sofa.ReceiverPosition_Units = "spherical", "degree, degree, metre"
    sofa.ReceiverPosition = receivers
    path = tmp_path / f"{layout}.sofa"
    sofar.write_sofa(str(path), sofa, compression=0)
    loaded = read_sofa(path)
    np.testing.assert_allclose(loaded.irs.numpy(), irs, atol=1e-12)
    # the +90° source is louder in the left ear
    louder = loaded.irs[loaded.nearest(90 * DEG, 0.0)]
    assert louder[0].square().sum() > louder[1].square().sum()


def test_sofa_bad_receivers_raise_media_error() -> None:
    # sofar refuses to write such files, so the reader's receiver check is called directly
    path = Path("bad.sofa")
    with pytest.raises(MediaError, match=r"bad\.sofa.*3 positions per ear for 2 measurements"):
        hrir_mod._left_first(path, np.zeros((2, 3, 3)), "cartesian", "metre", 2)
    with pytest.raises(MediaError, match=r"must be \[2, 3\] or \[2, 3, M\] \(two ears\)"):
        hrir_mod._left_first(path, np.zeros((3, 3)), "cartesian", "metre", 2)
    with pytest.raises(MediaError, match="unsupported ReceiverPosition_Type 'polar'"):
        hrir_mod._left_first(path, np.zeros((2, 3)), "polar", "metre", 2)


def test_resampling_a_measured_set_keeps_itd_and_gain(tmp_path, noise: torch.Tensor) -> None:
    az = np.array([90.0, 30.0, -60.0]) * DEG
    irs48 = SphericalHead().impulse_responses(az, np.zeros(3), 48000)
    measured = HRIRSet(torch.from_numpy(np.stack([az, np.zeros(3)], -1)), torch.from_numpy(irs48), 48000)
    down = measured.resample(SR)
    exact = SphericalHead().impulse_responses(az, np.zeros(3), SR)
    assert down.model is None and down.sample_rate == SR
    for i, direction in enumerate(az):
        b_res = render_source(noise, direction, 0.0, SR, hrir=down)
        b_exact = torch.fft.irfft(
            torch.fft.rfft(noise, 2 * SR).unsqueeze(0) * torch.fft.rfft(torch.from_numpy(exact[i]), 2 * SR),
            2 * SR,
        )[..., : noise.shape[-1]]
        assert abs(itd(b_res, SR).item() - itd(b_exact, SR).item()) < 5e-6
        assert abs(ild(b_res, SR, band=(100, 6000)).item() - ild(b_exact, SR, band=(100, 6000)).item()) < 0.1
        # gain preserved (scaled by the rate ratio): LF level matches the exact model within 0.1 dB
        lf_res = ild(torch.stack([b_res[0], b_exact[0]]), SR, band=(100, 2000)).item()
        assert abs(lf_res) < 0.1
    # analytic sets regenerate exactly at the new rate
    up = load_hrir("spherical-head", SR).resample(48000)
    assert up.taps == 256
    np.testing.assert_allclose(up.at(30 * DEG, 0.0).numpy(), irs48[1], atol=1e-12)


def test_bad_sofa_paths_raise_media_error(tmp_path) -> None:
    missing = tmp_path / "nope.sofa"
    with pytest.raises(MediaError, match=r"nope\.sofa"):
        load_hrir(missing, SR)
    garbage = tmp_path / "garbage.sofa"
    garbage.write_text("not a sofa file")
    with pytest.raises(MediaError, match=r"garbage\.sofa"):
        read_sofa(garbage)
    with pytest.raises(UnknownNameError, match="spherical-head"):
        load_hrir("spherical-haed", SR)
    assert list_hrirs() == ["mit-kemar", "spherical-head"]


def test_kemar_missing_error_names_debian_package(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(hrir_mod, "KEMAR_SOFA_PATH", tmp_path / "MIT_KEMAR_normal_pinna.sofa")
    with pytest.raises(MediaError, match="apt-get install libmysofa1"):
        hrir_mod.HRIR_SETS.get("mit-kemar")(SR)


@pytest.mark.skipif(not hrir_mod.KEMAR_SOFA_PATH.is_file(), reason="Debian package libmysofa1 not installed")
def test_mit_kemar_left_is_left(noise: torch.Tensor) -> None:
    kemar = load_hrir("mit-kemar", SR)
    assert kemar.irs.shape[0] == 710 and kemar.sample_rate == SR
    assert kemar.directions[:, 1].min().item() == pytest.approx(-40 * DEG)
    left = render_source(noise, 90 * DEG, 0.0, SR, hrir="mit-kemar")
    right = render_source(noise, -90 * DEG, 0.0, SR, hrir="mit-kemar")
    assert ild(left, SR).item() > 6.0  # measured 9.4 dB broadband at 16 kHz
    assert 550e-6 < itd(left, SR).item() < 850e-6  # measured 705 µs
    assert ild(right, SR).item() == pytest.approx(-ild(left, SR).item(), abs=0.05)
    assert itd(right, SR).item() == pytest.approx(-itd(left, SR).item(), abs=5e-6)
