"""The long-signal paths: cheap finite checks, huge-page output buffers, in-place rotation chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial import buffers, foa
from spatialgen.spatial.binaural import render_foa
from spatialgen.spatial.checks import all_finite, check_foa

RNG = np.random.default_rng(7)


def camera_np(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Per-sample R = Rz(yaw) Ry(-pitch) Rx(roll), shape [..., 3, 3], from the standard matrices."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(-pitch),
        np.sin(-pitch),
        np.cos(roll),
        np.sin(roll),
    )
    one, zero = np.ones_like(cy), np.zeros_like(cy)
    rz = np.stack([cy, -sy, zero, sy, cy, zero, zero, zero, one], -1).reshape(*cy.shape, 3, 3)
    ry = np.stack([cp, zero, sp, zero, one, zero, -sp, zero, cp], -1).reshape(*cy.shape, 3, 3)
    rx = np.stack([one, zero, zero, zero, cr, -sr, zero, sr, cr], -1).reshape(*cy.shape, 3, 3)
    return rz @ ry @ rx


def view_np(x: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Camera view: W kept, dipole d = (X, Y, Z) -> R^T d; x [..., 4, T], pose [..., T, 3, 3]."""
    d = np.stack([x[..., 3, :], x[..., 1, :], x[..., 2, :]], -1)  # [..., T, 3]
    cam = np.einsum("...tji,...tj->...ti", pose, d)
    w = np.broadcast_to(x[..., 0, :], cam.shape[:-1])
    return np.stack([w, cam[..., 1], cam[..., 2], cam[..., 0]], -2)


# ------------------------------------------------------------------------------------------- finite
def test_all_finite_finds_a_single_nan_or_inf_anywhere() -> None:
    x = torch.zeros(3, 4, 50_001)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[2, 3, -1] = bad
        assert not all_finite(y)
    y = x.clone()
    y[0, 0, 0], y[1, 1, 1] = float("inf"), -float("inf")  # the sum is NaN, still caught
    assert not all_finite(y)


def test_all_finite_is_exact_when_finite_values_overflow_the_sum() -> None:
    big = torch.full((4, 8), 3e38)  # finite float32, the sum overflows to inf
    assert not bool(torch.isfinite(big.sum())) and all_finite(big)
    assert all_finite(torch.full((4, 100), 60000.0, dtype=torch.float16))
    assert all_finite(torch.arange(5)) and all_finite(torch.empty(0))
    assert check_foa(big, "x") is big  # no false alarm at the user-facing boundary
    big[1, 3] = float("nan")
    with pytest.raises(InvalidAudioError, match=r"^x: contains NaN or Inf values; clean or drop this audio$"):
        check_foa(big, "x")


def test_nan_in_a_long_signal_is_one_line_at_each_boundary() -> None:
    x = torch.zeros(4, 100_000)
    x[2, 77_777] = float("nan")
    for fn in (lambda a: foa.rotate(a, 0.1), lambda a: render_foa(a, 16000)):
        with pytest.raises(InvalidAudioError, match=r"^x: contains NaN or Inf values"):
            fn(x)
    with pytest.raises(ValueError, match=r"^yaw: contains NaN or Inf"):
        foa.rotate(torch.zeros(4, 100_000), torch.full((100_000,), float("nan")))


# ------------------------------------------------------------------------------------------ buffers
def test_empty_gives_plain_writable_tensors_of_the_requested_kind() -> None:
    large = buffers.empty((2, 4, 1 << 19), torch.float32, "cpu")  # 16 MiB: NumPy-allocated
    small = buffers.empty((4, 10), torch.float64, "cpu")
    odd = buffers.empty((2, 1 << 21), torch.bfloat16, "cpu")  # no NumPy dtype: torch.empty
    for t, shape, dtype in ((large, (2, 4, 1 << 19), torch.float32), (small, (4, 10), torch.float64)):
        assert t.shape == shape and t.dtype == dtype and t.device.type == "cpu" and t.is_contiguous()
    assert odd.dtype == torch.bfloat16
    large.fill_(1.5)
    assert float(large.sum()) == 1.5 * large.numel()


