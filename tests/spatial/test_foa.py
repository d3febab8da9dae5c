"""FOA encoding, rotation and format conversion against numpy references written from the formulas.

Frame: +x front, +y left, +z up; AmbiX [W, Y, Z, X] SN3D; camera pose R = Rz(yaw) Ry(-pitch) Rx(roll)
and the camera hears R^T applied to the dipole (the README's conventions).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial import foa

RNG = np.random.default_rng(1234)
SQ2, SQ3 = math.sqrt(2.0), math.sqrt(3.0)


# ---------------------------------------------------------------- numpy references (from the formulas)
def unit_np(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    """u(φ, θ) = (cos φ cos θ, sin φ cos θ, sin θ), stacked on the last axis."""
    az, el = np.broadcast_arrays(np.asarray(az, float), np.asarray(el, float))
    return np.stack((np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)), axis=-1)


def encode_np(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """AmbiX plane wave [s, s·uy, s·uz, s·ux]; u [..., 3] broadcasts against s [..., T] per item."""
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    return np.stack((s * np.ones_like(ux), s * uy, s * uz, s * ux), axis=-2)


def pose_np(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera pose Rz(yaw) @ Ry(-pitch) @ Rx(roll) with standard active right-handed matrices."""

    def rz(a: float) -> np.ndarray:
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])

    def ry(a: float) -> np.ndarray:
        return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])

    def rx(a: float) -> np.ndarray:
        return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])

    return rz(yaw) @ ry(-pitch) @ rx(roll)


