"""Equirectangular (360°) frames ↔ pinhole perspective views, and the pixel ↔ direction maps.

Conventions (the README's conventions; see :mod:`spatialgen.spatial.geometry`), frame +x front, +y left,
+z up:

- Equirect ``H × W``: the centre of pixel ``(i, j)`` is at longitude ``π(1 − 2(j + ½)/W)`` (+π at the
  left edge, 0 in the middle, +90° = left at ``W/4``) and latitude ``π/2 − π(i + ½)/H`` (up at the
  top). Longitude is the ambisonic azimuth, so +azimuth is left of the panorama's centre.
- Perspective ``h × w`` with horizontal field of view ``hfov``: focal length ``f = (w/2)/tan(hfov/2)``;
  pixel ``(r, c)`` looks along ``normalize(f, −(c + ½ − w/2), −(r + ½ − h/2))`` in the camera frame
  (x forward, y left, z up), so columns grow to the right and rows downward.
- Camera pose ``R = Rz(yaw)·Ry(−pitch)·Rx(roll)`` (:func:`~spatialgen.spatial.geometry.rotation_matrix`):
  camera rays go to the world with ``R``, world directions come to the camera with ``Rᵀ``.

Pixel coordinates are continuous and refer to pixel centres: ``(0, 0)`` is the centre of the top-left
pixel, ``(h − 1)/2, (w − 1)/2`` the image centre. Angles are radians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from spatialgen.spatial import geometry
from spatialgen.spatial.geometry import (
    AngleLike,
    camera_to_world,
    direction_to_angles,
    rotation_matrix,
    world_to_camera,
)

__all__ = [
    "direction_to_equirect_pixel",
    "equirect_pixel_to_direction",
    "equirect_to_perspective",
    "focal_length",
    "perspective_rays",
    "pixel_to_world",
    "world_to_pixel",
]

DEFAULT_HFOV = math.pi / 2


def _check_hfov(hfov: float | Tensor) -> float:
    """Validate a horizontal field of view in radians; the pinhole model needs 0 < hfov < π."""
    if isinstance(hfov, Tensor) and hfov.numel() != 1:
        raise ValueError(f"hfov must be a single angle in radians, got a tensor of shape {tuple(hfov.shape)}")
    hfov = float(hfov)
    if not (0.0 < hfov < math.pi):
        raise ValueError(
            f"hfov must be in (0, π) radians for a pinhole camera, got {hfov!r}; "
            "pass radians (e.g. math.radians(90)), not degrees"
        )
    return hfov


def _check_size(size: Sequence[int], name: str = "size") -> tuple[int, int]:
    """Validate an ``(H, W)`` output size of positive integers."""
    if isinstance(size, Tensor) or not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"{name} must be a pair (H, W) of positive integers, got {size!r}")
    height, width = size
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (height, width)):
        raise ValueError(f"{name} must be a pair (H, W) of positive integers, got {size!r}")
    return height, width


def focal_length(hfov: float | Tensor, width: int) -> float:
    """Pinhole focal length in pixels, ``(width/2)/tan(hfov/2)``, for a horizontal field of view."""
    return (width / 2) / math.tan(_check_hfov(hfov) / 2)


def _float64(value: AngleLike, device: torch.device | None = None) -> Tensor:
    """A float or tensor as float64 (Python numbers go straight to float64, never through float32)."""
    if isinstance(value, Tensor):
        return value.to(device=device if device is not None else value.device, dtype=torch.float64)
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def _out_dtype(*values: AngleLike) -> torch.dtype:
    """Result dtype: the promotion of the floating tensor inputs, else the default dtype."""
    dtypes = [v.dtype for v in values if isinstance(v, Tensor) and v.is_floating_point()]
    if not dtypes:
        return torch.get_default_dtype()
    out = dtypes[0]
    for dtype in dtypes[1:]:
        out = torch.promote_types(out, dtype)
    return out


def _pose(yaw: AngleLike, pitch: AngleLike, roll: AngleLike, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Angles as float64 tensors on ``like``'s device (float64 keeps the geometry exact)."""
    return tuple(_float64(a, like.device) for a in (yaw, pitch, roll))


def _camera_ray(row: Tensor, col: Tensor, focal: float, height: int, width: int) -> Tensor:
    """Unit camera-frame rays ``[..., 3]`` through continuous pixel-centre coordinates."""
    row, col = torch.broadcast_tensors(row, col)
    ray = torch.stack(
        (torch.full_like(col, focal), -(col + 0.5 - width / 2), -(row + 0.5 - height / 2)), dim=-1
    )
    return ray / ray.norm(dim=-1, keepdim=True)