# ----------------------------------------------------------------------------------------- rotation
def test_static_fast_path_matches_numpy_with_broadcast_batches() -> None:
    t = 6000  # above the 4x4-matmul threshold: the per-item 3x3 BLAS path
    x = RNG.standard_normal((1, 4, t))
    yaw, pitch = np.array([0.3, -2.0, 2.5]), np.array([0.4, 0.0, -1.1])
    got = foa.rotate(torch.from_numpy(x), torch.from_numpy(yaw), torch.from_numpy(pitch), 0.7)
    assert got.shape == (3, 4, t)
    pose = camera_np(yaw, pitch, np.full(3, 0.7))[:, None].repeat(t, axis=1)
    np.testing.assert_allclose(got.numpy(), view_np(x, pose), rtol=0, atol=1e-13)
    m = torch.from_numpy(camera_np(np.array(0.3), np.array(0.4), np.array(0.7)))
    np.testing.assert_allclose(foa.rotate_matrix(torch.from_numpy(x), m).numpy(), got[:1].numpy(), atol=1e-13)


@pytest.mark.parametrize("zero_angles", [(), ("pitch",), ("pitch", "roll"), ("yaw",)])
def test_per_sample_chunks_match_numpy_and_the_autograd_path(
    monkeypatch: pytest.MonkeyPatch, zero_angles: tuple[str, ...]
) -> None:
    monkeypatch.setattr(foa, "_CHUNK_SAMPLES", 1000)  # several chunks and a partial last one
    t = 3500
    x = RNG.standard_normal((2, 4, t))
    angles = {k: RNG.uniform(-3, 3, (2, t)) for k in ("yaw", "pitch", "roll")}
    angles["roll"] = angles["roll"][:1, :1] * np.ones((1, 1))  # a per-item angle mixed with per-sample ones
    args = {k: (0.0 if k in zero_angles else torch.from_numpy(v)) for k, v in angles.items()}
    got = foa.rotate(torch.from_numpy(x), **args)
    ref_angles = [
        np.zeros((2, t)) if k in zero_angles else np.broadcast_to(v, (2, t)) for k, v in angles.items()
    ]
    np.testing.assert_allclose(got.numpy(), view_np(x, camera_np(*ref_angles)), rtol=0, atol=1e-12)
    assert torch.equal(got[:, 0], torch.from_numpy(x[:, 0]))
    with torch.enable_grad():  # the differentiable 9-entry path agrees
        xg = torch.from_numpy(x).requires_grad_(True)
        torch.testing.assert_close(foa.rotate(xg, **args).detach(), got, rtol=0, atol=1e-12)


def test_float32_fast_paths_keep_dtype_and_accuracy() -> None:
    t = 70_000
    x = torch.from_numpy(RNG.standard_normal((4, t))).float()
    yaw = torch.linspace(-3.0, 3.0, t)
    per_sample = foa.rotate(x, yaw, 0.3)
    static = foa.rotate(x, 1.0, 0.3, -0.2)
    assert per_sample.dtype == static.dtype == torch.float32
    pose = camera_np(yaw.double().numpy(), np.full(t, 0.3), np.zeros(t))
    np.testing.assert_allclose(per_sample.numpy(), view_np(x.double().numpy(), pose), rtol=0, atol=2e-5)
    pose = camera_np(np.full(t, 1.0), np.full(t, 0.3), np.full(t, -0.2))
    np.testing.assert_allclose(static.numpy(), view_np(x.double().numpy(), pose), rtol=0, atol=2e-5)


def test_empty_on_other_devices_is_torch_empty() -> None:
    t = buffers.empty((4, 1 << 21), torch.float32, "meta")  # 32 MiB, not CPU: never NumPy
    assert t.device.type == "meta" and t.shape == (4, 1 << 21)