def doa_deg(foa_np: np.ndarray) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of the dipole of a plane wave with a positive signal."""
    x, y, z = foa_np[3].sum(), foa_np[1].sum(), foa_np[2].sum()
    return math.degrees(math.atan2(y, x)), math.degrees(math.atan2(z, math.hypot(x, y)))


def rad(deg: float) -> float:
    return math.radians(deg)


# ---------------------------------------------------------------------------------------------- encode
def test_encode_matches_plane_wave_formula_per_item() -> None:
    s = RNG.standard_normal((3, 50))
    az, el = RNG.uniform(-math.pi, math.pi, 3), RNG.uniform(-1.5, 1.5, 3)
    out = foa.encode(torch.from_numpy(s), torch.from_numpy(az), torch.from_numpy(el))
    assert out.shape == (3, 4, 50) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), encode_np(s, unit_np(az, el)[:, None, :]), rtol=0, atol=1e-14)


def test_encode_left_source_lands_in_y_and_up_source_in_z() -> None:
    s = torch.ones(4, dtype=torch.float64)
    left = foa.encode(s, rad(90), 0.0)
    up = foa.encode(s, 0.0, rad(90))
    np.testing.assert_allclose(left[:, 0].numpy(), [1, 1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(up[:, 0].numpy(), [1, 0, 1, 0], atol=1e-15)


def test_encode_moving_source_per_sample() -> None:
    t = 40
    s = RNG.standard_normal((2, t))
    az = np.linspace(-3.0, 3.0, t)[None, :] + np.array([[0.0], [0.3]])
    el = np.linspace(-0.5, 0.8, t)[None, :].repeat(2, 0)
    out = foa.encode(torch.from_numpy(s), torch.from_numpy(az), torch.from_numpy(el))
    u = unit_np(az, el)  # [2, T, 3], one direction per sample
    ref = np.stack((s, s * u[..., 1], s * u[..., 2], s * u[..., 0]), axis=-2)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-14)


def test_encode_one_signal_many_directions_keeps_float32() -> None:
    s = torch.randn(1, 30)
    az = torch.tensor([0.0, rad(90), rad(-90)])
    out = foa.encode(s, az, 0.0)
    assert out.shape == (3, 4, 30) and out.dtype == torch.float32
    torch.testing.assert_close(out[1, 1], s[0], rtol=0, atol=1e-6)  # left: Y = s
    torch.testing.assert_close(out[2, 1], -s[0], rtol=0, atol=1e-6)  # right: Y = -s


# ---------------------------------------------------------------------------------------------- rotate
@pytest.mark.parametrize("seed", range(5))
def test_rotate_plane_wave_equals_encoding_at_rotated_direction(seed: int) -> None:
    rng = np.random.default_rng(seed)
    yaw, pitch, roll = rng.uniform(-math.pi, math.pi), rng.uniform(-1.5, 1.5), rng.uniform(-math.pi, math.pi)
    az, el = rng.uniform(-math.pi, math.pi), rng.uniform(-1.5, 1.5)
    s = rng.standard_normal(64)
    world = foa.encode(torch.from_numpy(s), az, el)
    cam = foa.rotate(world, yaw, pitch, roll)
    u_cam = pose_np(yaw, pitch, roll).T @ unit_np(az, el)
    np.testing.assert_allclose(cam.numpy(), encode_np(s, u_cam), rtol=0, atol=1e-12)
    pose = foa.rotation_matrix(torch.tensor(yaw, dtype=torch.float64), pitch, roll)
    explicit = foa.rotate_matrix(world, pose)
    np.testing.assert_allclose(explicit.numpy(), cam.numpy(), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("source", "pose", "expected"),
    [
        ((0, 0), (30, 0, 0), (-30.0, 0.0)),  # turn left -> front source moves right
        ((0, 0), (0, 20, 0), (0.0, -20.0)),  # look up -> front source moves down
        ((90, 0), (0, 0, 30), (90.0, -30.0)),  # roll (left ear up) -> left source moves down
        ((10, -15), (-100, 35, 25), (117.266, -23.829)),  # combined pose, R_camᵀ u computed independently
        ((90, 0), (90, 0, 0), (0.0, 0.0)),  # camera turned to the left source sees it in front
    ],
)
def test_rotate_verified_directions(source: tuple, pose: tuple, expected: tuple) -> None:
    world = foa.encode(torch.ones(8, dtype=torch.float64), rad(source[0]), rad(source[1]))
    cam = foa.rotate(world, *(rad(a) for a in pose))
    az, el = doa_deg(cam.numpy())
    assert az == pytest.approx(expected[0], abs=1e-3)
    assert el == pytest.approx(expected[1], abs=1e-3)


def test_camera_looking_at_source_with_roll_sees_it_centred() -> None:
    world = foa.encode(torch.ones(4, dtype=torch.float64), rad(-120), rad(60))
    az, el = doa_deg(foa.rotate(world, rad(-120), rad(60), rad(33)).numpy())
    assert abs(az) < 1e-9 and abs(el) < 1e-9


def test_foa_rotation_matrix_layout_and_action() -> None:
    r = pose_np(0.3, -0.7, 1.1)
    m = foa.foa_rotation_matrix(torch.from_numpy(r)).numpy()
    acn = {0: 3, 1: 1, 2: 2}  # x, y, z -> AmbiX slot
    ref = np.zeros((4, 4))
    ref[0, 0] = 1.0
    for i in range(3):
        for j in range(3):
            ref[acn[i], acn[j]] = r[i, j]
    np.testing.assert_array_equal(m, ref)
    x = torch.from_numpy(RNG.standard_normal((2, 4, 16)))
    cam = foa.foa_rotation_matrix(torch.from_numpy(r.T)) @ x  # the camera view uses R^T
    torch.testing.assert_close(cam, foa.rotate(x, 0.3, -0.7, 1.1), rtol=0, atol=1e-14)


def test_rotation_matrix_is_geometry_pose() -> None:
    r = foa.rotation_matrix(torch.tensor(0.4, dtype=torch.float64), 0.2, -0.9)
    np.testing.assert_allclose(r.numpy(), pose_np(0.4, 0.2, -0.9), rtol=0, atol=1e-15)


def test_rotate_per_item_angles_broadcast_over_batch() -> None:
    x = torch.from_numpy(RNG.standard_normal((3, 4, 20)))
    yaw = torch.tensor([0.1, -2.0, 3.0], dtype=torch.float64)
    out = foa.rotate(x, yaw, 0.25, -0.5)
    assert torch.equal(out[:, 0], x[:, 0])  # W copied exactly on the static (4x4) path too
    for b in range(3):
        torch.testing.assert_close(out[b], foa.rotate(x[b], float(yaw[b]), 0.25, -0.5), rtol=0, atol=1e-15)


def test_constant_per_sample_angles_equal_static_rotation() -> None:
    x = torch.from_numpy(RNG.standard_normal((2, 4, 100)))
    full = torch.full((2, 100), 0.7, dtype=torch.float64)
    per_sample = foa.rotate(x, full, -0.3 * torch.ones(2, 100, dtype=torch.float64), 1.2)
    static = foa.rotate(x, 0.7, -0.3, 1.2)
    torch.testing.assert_close(per_sample, static, rtol=0, atol=1e-15)


def test_per_sample_rotation_matches_numpy_pose_per_sample() -> None:
    t = 30
    x = RNG.standard_normal((4, t))
    yaw, pitch, roll = (RNG.uniform(-3, 3, t) for _ in range(3))
    out = foa.rotate(torch.from_numpy(x), *(torch.from_numpy(a) for a in (yaw, pitch, roll))).numpy()
    for n in range(t):
        d = np.array([x[3, n], x[1, n], x[2, n]])
        d_cam = pose_np(yaw[n], pitch[n], roll[n]).T @ d
        np.testing.assert_allclose(out[:, n], [x[0, n], d_cam[1], d_cam[2], d_cam[0]], rtol=0, atol=1e-13)
    # the explicit per-sample matrix path [T, 3, 3] agrees
    poses = torch.from_numpy(np.stack([pose_np(yaw[n], pitch[n], roll[n]) for n in range(t)]))
    np.testing.assert_allclose(foa.rotate_matrix(torch.from_numpy(x), poses).numpy(), out, rtol=0, atol=1e-14)


def test_rotation_keeps_w_exactly_and_preserves_dipole_energy_per_sample() -> None:
    x = torch.from_numpy(RNG.standard_normal((2, 4, 500)))
    traj = foa.interpolate_trajectory(
        torch.tensor([0.0, 0.01, 0.03]),
        torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 0.5], [-1.0, 0.4, 3.0]], dtype=torch.float64),
        500,
        16000,
    )
    out = foa.rotate(x, traj[0].expand(2, -1), traj[1].expand(2, -1), traj[2].expand(2, -1))
    assert torch.equal(out[:, 0], x[:, 0])
    torch.testing.assert_close(out[:, 1:].square().sum(1), x[:, 1:].square().sum(1), rtol=0, atol=1e-12)


def test_trajectory_corners_do_not_click() -> None:
    sr, n = 16000, 3200
    tone = torch.sin(2 * math.pi * 110 * torch.arange(n, dtype=torch.float64) / sr)
    world = foa.encode(tone, rad(40), rad(10))
    # fast piecewise-linear pan with sharp corners (≈1800°/s yaw), at 25 video frames per second
    times = torch.tensor([0.0, 0.05, 0.1, 0.15, 0.2])
    keys = torch.tensor(
        [[0, 0, 0], [90, 20, 0], [-30, -20, 45], [60, 0, -30], [0, 0, 0]], dtype=torch.float64
    )
    yaw, pitch, roll = foa.interpolate_trajectory(times, torch.deg2rad(keys), n, sr)
    cam = foa.rotate(world, yaw, pitch, roll)
    tone_jump = tone.diff().abs().max()
    assert cam.diff(dim=-1).abs().max() <= 1.1 * tone_jump
    # block switching once per video frame (640 samples) does click: the bound above can fail
    starts = torch.arange(0, n, 640)
    blocky = torch.cat(
        [foa.rotate(world[:, s : s + 640], yaw[s], pitch[s], roll[s]) for s in starts.tolist()], dim=-1
    )
    assert blocky.diff(dim=-1).abs().max() > 3 * tone_jump


# ---------------------------------------------------------------------------------- trajectory
def test_interpolate_trajectory_matches_np_interp() -> None:
    times = np.array([0.0, 0.013, 0.02, 0.05])
    keys = RNG.uniform(-3, 3, (4, 3))
    sr, n = 1000.0, 70  # runs past the last keyframe: end value is held
    out = foa.interpolate_trajectory(torch.from_numpy(times), torch.from_numpy(keys), n, sr).numpy()
    assert out.shape == (3, n)
    t = np.arange(n) / sr
    for c in range(3):
        np.testing.assert_allclose(out[c], np.interp(t, times, keys[:, c]), rtol=0, atol=1e-13)
    one = foa.interpolate_trajectory(torch.from_numpy(times + 0.01), torch.from_numpy(keys[:, 0]), n, sr)
    assert one.shape == (n,)
    np.testing.assert_allclose(one.numpy(), np.interp(t, times + 0.01, keys[:, 0]), rtol=0, atol=1e-13)
    assert one[0] == keys[0, 0]  # held before the first keyframe


def test_interpolate_trajectory_does_not_unwrap_yaw() -> None:
    keys = torch.deg2rad(torch.tensor([170.0, -170.0], dtype=torch.float64))
    out = foa.interpolate_trajectory(torch.tensor([0.0, 1.0]), keys, 11, 10)
    assert torch.rad2deg(out[5]).item() == pytest.approx(0.0, abs=1e-12)  # long way through the front


def test_interpolate_trajectory_single_keyframe_and_errors() -> None:
    out = foa.interpolate_trajectory(torch.tensor([0.5]), torch.tensor([[0.1, 0.2, 0.3]]), 5, 8000)
    torch.testing.assert_close(out, torch.tensor([[0.1] * 5, [0.2] * 5, [0.3] * 5]))
    with pytest.raises(ValueError, match="times"):
        foa.interpolate_trajectory(torch.tensor([0.0, 0.0]), torch.zeros(2), 5, 8000)
    with pytest.raises(ValueError, match="keyframes"):
        foa.interpolate_trajectory(torch.tensor([0.0, 1.0]), torch.zeros(3), 5, 8000)


# ---------------------------------------------------------------------------------- conversions
def test_ambix_fuma_round_trip_and_plane_wave_table() -> None:
    x = torch.from_numpy(RNG.standard_normal((2, 4, 33)))
    torch.testing.assert_close(foa.fuma_to_ambix(foa.ambix_to_fuma(x)), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(foa.ambix_to_fuma(foa.fuma_to_ambix(x)), x, rtol=0, atol=1e-12)
    s, az, el = RNG.standard_normal(20), 0.8, -0.4
    ux, uy, uz = unit_np(az, el)
    fuma = foa.ambix_to_fuma(foa.encode(torch.from_numpy(s), az, el)).numpy()
    np.testing.assert_allclose(fuma, np.stack((s / SQ2, s * ux, s * uy, s * uz)), rtol=0, atol=1e-14)


def test_sn3d_n3d_round_trip_and_plane_wave() -> None:
    x = torch.from_numpy(RNG.standard_normal((3, 4, 17)))
    torch.testing.assert_close(foa.n3d_to_sn3d(foa.sn3d_to_n3d(x)), x, rtol=0, atol=1e-12)
    s, az, el = RNG.standard_normal(20), -2.0, 0.9
    ux, uy, uz = unit_np(az, el)
    n3d = foa.sn3d_to_n3d(foa.encode(torch.from_numpy(s), az, el)).numpy()
    np.testing.assert_allclose(
        n3d, np.stack((s, SQ3 * s * uy, SQ3 * s * uz, SQ3 * s * ux)), rtol=0, atol=1e-14
    )


# ---------------------------------------------------------------------------------- errors, dtype, grads
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(2, 3, 10), "4 FOA channels"),
        (torch.tensor([[[0.0, float("nan")]] * 4]), "NaN"),
        (torch.zeros(1, 4, 0), "zero samples"),
        (torch.zeros(10), "FOA"),
        (torch.zeros(4, 10, dtype=torch.int16), "floating"),
    ],
)
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: foa.rotate(x, 0.1),
        lambda x: foa.rotate_matrix(x, torch.eye(3)),
        foa.ambix_to_fuma,
        foa.fuma_to_ambix,
        foa.sn3d_to_n3d,
        foa.n3d_to_sn3d,
    ],
)
def test_bad_foa_raises_invalid_audio_naming_argument(fn, bad: torch.Tensor, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=rf"^x: .*{match}") as info:
        fn(bad)
    assert "\n" not in str(info.value)


def test_check_foa_names_the_argument_and_returns_input() -> None:
    x = torch.zeros(4, 8)
    assert foa.check_foa(x, "mix") is x
    with pytest.raises(InvalidAudioError, match=r"^mix: .*4 FOA channels"):
        foa.check_foa(torch.zeros(3, 8), "mix")
    with pytest.raises(InvalidAudioError, match=r"^mix: expected a torch.Tensor"):
        foa.check_foa(np.zeros((4, 8)), "mix")


def test_encode_bad_signal_and_angles() -> None:
    with pytest.raises(InvalidAudioError, match=r"^signal: .*zero samples"):
        foa.encode(torch.zeros(2, 0), 0.0, 0.0)
    with pytest.raises(InvalidAudioError, match=r"^signal: .*NaN"):
        foa.encode(torch.tensor([1.0, float("inf")]), 0.0, 0.0)
    with pytest.raises(ValueError, match=r"^azimuth: .*NaN"):
        foa.encode(torch.zeros(5), float("nan"), 0.0)
    with pytest.raises(ValueError, match=r"^elevation: .*per-sample"):
        foa.encode(torch.zeros(2, 5), 0.0, torch.zeros(2, 4))  # 4 != 5 samples
    with pytest.raises(ValueError, match="do not broadcast"):
        foa.encode(torch.zeros(2, 5), torch.zeros(3), 0.0)  # 3 items for a batch of 2


def test_rotate_bad_angle_and_matrix_shapes() -> None:
    x = torch.zeros(2, 4, 6)
    with pytest.raises(ValueError, match=r"^yaw: .*per-sample"):
        foa.rotate(x, torch.zeros(2, 6, 1))
    with pytest.raises(ValueError, match="do not broadcast"):
        foa.rotate(x, torch.zeros(3, 6))
    with pytest.raises(ValueError, match=r"^rotation: "):
        foa.rotate_matrix(x, torch.eye(4))
    with pytest.raises(ValueError, match=r"^rotation: .*6 samples"):
        foa.rotate_matrix(x, torch.eye(3).expand(2, 5, 3, 3))


def test_rotate_keeps_dtype_and_device() -> None:
    x = torch.randn(2, 4, 10)
    out = foa.rotate(x, torch.tensor([0.1, 0.2], dtype=torch.float64), 0.3)
    assert out.dtype == torch.float32 and out.device == x.device and out.shape == x.shape
    for fn in (foa.ambix_to_fuma, foa.fuma_to_ambix, foa.sn3d_to_n3d, foa.n3d_to_sn3d):
        assert fn(x).dtype == torch.float32


def test_gradcheck_rotate_per_sample_and_static() -> None:
    x = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    yaw = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    pitch = torch.randn(2, dtype=torch.float64, requires_grad=True)
    roll = torch.randn((), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(foa.rotate, (x, yaw, pitch, roll))
    assert torch.autograd.gradcheck(foa.rotate, (x, yaw[:, 0], pitch, roll))  # static 4x4 path
    r = foa.rotation_matrix(torch.tensor(0.3, dtype=torch.float64), 0.1, 0.2).requires_grad_(True)
    assert torch.autograd.gradcheck(foa.rotate_matrix, (x, r))


def test_gradcheck_encode_and_trajectory() -> None:
    s = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    az = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    el = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(foa.encode, (s, az, el))
    keys = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    times = torch.tensor([0.0, 0.002, 0.004], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda k: foa.interpolate_trajectory(times, k, 9, 1000), (keys,))