def perspective_rays(
    size: Sequence[int],
    hfov: float | Tensor = DEFAULT_HFOV,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Unit rays ``[H, W, 3]`` of every perspective pixel centre in the camera frame (x fwd, y left, z up)."""
    height, width = _check_size(size)
    focal = focal_length(hfov, width)
    rows = torch.arange(height, dtype=torch.float64, device=device)
    cols = torch.arange(width, dtype=torch.float64, device=device)
    ray = _camera_ray(rows[:, None], cols[None, :], focal, height, width)
    return ray.to(dtype)


def pixel_to_world(
    row: AngleLike,
    col: AngleLike,
    yaw: AngleLike,
    pitch: AngleLike = 0.0,
    roll: AngleLike = 0.0,
    hfov: float | Tensor = DEFAULT_HFOV,
    size: Sequence[int] = (224, 224),
) -> Tensor:
    """World unit directions ``[..., 3]`` seen at perspective pixel-centre coordinates ``(row, col)``.

    ``row``, ``col`` and the pose angles broadcast together. The geometry runs in float64; the result
    has the dtype of ``row``/``col`` (the default dtype for Python numbers).
    """
    height, width = _check_size(size)
    focal = focal_length(hfov, width)
    device = next((v.device for v in (row, col) if isinstance(v, Tensor)), None)
    r, c = _float64(row, device), _float64(col, device)
    ray = _camera_ray(r, c, focal, height, width)
    rotation = rotation_matrix(*_pose(yaw, pitch, roll, ray))
    return camera_to_world(ray, rotation).to(_out_dtype(row, col))


def world_to_pixel(
    direction: Tensor,
    yaw: AngleLike,
    pitch: AngleLike = 0.0,
    roll: AngleLike = 0.0,
    hfov: float | Tensor = DEFAULT_HFOV,
    size: Sequence[int] = (224, 224),
) -> tuple[Tensor, Tensor, Tensor]:
    """Project world directions ``[..., 3]`` into a perspective view: ``(row, col, visible)``.

    ``row``/``col`` are pixel-centre coordinates (col grows to the right, row downward) and broadcast
    with the pose angles; ``visible`` is True where the direction is in front of the camera and inside
    the image (``−½ ≤ coord ≤ size − ½``). Directions behind the camera get NaN coordinates.
    """
    if not isinstance(direction, Tensor) or direction.shape[-1:] != (3,):
        shape = tuple(direction.shape) if isinstance(direction, Tensor) else type(direction).__name__
        raise ValueError(f"world_to_pixel: direction must be a tensor [..., 3], got {shape}")
    height, width = _check_size(size)
    focal = focal_length(hfov, width)
    out_dtype = direction.dtype if direction.is_floating_point() else torch.get_default_dtype()
    u = direction.to(torch.float64)
    v = world_to_camera(u, rotation_matrix(*_pose(yaw, pitch, roll, u)))
    vx, vy, vz = v.unbind(-1)
    front = vx > 0
    safe_vx = torch.where(front, vx, torch.ones_like(vx))  # keeps gradients finite behind the camera
    nan = torch.full_like(vx, math.nan)
    col = torch.where(front, width / 2 - focal * vy / safe_vx - 0.5, nan)
    row = torch.where(front, height / 2 - focal * vz / safe_vx - 0.5, nan)
    inside = (col >= -0.5) & (col <= width - 0.5) & (row >= -0.5) & (row <= height - 0.5)
    return row.to(out_dtype), col.to(out_dtype), front & inside


def equirect_pixel_to_direction(row: AngleLike, col: AngleLike, height: int, width: int) -> Tensor:
    """World unit directions ``[..., 3]`` at equirect pixel-centre coordinates ``(row, col)``.

    Column ``col`` has longitude ``π(1 − 2(col + ½)/W)`` and row ``row`` latitude ``π/2 − π(row + ½)/H``.
    """
    height, width = _check_size((height, width), name="(height, width)")
    device = next((v.device for v in (row, col) if isinstance(v, Tensor)), None)
    r, c = _float64(row, device), _float64(col, device)
    lon = math.pi * (1.0 - 2.0 * (c + 0.5) / width)
    lat = math.pi / 2 - math.pi * (r + 0.5) / height
    return geometry.direction(lon, lat).to(_out_dtype(row, col))


def direction_to_equirect_pixel(direction: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Equirect pixel-centre coordinates ``(row, col)`` of world directions ``[..., 3]``.

    ``col`` lies in ``[−½, W − ½)`` (longitude +π maps to the left edge ``−½``), ``row`` in ``[−½, H − ½]``.
    """
    height, width = _check_size((height, width), name="(height, width)")
    lon, lat = direction_to_angles(direction)
    col = (1.0 - lon / math.pi) * width / 2 - 0.5
    row = (0.5 - lat / math.pi) * height - 0.5
    return row, col


def _check_frames(frames: Tensor) -> None:
    if not isinstance(frames, Tensor):
        raise ValueError(f"frames must be a torch.Tensor [..., 3, H, W], got {type(frames).__name__}")
    if frames.ndim < 3 or frames.shape[-3] != 3:
        raise ValueError(
            f"frames must have shape [..., 3, H, W] (RGB channels third from last), got {tuple(frames.shape)}"
        )
    if frames.shape[-2] < 1 or frames.shape[-1] < 1:
        raise ValueError(f"frames must have a non-empty H × W panorama, got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(f"frames must be uint8 or floating point, got {frames.dtype}")


def equirect_to_perspective(
    frames: Tensor,
    yaw: AngleLike,
    pitch: AngleLike = 0.0,
    roll: AngleLike = 0.0,
    hfov: float | Tensor = DEFAULT_HFOV,
    size: Sequence[int] = (224, 224),
) -> Tensor:
    """Render pinhole perspective views ``[..., 3, h, w]`` from equirect frames ``[..., 3, H, W]``.

    ``frames`` is e.g. a video ``[B, T, 3, H, W]`` or a batch ``[B, 3, H, W]``, uint8 or floating; the
    output keeps the dtype (uint8 is rounded and clamped). ``yaw``/``pitch``/``roll`` are floats or
    tensors broadcastable with the leading dims (per-frame trajectories ``[B, T]``, per-clip ``[B, 1]``);
    the leading dims of the result are that broadcast. ``hfov`` is in radians, in (0, π); ``size`` is
    ``(h, w)``. Bilinear sampling; the ±180° seam wraps and the poles clamp. Differentiable with
    respect to floating frames and to the angles.
    """
    _check_frames(frames)
    height, width = _check_size(size)
    _check_hfov(hfov)
    angles = _pose(yaw, pitch, roll, frames)
    lead = frames.shape[:-3]
    try:
        out_lead = torch.broadcast_shapes(lead, *(a.shape for a in angles))
    except RuntimeError as err:
        shapes = ", ".join(str(tuple(a.shape)) for a in angles)
        raise ValueError(
            f"yaw/pitch/roll shapes {shapes} do not broadcast with the leading frame dims {tuple(lead)}; "
            "use per-frame [B, T] or per-clip [B, 1] angles"
        ) from err

    eq_h, eq_w = frames.shape[-2:]
    n_views = math.prod(out_lead)
    work_dtype = frames.dtype if frames.dtype in (torch.float32, torch.float64) else torch.float32
    if n_views == 0:
        return frames.new_empty((*out_lead, 3, height, width))

    # One grid per distinct pose: a single pose is shared by every frame without recomputing it.
    rotation = rotation_matrix(*angles)
    shared = rotation.numel() == 9
    rotation = rotation.reshape(1, 3, 3) if shared else rotation.expand(*out_lead, 3, 3).reshape(-1, 3, 3)
    rays = perspective_rays((height, width), hfov, dtype=torch.float64, device=frames.device)
    world = torch.einsum("nij,hwj->nhwi", rotation, rays)
    vx, vy, vz = world.unbind(-1)
    lon = torch.atan2(vy, vx)
    lat = torch.atan2(vz, torch.hypot(vx, vy))
    # Normalised coordinates in the panorama padded by one wrapped column on each side:
    # x = (1 − lon/π)·W/2 − ½ + 1 ⇒ gx = 2(x + ½)/(W + 2) − 1 = −(lon/π)·W/(W + 2).
    grid_x = -(lon / math.pi) * (eq_w / (eq_w + 2))
    grid_y = -2.0 * lat / math.pi
    grid = torch.stack((grid_x, grid_y), dim=-1).to(work_dtype).expand(n_views, height, width, 2)

    source = frames.expand(*out_lead, 3, eq_h, eq_w).reshape(n_views, 3, eq_h, eq_w).to(work_dtype)
    source = torch.cat((source[..., -1:], source, source[..., :1]), dim=-1)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.reshape(*out_lead, 3, height, width)
    if frames.dtype == torch.uint8:
        return out.round().clamp(0, 255).to(torch.uint8)
    return out.to(frames.dtype)
