"""Directions, rotations and angle conventions shared by every spatial module.

One right-handed frame everywhere (that of AmbiX and SOFA ``SimpleFreeFieldHRIR``; the README's conventions):
+x front, +y left, +z up.
Azimuth φ runs anticlockwise from the front (+90° = left), elevation θ upward, and
``u(φ, θ) = (cos φ cos θ, sin φ cos θ, sin θ)``. Angles are radians.

Camera pose: ``R = Rz(yaw) · Ry(−pitch) · Rx(roll)`` (yaw > 0 turns left, pitch > 0 looks up,
roll > 0 raises the left ear). ``R`` maps camera-frame vectors to world-frame vectors, so a world
direction is seen by the camera at ``Rᵀ u``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

AngleLike = float | Tensor
DEG = math.pi / 180.0  # multiply degrees by DEG to get radians

__all__ = [
    "DEG",
    "AngleLike",
    "ambigen_bins_to_angles",
    "angles_to_ambigen_bins",
    "as_angle",
    "as_angles",
    "camera_to_world",
    "direction",
    "direction_to_angles",
    "great_circle",
    "great_circle_vectors",
    "rotation_matrix",
    "world_to_camera",
]


def as_angle(value: AngleLike, like: Tensor | None = None) -> Tensor:
    """Turn a float or tensor angle into a floating tensor (dtype/device of ``like`` when given)."""
    return as_angles(value, like=like)[0]


def as_angles(*values: AngleLike, like: Tensor | None = None) -> tuple[Tensor, ...]:
    """Floats/tensors -> floating tensors of one promoted dtype and device, broadcast together.

    Python floats take the dtype of the tensors present (float64 stays float64); with no floating
    tensor the default dtype is used.
    """
    tensors = [v for v in (*values, like) if isinstance(v, Tensor)]
    dtype = torch.get_default_dtype()
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    if floating:
        dtype = floating[0]
        for other in floating[1:]:
            dtype = torch.promote_types(dtype, other)
    device = tensors[0].device if tensors else None
    out = [
        v.to(dtype=dtype, device=device)
        if isinstance(v, Tensor)
        else torch.tensor(float(v), dtype=dtype, device=device)
        for v in values
    ]
    return tuple(torch.broadcast_tensors(*out))


def direction(azimuth: AngleLike, elevation: AngleLike) -> Tensor:
    """Unit vector(s) ``[..., 3]`` for azimuth/elevation (radians, broadcast together)."""
    az, el = as_angles(azimuth, elevation)
    cos_el = torch.cos(el)
    return torch.stack((torch.cos(az) * cos_el, torch.sin(az) * cos_el, torch.sin(el)), dim=-1)


def direction_to_angles(vector: Tensor) -> tuple[Tensor, Tensor]:
    """``(azimuth, elevation)`` in radians of vectors ``[..., 3]`` (need not be unit length).

    Azimuth is in (−π, π]; a zero vector gives (0, 0).
    """
    if vector.shape[-1] != 3:
        raise ValueError(
            f"direction_to_angles: expected a last dimension of 3, got shape {tuple(vector.shape)}"
        )
    x, y, z = vector.unbind(-1)
    azimuth = torch.atan2(y, x)
    elevation = torch.atan2(z, torch.sqrt(x * x + y * y))
    return azimuth, elevation


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    """Active right-handed rotation by ``angle`` about axis 0 (x), 1 (y) or 2 (z): ``[..., 3, 3]``."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 1:
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_matrix(yaw: AngleLike, pitch: AngleLike = 0.0, roll: AngleLike = 0.0) -> Tensor:
    """Camera pose ``R = Rz(yaw) · Ry(−pitch) · Rx(roll)`` as ``[..., 3, 3]`` (angles broadcast).

    ``R @ e_x`` is the camera's viewing direction ``u(yaw, pitch)``; ``R`` maps camera coordinates to
    world coordinates.
    """
    y, p, r = as_angles(yaw, pitch, roll)
    return _axis_rotation(y, 2) @ _axis_rotation(-p, 1) @ _axis_rotation(r, 0)


def world_to_camera(vector: Tensor, rotation: Tensor) -> Tensor:
    """Express world vectors ``[..., 3]`` in the camera frame of pose ``rotation`` (applies ``Rᵀ``)."""
    dtype = torch.promote_types(vector.dtype, rotation.dtype)
    return (rotation.to(dtype).transpose(-1, -2) @ vector.to(dtype).unsqueeze(-1)).squeeze(-1)


def camera_to_world(vector: Tensor, rotation: Tensor) -> Tensor:
    """Express camera-frame vectors ``[..., 3]`` in the world frame (applies ``R``)."""
    dtype = torch.promote_types(vector.dtype, rotation.dtype)
    return (rotation.to(dtype) @ vector.to(dtype).unsqueeze(-1)).squeeze(-1)


def great_circle_vectors(u: Tensor, v: Tensor) -> Tensor:
    """Angle in radians between vectors ``[..., 3]`` (numerically stable for tiny and near-π angles)."""
    cross = torch.linalg.cross(u, v, dim=-1).norm(dim=-1)
    dot = (u * v).sum(-1)
    return torch.atan2(cross, dot)


def great_circle(az1: AngleLike, el1: AngleLike, az2: AngleLike, el2: AngleLike) -> Tensor:
    """Great-circle angle in radians between two (azimuth, elevation) directions."""
    az1, el1, az2, el2 = as_angles(az1, el1, az2, el2)
    return great_circle_vectors(direction(az1, el1), direction(az2, el2))


def ambigen_bins_to_angles(e: AngleLike, a: AngleLike) -> tuple[Tensor, Tensor]:
    """YT-Ambigen ``ambi.json`` ``[e, a]`` 2° bins -> camera (azimuth, elevation) in radians.

    ``φ = 179 − 2a`` degrees and ``θ = 89 − 2e`` degrees: the convention of the official crop and
    rotation augmentation (jaeyeonkim99/visage ``utils/prepare_dataset.py``, ``preprocess_ambi.py``;
    its ``data/mono_to_ambi.py`` uses the mirror ``φ = 2a − 179``).
    """
    e_t, a_t = as_angles(e, a)
    return torch.deg2rad(179.0 - 2.0 * a_t), torch.deg2rad(89.0 - 2.0 * e_t)


def angles_to_ambigen_bins(azimuth: AngleLike, elevation: AngleLike) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`ambigen_bins_to_angles`: nearest ``(e, a)`` integer bins (``a`` wraps in 0..179)."""
    az_deg, el_deg = (torch.rad2deg(t) for t in as_angles(azimuth, elevation))
    a = torch.round((179.0 - az_deg) / 2.0).remainder(180).long()
    e = torch.round((89.0 - el_deg) / 2.0).clamp(0, 89).long()
    return e, a
