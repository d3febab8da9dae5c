"""Directions, camera rotations and the YT-Ambigen bin convention."""

import math

import numpy as np
import pytest
import torch

from spatialgen.spatial import geometry as g


def np_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(yaw) Ry(-pitch) Rx(roll), written out independently."""
    cz, sz = math.cos(yaw), math.sin(yaw)
    cy, sy = math.cos(-pitch), math.sin(-pitch)
    cx, sx = math.cos(roll), math.sin(roll)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


def test_direction_axes() -> None:
    d = g.direction(torch.tensor([0.0, math.pi / 2, 0.0]), torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(d, torch.eye(3), atol=1e-7)  # front = +x, left = +y, up = +z


def test_angles_round_trip_float64() -> None:
    az = (torch.rand(100, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand(100, dtype=torch.float64) - 0.5) * math.pi * 0.999
    az2, el2 = g.direction_to_angles(g.direction(az, el) * 3.0)
    assert az2.dtype == torch.float64
    assert torch.allclose(az2, az, atol=1e-12) and torch.allclose(el2, el, atol=1e-12)


def test_rotation_matrix_matches_independent_formula() -> None:
    rng = np.random.default_rng(1)
    for yaw, pitch, roll in rng.uniform(-math.pi, math.pi, size=(10, 3)):
        r = g.rotation_matrix(torch.tensor(yaw, dtype=torch.float64), pitch, roll).numpy()
        np.testing.assert_allclose(r, np_rotation(yaw, pitch, roll), atol=1e-12)


def test_camera_pose_semantics() -> None:
    deg = g.DEG
    forward = g.camera_to_world(
        torch.tensor([1.0, 0, 0], dtype=torch.float64), g.rotation_matrix(0.3, 0.2, 0.7)
    )
    assert torch.allclose(forward, g.direction(0.3, 0.2).double(), atol=1e-12)  # R e_x = u(yaw, pitch)
    # Turning the camera left by 30° puts a front source at −30° (to the right).
    az, el = g.direction_to_angles(g.world_to_camera(g.direction(0.0, 0.0), g.rotation_matrix(30 * deg)))
    assert az.item() == pytest.approx(-30 * deg, abs=1e-6) and el.item() == pytest.approx(0, abs=1e-6)
    # Looking up by 20° puts a front source 20° below the view axis.
    az, el = g.direction_to_angles(g.world_to_camera(g.direction(0.0, 0.0), g.rotation_matrix(0.0, 20 * deg)))
    assert el.item() == pytest.approx(-20 * deg, abs=1e-6)
    # Combined pose (−100, 35, 25), source (10, −15): R_camᵀ u computed independently (117.266, −23.829).
    r = g.rotation_matrix(*(torch.tensor(v * deg, dtype=torch.float64) for v in (-100.0, 35.0, 25.0)))
    src = g.direction(torch.tensor(10 * deg, dtype=torch.float64), -15 * deg)
    az, el = g.direction_to_angles(g.world_to_camera(src, r))
    assert math.degrees(az) == pytest.approx(117.266, abs=1e-3)
    assert math.degrees(el) == pytest.approx(-23.829, abs=1e-3)


def test_rotation_batches_and_is_orthonormal() -> None:
    yaw = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    r = g.rotation_matrix(yaw, torch.zeros(1, 5, dtype=torch.float64), 0.4)
    assert r.shape == (7, 5, 3, 3)
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    assert torch.allclose(r @ r.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(7, 5, dtype=torch.float64))


def test_great_circle() -> None:
    assert g.great_circle(0.0, 0.0, math.pi / 2, 0.0).item() == pytest.approx(math.pi / 2, abs=1e-6)
    assert g.great_circle(3.1, 0.0, -3.1, 0.0).item() == pytest.approx(2 * math.pi - 6.2, abs=1e-5)  # seam
    tiny = g.great_circle(torch.tensor(0.0, dtype=torch.float64), 0.0, 1e-9, 0.0).item()
    assert tiny == pytest.approx(1e-9, rel=1e-6)


def test_ambigen_bins() -> None:
    # a=0 is the back (179°), e=0 the top (89°); a=89/90 straddle the front; +azimuth = smaller a.
    az, el = g.ambigen_bins_to_angles(torch.tensor([0, 45]), torch.tensor([0, 89]))
    assert torch.allclose(torch.rad2deg(az), torch.tensor([179.0, 1.0]))
    assert torch.allclose(torch.rad2deg(el), torch.tensor([89.0, -1.0]))
    e = torch.arange(0, 90)
    a = torch.arange(0, 180)
    e2, a2 = g.angles_to_ambigen_bins(*g.ambigen_bins_to_angles(e[:, None], a[None, :]))
    assert torch.equal(e2, e[:, None].expand(90, 180)) and torch.equal(a2, a[None, :].expand(90, 180))
