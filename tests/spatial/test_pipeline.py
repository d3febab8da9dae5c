"""Cross-module physics: encode -> rotate -> intensity DOA, and image/audio agreement."""

import math

import pytest
import torch

from spatialgen.spatial import doa, foa, geometry, projection

SR = 16_000


def random_pose(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u = torch.rand(3, generator=gen, dtype=torch.float64)
    return (u[0] * 2 - 1) * math.pi, (u[1] - 0.5) * math.pi * 0.9, (u[2] * 2 - 1) * math.pi / 2


@pytest.mark.parametrize("seed", range(6))
def test_rotated_source_doa_matches_camera_direction(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    az = (torch.rand((), generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand((), generator=gen, dtype=torch.float64) - 0.5) * 0.9 * math.pi
    noise = torch.randn(SR // 2, generator=gen, dtype=torch.float64)
    yaw, pitch, roll = random_pose(gen)
    camera_foa = foa.rotate(foa.encode(noise, az, el), yaw, pitch, roll)
    expected = geometry.world_to_camera(
        geometry.direction(az, el), geometry.rotation_matrix(yaw, pitch, roll)
    )
    est_az, est_el = doa.intensity_doa(camera_foa, SR)
    error = geometry.great_circle_vectors(geometry.direction(est_az, est_el), expected)
    assert math.degrees(error) < 0.5


def test_moving_camera_doa_tracks_trajectory() -> None:
    """A static world source seen from a camera on a piecewise-linear yaw/pitch/roll trajectory."""
    gen = torch.Generator().manual_seed(7)
    seconds, block = 2.0, 0.1
    n = int(SR * seconds)
    times = torch.tensor([0.0, 0.7, 1.3, 2.0], dtype=torch.float64)
    keys = torch.tensor(
        [[0.0, 0.0, 0.0], [0.6, 0.2, -0.1], [-0.3, -0.2, 0.3], [0.2, 0.1, 0.0]], dtype=torch.float64
    )
    yaw, pitch, roll = foa.interpolate_trajectory(times, keys, n, SR)
    src_az, src_el = 0.4, 0.1
    world = foa.encode(torch.randn(n, generator=gen, dtype=torch.float64), src_az, src_el)
    est_az, est_el = doa.intensity_doa(foa.rotate(world, yaw, pitch, roll), SR, per_frame=block, n_fft=256)
    centres = ((torch.arange(est_az.shape[-1]) + 0.5) * block * SR).long().clamp(max=n - 1)
    pose = geometry.rotation_matrix(yaw[centres], pitch[centres], roll[centres])
    expected = geometry.world_to_camera(geometry.direction(src_az, src_el).double(), pose)
    errors = torch.rad2deg(geometry.great_circle_vectors(geometry.direction(est_az, est_el), expected))
    assert errors.max() < 1.5  # the pose changes by up to ~1° within a 0.1 s block
    assert errors.median() < 0.5


def test_image_left_half_is_positive_azimuth_and_left_ear() -> None:
    """A world source that the camera sees in the left half of the image has camera azimuth > 0."""
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        yaw, pitch, roll = random_pose(gen)
        cam_dir = geometry.direction(torch.empty(()).uniform_(-0.6, 0.6, generator=gen).double(), 0.1)
        world_dir = geometry.camera_to_world(cam_dir, geometry.rotation_matrix(yaw, pitch, roll))
        _, col, visible = projection.world_to_pixel(world_dir, yaw, pitch, roll, math.pi / 2, (90, 160))
        cam_az, _ = doa.intensity_doa(
            foa.rotate(
                foa.encode(torch.randn(4000, dtype=torch.float64), *geometry.direction_to_angles(world_dir)),
                yaw,
                pitch,
                roll,
            ),
            SR,
        )
        assert bool(visible)
        assert (col.item() < 80) == (cam_az.item() > 0)
