"""Tests for spatialgen.spatial.projection: equirect ↔ perspective geometry and rendering.

The references here are written from the README's conventions in numpy, independently of the module
(and of spatialgen.spatial.geometry).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.spatial import projection as P

RAD = math.pi / 180.0
HFOV = 90 * RAD


# ---------------------------------------------------------------- numpy references (README conventions)


def np_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(yaw)·Ry(−pitch)·Rx(roll), written out from the standard active matrices."""

    def rz(a: float) -> np.ndarray:
        return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])

    def ry(a: float) -> np.ndarray:
        return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])

    def rx(a: float) -> np.ndarray:
        return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])

    return rz(yaw) @ ry(-pitch) @ rx(roll)


def np_unit(az: np.ndarray | float, el: np.ndarray | float) -> np.ndarray:
    az, el = np.broadcast_arrays(np.asarray(az, dtype=float), np.asarray(el, dtype=float))
    return np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)], axis=-1)


def np_equirect_dirs(height: int, width: int) -> np.ndarray:
    """World directions [H, W, 3] of every equirect pixel centre."""
    lon = np.pi * (1 - 2 * (np.arange(width) + 0.5) / width)
    lat = np.pi / 2 - np.pi * (np.arange(height) + 0.5) / height
    return np_unit(lon[None, :], lat[:, None])


def np_render(
    eq: np.ndarray, yaw: float, pitch: float, roll: float, hfov: float, h: int, w: int
) -> np.ndarray:
    """Step-by-step equirect lookup with bilinear interpolation (columns wrap, rows clamp): [C, h, w]."""
    _, height, width = eq.shape
    f = (w / 2) / math.tan(hfov / 2)
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    v = np.stack([np.full(r.shape, f), -(c + 0.5 - w / 2), -(r + 0.5 - h / 2)], axis=-1)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    vw = v @ np_rotation(yaw, pitch, roll).T
    lon = np.arctan2(vw[..., 1], vw[..., 0])
    lat = np.arcsin(np.clip(vw[..., 2], -1, 1))
    x = (1 - lon / np.pi) * width / 2 - 0.5
    y = np.clip((0.5 - lat / np.pi) * height - 0.5, 0, height - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    wx, wy = x - x0, y - y0
    xa, xb = x0 % width, (x0 + 1) % width
    y1 = np.minimum(y0 + 1, height - 1)
    top = (1 - wx) * eq[:, y0, xa] + wx * eq[:, y0, xb]
    bottom = (1 - wx) * eq[:, y1, xa] + wx * eq[:, y1, xb]
    return (1 - wy) * top + wy * bottom


def smooth_panorama(height: int, width: int) -> np.ndarray:
    """A smooth function of the direction (hence continuous across the seam and poles): [3, H, W]."""
    d = np_equirect_dirs(height, width)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return np.stack([0.5 + 0.4 * np.sin(2 * x + 3 * z), 0.5 + 0.4 * np.cos(3 * y - z), 0.3 + 0.5 * x * y * z])


def gaussian_dots(dots: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """One equirect image per dot direction [N, 3] with a great-circle Gaussian: [N, H, W]."""
    d = np_equirect_dirs(height, width)
    cross = np.linalg.norm(np.cross(d[None], dots[:, None, None, :]), axis=-1)
    dot = np.einsum("hwk,nk->nhw", d, dots)
    gamma = np.arctan2(cross, dot)
    return np.exp(-0.5 * (gamma / sigma) ** 2)


def centroid(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Intensity centroid (row, col) in pixel-centre coordinates of images [N, h, w]."""
    img = images.double().numpy()
    rows, cols = np.arange(img.shape[1]), np.arange(img.shape[2])
    mass = img.sum(axis=(1, 2))
    return (img.sum(2) @ rows) / mass, (img.sum(1) @ cols) / mass


def render_dots(
    dots: np.ndarray, poses: np.ndarray, eq_size: tuple[int, int], size: tuple[int, int], sigma: float
) -> torch.Tensor:
    """Render each dot with its pose [N, 3] (yaw, pitch, roll): channel 0 of the views, [N, h, w]."""
    canvas = torch.from_numpy(gaussian_dots(dots, *eq_size, sigma))
    frames = canvas[:, None].expand(-1, 3, -1, -1)
    yaw, pitch, roll = (torch.from_numpy(poses[:, k]) for k in range(3))
    return P.equirect_to_perspective(frames, yaw, pitch, roll, HFOV, size)[:, 0]


# ---------------------------------------------------------------- rendering puts things where the maths says


def test_gaussian_dots_land_where_world_to_pixel_predicts() -> None:
    rng = np.random.default_rng(1)
    n = 24
    poses = np.stack(
        [rng.uniform(-np.pi, np.pi, n), rng.uniform(-75, 75, n) * RAD, rng.uniform(-60, 60, n) * RAD], axis=1
    )
    # Cameras on the ±180° seam (dots on both sides of it) and near the poles (dots over the pole).
    poses[:8] = np.array(
        [[179, 5, 20], [-179, -10, -40], [178, 0, 50], [-178, 8, -10],
         [30, 80, 10], [-100, -80, -20], [150, 84, 30], [-5, -85, 0]]
    ) * RAD  # fmt: skip
    cam_az = rng.uniform(-25, 25, n) * RAD
    cam_el = rng.uniform(-25, 25, n) * RAD
    cam_az[:8] = np.array([-3, -3, 4, 4, 0, 2, 0, 1]) * RAD
    cam_el[:8] = np.array([0, 0, 0, 0, 10, -10, 8, -6]) * RAD
    dots = np.stack([np_rotation(*p) @ u for p, u in zip(poses, np_unit(cam_az, cam_el))])
    lon = np.degrees(np.arctan2(dots[:4, 1], dots[:4, 0]))
    assert np.all(np.abs(lon) > 173) and np.any(lon > 0) and np.any(lon < 0)
    lat = np.degrees(np.arcsin(dots[4:8, 2]))
    assert np.all(np.abs(lat) > 85), lat

    size = (96, 128)
    views = render_dots(dots, poses, (256, 512), size, sigma=1.5 * RAD)
    row_c, col_c = centroid(views)
    pose_t = [torch.from_numpy(poses[:, k]) for k in range(3)]
    row_p, col_p, visible = P.world_to_pixel(torch.from_numpy(dots), *pose_t, hfov=HFOV, size=size)
    assert visible.all()
    err = np.hypot(row_c - row_p.numpy(), col_c - col_p.numpy())
    assert err.max() < 0.25, err


def test_verified_numbers_left_up_and_roll() -> None:
    """448×896 → 224×224 at 90°; 20° left → left half, 20° up → upper half, roll +30 → up-left."""
    size = (224, 224)
    t20 = math.tan(20 * RAD)
    dots = np_unit(np.array([0.0, 20.0, 0.0, 0.0]) * RAD, np.array([0.0, 0.0, 20.0, 20.0]) * RAD)
    poses = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 30 * RAD]])
    expected_row = np.array([111.5, 111.5, 111.5 - 112 * t20, 111.5 - 112 * math.cos(30 * RAD) * t20])
    expected_col = np.array([111.5, 111.5 - 112 * t20, 111.5, 111.5 - 112 * math.sin(30 * RAD) * t20])
    pose_t = [torch.from_numpy(poses[:, k]) for k in range(3)]
    row_p, col_p, visible = P.world_to_pixel(torch.from_numpy(dots), *pose_t, hfov=HFOV, size=size)
    assert visible.all()
    np.testing.assert_allclose(row_p.numpy(), expected_row, atol=1e-9)
    np.testing.assert_allclose(col_p.numpy(), expected_col, atol=1e-9)
    np.testing.assert_allclose(col_p[1].item(), 70.7, atol=0.1)  # reference: 70.6 (rendered)
    np.testing.assert_allclose([row_p[3].item(), col_p[3].item()], [76.1, 91.1], atol=0.15)

    row_c, col_c = centroid(render_dots(dots, poses, (448, 896), size, sigma=1.5 * RAD))
    np.testing.assert_allclose(row_c, expected_row, atol=0.2)
    np.testing.assert_allclose(col_c, expected_col, atol=0.2)
    assert col_c[1] < 112 and row_c[2] < 112  # left half, upper half
    assert row_c[3] < 111.5 and col_c[3] < 111.5  # roll +30: up-left


def test_turning_the_camera_moves_content_the_other_way() -> None:
    front = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # Camera turns left by 30° ⇒ the front now lies 30° to the right: right half, same row.
    row, col, visible = P.world_to_pixel(front, 30 * RAD, hfov=HFOV, size=(100, 100))
    assert visible and col > 49.5 and abs(row - 49.5) < 1e-9
    # Camera looks up ⇒ the horizon is in the lower half.
    row, col, visible = P.world_to_pixel(front, 0.0, 30 * RAD, hfov=HFOV, size=(100, 100))
    assert visible and row > 49.5 and abs(col - 49.5) < 1e-9
    # Camera turned round ⇒ the front is behind it: not visible and no coordinates.
    row, col, visible = P.world_to_pixel(front, math.pi, hfov=HFOV, size=(100, 100))
    assert not visible and torch.isnan(row) and torch.isnan(col)
    # Camera turned 60° left: in front but outside a 90° view.
    assert not P.world_to_pixel(front, 60 * RAD, hfov=HFOV, size=(100, 100))[2]


def test_image_centre_is_camera_axis() -> None:
    yaw = torch.tensor([0.3, -2.9, 3.1], dtype=torch.float64)
    pitch = torch.tensor([0.0, 0.7, -1.2], dtype=torch.float64)
    roll = torch.tensor([0.5, -0.4, 1.0], dtype=torch.float64)
    size = (60, 80)
    axis = torch.from_numpy(np_unit(yaw.numpy(), pitch.numpy()))
    row, col, visible = P.world_to_pixel(axis, yaw, pitch, roll, hfov=1.2, size=size)
    assert visible.all()
    torch.testing.assert_close(row, torch.full_like(row, 29.5), atol=1e-9, rtol=0)
    torch.testing.assert_close(col, torch.full_like(col, 39.5), atol=1e-9, rtol=0)
    back = P.pixel_to_world(torch.tensor(29.5, dtype=torch.float64), 39.5, yaw, pitch, roll, 1.2, size)
    torch.testing.assert_close(back, axis, atol=1e-12, rtol=0)


# ---------------------------------------------------------------- round trips and pixel maps


def test_pixel_world_round_trip() -> None:
    gen = torch.Generator().manual_seed(3)
    n, size, hfov = 200, (48, 64), 100 * RAD
    row = torch.rand(n, generator=gen, dtype=torch.float64) * size[0] - 0.5
    col = torch.rand(n, generator=gen, dtype=torch.float64) * size[1] - 0.5
    yaw = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    pitch = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * 1.5
    roll = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    world = P.pixel_to_world(row, col, yaw, pitch, roll, hfov, size)
    torch.testing.assert_close(world.norm(dim=-1), torch.ones(n, dtype=torch.float64))
    row2, col2, visible = P.world_to_pixel(world, yaw, pitch, roll, hfov, size)
    assert visible.all()
    torch.testing.assert_close(row2, row, atol=1e-9, rtol=0)
    torch.testing.assert_close(col2, col, atol=1e-9, rtol=0)


def test_pixel_to_world_matches_numpy_reference() -> None:
    size, hfov, pose = (30, 40), 70 * RAD, (2.0, -0.6, 0.9)
    rays = P.perspective_rays(size, hfov, dtype=torch.float64)
    f = 20 / math.tan(35 * RAD)
    r, c = np.meshgrid(np.arange(30), np.arange(40), indexing="ij")
    v = np.stack([np.full(r.shape, f), -(c + 0.5 - 20), -(r + 0.5 - 15)], axis=-1)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    assert rays.shape == (30, 40, 3) and rays.dtype == torch.float64
    np.testing.assert_allclose(rays.numpy(), v, atol=1e-12)
    world = P.pixel_to_world(
        torch.from_numpy(r.astype(float)), torch.from_numpy(c.astype(float)), *pose, hfov, size
    )
    np.testing.assert_allclose(world.numpy(), v @ np_rotation(*pose).T, atol=1e-12)
    # Leftmost column looks left (+y), top row looks up (+z), in the camera frame.
    assert rays[15, 0, 1] > 0 and rays[15, -1, 1] < 0 and rays[0, 20, 2] > 0 and rays[-1, 20, 2] < 0
    assert P.perspective_rays((4, 6)).dtype == torch.float32


def test_equirect_pixel_direction_conventions_and_round_trip() -> None:
    height, width = 64, 128
    left = P.equirect_pixel_to_direction(height / 2 - 0.5, width / 4 - 0.5, height, width)
    torch.testing.assert_close(left, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    right = P.equirect_pixel_to_direction(height / 2 - 0.5, 3 * width / 4 - 0.5, height, width)
    torch.testing.assert_close(right, torch.tensor([0.0, -1.0, 0.0]), atol=1e-6, rtol=0)
    front = P.equirect_pixel_to_direction(height / 2 - 0.5, width / 2 - 0.5, height, width)
    torch.testing.assert_close(front, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    top = P.equirect_pixel_to_direction(0.0, 0.0, height, width)
    assert top[2] > 0.99 and top[0] < 0  # top row is up; the left edge is the back (+π)

    gen = torch.Generator().manual_seed(5)
    row = torch.rand(500, generator=gen, dtype=torch.float64) * (height - 1)
    col = torch.rand(500, generator=gen, dtype=torch.float64) * (width - 0.2) - 0.4
    d = P.equirect_pixel_to_direction(row, col, height, width)
    np.testing.assert_allclose(
        d.numpy(),
        np_unit(
            np.pi * (1 - 2 * (col.numpy() + 0.5) / width), np.pi / 2 - np.pi * (row.numpy() + 0.5) / height
        ),
        atol=1e-12,
    )
    row2, col2 = P.direction_to_equirect_pixel(d, height, width)
    torch.testing.assert_close(row2, row, atol=1e-9, rtol=0)
    torch.testing.assert_close(col2, col, atol=1e-9, rtol=0)
    # Direction → pixel → direction for random (unnormalised) vectors.
    v = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    back = P.equirect_pixel_to_direction(*P.direction_to_equirect_pixel(v, height, width), height, width)
    torch.testing.assert_close(back, v / v.norm(dim=-1, keepdim=True), atol=1e-12, rtol=0)


# ---------------------------------------------------------------- rendering equals the numpy reference


@pytest.mark.parametrize(
    "pose",
    [
        (0.0, 0.0, 0.0),
        (179.5, 10.0, 20.0),
        (-178.0, -30.0, -45.0),
        (-120.0, 60.0, 45.0),
        (45.0, 88.0, 0.0),
        (100.0, -89.0, 70.0),
    ],
)
def test_render_matches_numpy_reference(pose: tuple[float, float, float]) -> None:
    eq = smooth_panorama(48, 96)
    yaw, pitch, roll = (a * RAD for a in pose)
    expected = np_render(eq, yaw, pitch, roll, 100 * RAD, 20, 28)
    out = P.equirect_to_perspective(torch.from_numpy(eq), yaw, pitch, roll, 100 * RAD, (20, 28))
    assert out.shape == (3, 20, 28) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-9)
    out32 = P.equirect_to_perspective(torch.from_numpy(eq).float(), yaw, pitch, roll, 100 * RAD, (20, 28))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), expected, atol=2e-5)


def test_seam_is_seamless() -> None:
    """A panorama that is smooth across ±180° renders smoothly there; without wrapping it would not."""
    eq = torch.from_numpy(smooth_panorama(64, 128))
    view = P.equirect_to_perspective(eq, math.pi, 0.0, 0.0, 60 * RAD, (32, 32))
    jumps = view.diff(dim=-1).abs()
    assert jumps.max() < 3 * jumps.median() + 0.02


# ---------------------------------------------------------------- dtypes, batching, gradients


def test_uint8_path() -> None:
    gen = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (2, 3, 32, 64), generator=gen, dtype=torch.uint8)
    out = P.equirect_to_perspective(frames, 0.4, 0.2, -0.3, HFOV, (16, 24))
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 16, 24)
    ref = P.equirect_to_perspective(frames.float(), 0.4, 0.2, -0.3, HFOV, (16, 24))
    assert (out.float() - ref).abs().max() <= 0.5 + 1e-4  # rounded, not truncated
    flat = torch.full((1, 3, 32, 64), 255, dtype=torch.uint8)
    assert (P.equirect_to_perspective(flat, 1.0, 1.2, 0.0, HFOV, (8, 8)) == 255).all()  # clamped, no wrap


def test_per_frame_poses_equal_single_calls() -> None:
    gen = torch.Generator().manual_seed(11)
    frames = torch.rand(2, 3, 3, 32, 64, generator=gen)
    yaw = (torch.rand(2, 3, generator=gen) * 2 - 1) * math.pi
    pitch = (torch.rand(2, 3, generator=gen) * 2 - 1) * 1.2
    roll = (torch.rand(2, 3, generator=gen) * 2 - 1) * 0.8
    out = P.equirect_to_perspective(frames, yaw, pitch, roll, HFOV, (12, 16))
    assert out.shape == (2, 3, 3, 12, 16)
    for b in range(2):
        for t in range(3):
            single = P.equirect_to_perspective(
                frames[b, t], yaw[b, t].item(), pitch[b, t].item(), roll[b, t].item(), HFOV, (12, 16)
            )
            torch.testing.assert_close(out[b, t], single, atol=1e-6, rtol=0)
    # Per-clip [B, 1] angles broadcast over time; many poses of one panorama broadcast over frames.
    per_clip = P.equirect_to_perspective(frames, yaw[:, :1], 0.0, 0.0, HFOV, (12, 16))
    torch.testing.assert_close(
        per_clip[1, 2],
        P.equirect_to_perspective(frames[1, 2], yaw[1, 0].item(), size=(12, 16)),
        atol=1e-6,
        rtol=0,
    )
    views = P.equirect_to_perspective(frames[0, 0], yaw[0], pitch[0], roll[0], HFOV, (12, 16))
    assert views.shape == (3, 3, 12, 16)
    torch.testing.assert_close(views[0], out[0, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        views[2], P.equirect_to_perspective(frames[0, 0], yaw[0, 2], pitch[0, 2], roll[0, 2], HFOV, (12, 16))
    )


def test_gradients_reach_frames_and_angles() -> None:
    frames = torch.from_numpy(smooth_panorama(16, 32)).requires_grad_()
    yaw = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = P.equirect_to_perspective(frames, yaw, 0.1, 0.0, HFOV, (6, 6))
    weights = torch.linspace(0, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
    (out * weights).sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0
    assert yaw.grad is not None and torch.isfinite(yaw.grad) and yaw.grad != 0
    small = torch.rand(3, 6, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: P.equirect_to_perspective(x, 2.5, 0.4, 0.2, HFOV, (4, 5)), (small,)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    eq = torch.from_numpy(smooth_panorama(64, 128)).float()
    yaw = torch.tensor([0.2, 3.1, -2.0])
    cpu = P.equirect_to_perspective(eq, yaw, 0.3, 0.1, HFOV, (32, 32))
    gpu = P.equirect_to_perspective(eq.cuda(), yaw.cuda(), 0.3, 0.1, HFOV, (32, 32))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hfov": math.pi}, "hfov"),
        ({"hfov": 120.0}, "hfov"),
        ({"hfov": 0.0}, "hfov"),
        ({"size": (0, 10)}, "size"),
        ({"size": (10,)}, "size"),
        ({"size": (10.0, 10)}, "size"),
        ({"yaw": torch.zeros(5)}, "broadcast"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"yaw": 0.0, "hfov": HFOV, "size": (8, 8)} | kwargs
    with pytest.raises(ValueError, match=match):
        P.equirect_to_perspective(torch.zeros(2, 3, 8, 16), **args)


@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(2, 4, 8, 16),
        torch.zeros(8, 16),
        torch.zeros(3, 8, 16, dtype=torch.int32),
        np.zeros((3, 8, 16)),
    ],
)
def test_bad_frames(frames: object) -> None:
    with pytest.raises(ValueError, match="frames"):
        P.equirect_to_perspective(frames, 0.0)  # type: ignore[arg-type]


def test_bad_geometry_inputs() -> None:
    with pytest.raises(ValueError, match="direction"):
        P.world_to_pixel(torch.zeros(4, 2), 0.0)
    with pytest.raises(ValueError, match="hfov"):
        P.pixel_to_world(1.0, 1.0, 0.0, hfov=-1.0)
    with pytest.raises(ValueError, match="hfov"):
        P.perspective_rays((4, 4), math.radians(180))
    with pytest.raises(ValueError, match="height, width"):
        P.equirect_pixel_to_direction(0.0, 0.0, 0, 10)
