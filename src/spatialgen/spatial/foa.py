"""First-order ambisonics (FOA): plane-wave encoding, camera rotation and format conversion.

FOA is AmbiX everywhere inside spatialgen: ACN channel order ``[W, Y, Z, X]`` with SN3D weights,
so a plane wave ``s`` from the unit vector ``u`` is ``[s, s·u_y, s·u_z, s·u_x]``
(AmbiX, Nachbar et al. 2011). FuMa and N3D exist only at the edges (import/export).

Rotation (the README's conventions): a camera with pose ``R = Rz(yaw)·Ry(−pitch)·Rx(roll)``
(:func:`rotation_matrix`) hears the world sound field with the dipole ``d = (X, Y, Z)`` replaced by
``Rᵀ d``; W is unchanged. Time-varying poses are applied per sample, which avoids the clicks of
per-video-frame switching.

Shapes: FOA is ``[..., 4, T]``; mono signals are ``[..., T]``. An angle (radians) is a float, a 0-d
tensor, a per-item tensor (fewer dims than the batch part of the audio, broadcast against it), or a
per-sample tensor with the batch dims *and* a last time dim of length ``T`` (or 1). All functions keep
the input's dtype and device and are differentiable.

Speed (issue 19): without autograd, :func:`rotate` writes long signals into one huge-page output
(:mod:`spatialgen.spatial.buffers`): a static pose is one BLAS 3x3 product on ``[Y, Z, X]`` plus a copy
of W (about a NumPy matrix product), a trajectory runs cache-sized chunks of in-place plane rotations.
When a gradient is needed the plain batched formulas below run instead (equal to rounding).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spatialgen.spatial import buffers
from spatialgen.spatial.checks import all_finite, check_audio, check_foa
from spatialgen.spatial.geometry import AngleLike, as_angle, direction, rotation_matrix
from spatialgen.spatial.threads import check_threads, intra_op_threads

__all__ = [
    "ambix_to_fuma",
    "check_foa",
    "encode",
    "foa_rotation_matrix",
    "fuma_to_ambix",
    "interpolate_trajectory",
    "n3d_to_sn3d",
    "rotate",
    "rotate_matrix",
    "rotation_matrix",
    "sn3d_to_n3d",
]

_SQRT2 = math.sqrt(2.0)
_SQRT3 = math.sqrt(3.0)
_XYZ_FROM_ACN = (3, 1, 2)  # AmbiX slots holding the dipole components x, y, z
_FAST_MIN_SAMPLES = 4096  # static rotation: below this one batched 4x4 matmul beats a loop over items
_CHUNK_SAMPLES = 1 << 16  # per-sample rotation: samples per chunk (temporaries stay in L2/L3)


def _angle_tensor(value: AngleLike, name: str, like: Tensor) -> Tensor:
    """An angle as a tensor on ``like``'s device, dtype promoted with ``like``'s (float64 stays float64)."""
    angle = as_angle(value, like=like)
    if not all_finite(angle):
        raise ValueError(f"{name}: contains NaN or Inf; pass finite angles in radians")
    return angle


def _per_sample(angle: Tensor, name: str, batch_dims: int, n_samples: int) -> Tensor:
    """Shape an angle to ``[..., T or 1]``: per-item angles gain a time dim, per-sample ones keep theirs."""
    if angle.dim() <= batch_dims:
        return angle.unsqueeze(-1)
    if angle.dim() == batch_dims + 1 and angle.shape[-1] in (1, n_samples):
        return angle
    raise ValueError(
        f"{name}: shape {tuple(angle.shape)} is neither per-item (at most {batch_dims} dims) nor per-sample "
        f"({batch_dims + 1} dims ending in {n_samples} samples)"
    )


def _broadcast_shape(name: str, *shapes: tuple[int, ...]) -> torch.Size:
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            f"{name}: shapes {[tuple(s) for s in shapes]} do not broadcast; per-item angles must match the "
            "batch dims of the audio and per-sample angles must end in its sample count"
        ) from None


def encode(signal: Tensor, azimuth: AngleLike, elevation: AngleLike) -> Tensor:
    """Encode mono ``signal [..., T]`` as an AmbiX plane wave ``[..., 4, T] = [s, s·u_y, s·u_z, s·u_x]``.

    ``u = (cos φ cos θ, sin φ cos θ, sin θ)`` with azimuth φ (anticlockwise, +π/2 = left) and
    elevation θ (up) in radians. An angle tensor with fewer dims than ``signal`` is per-item (broadcast
    against ``signal.shape[:-1]``); one with as many dims as ``signal`` is per-sample (a moving source;
    last dim ``T`` or 1). Batch dims broadcast, so ``encode(s[None], az[:, None]...)`` places one signal
    at several directions. The output has ``signal``'s dtype and device.
    """
    signal = check_audio(signal, "signal")
    batch_dims, n_samples = signal.dim() - 1, signal.shape[-1]
    az = _per_sample(_angle_tensor(azimuth, "azimuth", signal), "azimuth", batch_dims, n_samples)
    el = _per_sample(_angle_tensor(elevation, "elevation", signal), "elevation", batch_dims, n_samples)
    _broadcast_shape("encode", signal.shape, az.shape, el.shape)
    u = direction(az, el).to(signal.dtype)  # [..., T or 1, 3]
    ux, uy, uz = u.unbind(-1)
    return torch.stack(torch.broadcast_tensors(signal, signal * uy, signal * uz, signal * ux), dim=-2)


def foa_rotation_matrix(rotation: Tensor) -> Tensor:
    """The ``[..., 4, 4]`` matrix acting on AmbiX ``[W, Y, Z, X]`` for a 3x3 rotation ``[..., 3, 3]``.

    ``M[0, 0] = 1`` (W unchanged) and ``M[acn(i), acn(j)] = R[i, j]`` with ``acn = (x→3, y→1, z→2)``,
    so ``M @ foa`` rotates every source ``u → R u``. For the camera view of pose ``R`` use
    ``foa_rotation_matrix(R.mT)`` (or :func:`rotate_matrix`).
    """
    if not isinstance(rotation, Tensor) or rotation.dim() < 2 or rotation.shape[-2:] != (3, 3):
        shape = tuple(rotation.shape) if isinstance(rotation, Tensor) else type(rotation).__name__
        raise ValueError(f"rotation: expected a tensor [..., 3, 3], got {shape}")
    order = torch.tensor([1, 2, 0], device=rotation.device)  # xyz index of ACN slots 1, 2, 3 (y, z, x)
    dipole = rotation.index_select(-2, order).index_select(-1, order)
    batch = rotation.shape[:-2]
    one = torch.ones(*batch, 1, 1, dtype=rotation.dtype, device=rotation.device)
    zeros = torch.zeros(*batch, 1, 3, dtype=rotation.dtype, device=rotation.device)
    top = torch.cat((one, zeros), dim=-1)
    bottom = torch.cat((zeros.mT, dipole), dim=-1)
    return torch.cat((top, bottom), dim=-2)


def _apply_transposed(x: Tensor, r: list[list[Tensor]]) -> Tensor:
    """Replace the dipole of ``x [..., 4, T]`` by ``Rᵀ d``; ``r[i][j]`` are ``[..., T or 1]`` entries.

    Written as 9 broadcast multiply-adds per sample: for per-sample poses this is several times faster
    than building ``[..., T, 3, 3]`` matrices and a batched matmul.
    """
    w, y, z, xx = x.unbind(-2)
    d = (xx, y, z)
    out = [r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2] for j in range(3)]  # (Rᵀ d)_j
    w = w.expand(out[0].shape)
    return torch.stack((w, out[1], out[2], out[0]), dim=-2)


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _apply_static(x: Tensor, matrix: Tensor) -> Tensor:
    """``matrix [..., 4, 4] @ x [..., 4, T]`` for a W-preserving FOA rotation, near the memory floor.

    Long signals without autograd copy W and run one BLAS 3x3 product on the contiguous ``[Y, Z, X]``
    rows straight into a huge-page output (:mod:`.buffers`): one read and one write of the audio.
    ``matrix @ x`` would also multiply W by the identity row and allocate with 4 KiB page faults.
    """
    if x.shape[-1] < _FAST_MIN_SAMPLES or _needs_grad(x, matrix):
        return matrix @ x
    batch = torch.broadcast_shapes(x.shape[:-2], matrix.shape[:-2])
    out = buffers.empty((*batch, 4, x.shape[-1]), x.dtype, x.device)
    xs = x.expand(*batch, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
    ms = matrix.expand(*batch, 4, 4).reshape(-1, 4, 4)
    for item, (xi, mi) in enumerate(zip(xs, ms, strict=True)):
        oi = out.view(-1, *x.shape[-2:])[item]
        oi[0].copy_(xi[0])
        torch.mm(mi[1:, 1:], xi[1:], out=oi[1:])
    return out


def _turn(a: Tensor, b: Tensor, c: Tensor, s: Tensor, tmp: Tensor) -> None:
    """In place ``(a, b) <- (c·a + s·b, c·b − s·a)``: a 2-D rotation by −angle of components (a, b)."""
    torch.mul(a, s, out=tmp)
    a.mul_(c).addcmul_(b, s)
    b.mul_(c).sub_(tmp)


def _rotate_per_sample(x: Tensor, angles: list[Tensor], skip: list[bool], batch: torch.Size) -> Tensor:
    """Camera view of ``x`` for per-sample poses, chunk by chunk into one output buffer (no autograd).

    ``Rᵀ = Rx(roll)ᵀ·Ry(−pitch)ᵀ·Rz(yaw)ᵀ`` is applied as three in-place plane rotations of the dipole
    (yaw on (X, Y), pitch on (X, Z), roll on (Y, Z)), skipping angles given as exactly 0: about 20
    elementwise passes per chunk instead of ~45 for building the 9 entries of R(t) and 9 multiply-adds.
    Chunks of ``_CHUNK_SAMPLES`` keep every temporary in cache; on accelerators one chunk spans ``T``.
    """
    n_samples = x.shape[-1]
    out = buffers.empty((*batch, 4, n_samples), x.dtype, x.device)
    step = _CHUNK_SAMPLES if x.device.type == "cpu" else n_samples
    for s0 in range(0, n_samples, step):
        s1 = min(n_samples, s0 + step)
        xs, o = x[..., s0:s1], out[..., s0:s1]
        cs = [
            None
            if off
            else [f(a if a.shape[-1] == 1 else a[..., s0:s1]).to(x.dtype) for f in (torch.cos, torch.sin)]
            for a, off in zip(angles, skip, strict=True)
        ]
        w, y, z, xx = xs.unbind(-2)
        ow, oy, oz, ox = o.unbind(-2)
        ow.copy_(w)
        oz.copy_(z)
        tmp = torch.empty_like(ox)
        if cs[0] is None:
            ox.copy_(xx)
            oy.copy_(y)
        else:
            (c, s) = cs[0]
            torch.mul(xx, c, out=ox).addcmul_(y, s)
            torch.mul(y, c, out=oy)
            torch.mul(xx, s, out=tmp)
            oy.sub_(tmp)
        if cs[1] is not None:
            _turn(ox, oz, *cs[1], tmp)
        if cs[2] is not None:
            _turn(oy, oz, *cs[2], tmp)
    return out


def _pose_entries(yaw: Tensor, pitch: Tensor, roll: Tensor) -> list[list[Tensor]]:
    """Closed-form entries of ``Rz(yaw)·Ry(−pitch)·Rx(roll)`` (elementwise, any broadcast shape)."""
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    return [
        [cy * cp, -cy * sp * sr - sy * cr, -cy * sp * cr + sy * sr],
        [sy * cp, -sy * sp * sr + cy * cr, -sy * sp * cr - cy * sr],
        [sp, cp * sr, cp * cr],
    ]


def rotate(
    x: Tensor, yaw: AngleLike, pitch: AngleLike = 0.0, roll: AngleLike = 0.0, *, threads: int | None = 1
) -> Tensor:
    """World FOA ``[..., 4, T]`` -> FOA heard by a camera with pose ``(yaw, pitch, roll)`` (radians).

    Applies ``Rᵀ`` to the dipole ``(X, Y, Z)`` with ``R = Rz(yaw)·Ry(−pitch)·Rx(roll)``; W is copied.
    Turning the camera left (yaw > 0) moves sources to the right (negative azimuth). Angles are floats,
    per-item tensors (at most ``x.dim() - 2`` dims, broadcast against ``x.shape[:-2]``) or per-sample
    tensors ``[..., T]`` (``x.dim() - 1`` dims) for a trajectory; the pose is then evaluated per sample.
    ``threads``: torch intra-op threads for the long-signal paths (chunked trajectory loop, static BLAS
    product; ``None`` keeps torch's setting; :mod:`spatialgen.spatial.threads` says why 1).
    """
    x = check_foa(x)
    threads = check_threads(threads)
    batch_dims, n_samples = x.dim() - 2, x.shape[-1]
    # Trig runs in the promoted dtype of audio and angles: float64 audio gets float64 poses.
    angles = [
        _per_sample(_angle_tensor(value, name, x), name, batch_dims, n_samples)
        for value, name in ((yaw, "yaw"), (pitch, "pitch"), (roll, "roll"))
    ]
    full = _broadcast_shape("rotate", (*x.shape[:-2], n_samples), *(a.shape for a in angles))
    per_sample = any(a.shape[-1] != 1 for a in angles)
    if per_sample and not _needs_grad(x, *angles):
        skip = [isinstance(v, int | float) and v == 0 for v in (yaw, pitch, roll)]
        with intra_op_threads(threads):
            return _rotate_per_sample(x, angles, skip, full[:-1])
    entries = [[e.to(x.dtype) for e in row] for row in _pose_entries(*angles)]
    if all(a.shape[-1] == 1 for a in angles):  # one pose per item: a 4x4 matmul is the fastest path
        flat = torch.broadcast_tensors(*(e for row in entries for e in row))
        pose = torch.stack(flat, dim=-1).squeeze(-2).unflatten(-1, (3, 3))
        with intra_op_threads(threads):
            return _apply_static(x, foa_rotation_matrix(pose.mT))
    return _apply_transposed(x, entries)


def rotate_matrix(x: Tensor, rotation: Tensor) -> Tensor:
    """Like :func:`rotate` with an explicit camera pose ``R``: applies ``Rᵀ`` to the dipole of ``x``.

    ``rotation`` is ``[..., 3, 3]`` (static, batch dims broadcast against ``x.shape[:-2]``) or
    ``[..., T, 3, 3]`` (one pose per sample; recognised by having one more dim than ``x``).
    ``rotate_matrix(x, rotation_matrix(y, p, r)) == rotate(x, y, p, r)``.
    """
    x = check_foa(x)
    if not isinstance(rotation, Tensor) or rotation.dim() < 2 or rotation.shape[-2:] != (3, 3):
        shape = tuple(rotation.shape) if isinstance(rotation, Tensor) else type(rotation).__name__
        raise ValueError(f"rotation: expected a tensor [..., 3, 3] or [..., T, 3, 3], got {shape}")
    if not all_finite(rotation):
        raise ValueError("rotation: contains NaN or Inf")
    rotation = rotation.to(device=x.device, dtype=x.dtype)
    if rotation.dim() == x.dim() + 1:  # per sample: [..., T, 3, 3]
        if rotation.shape[-3] not in (1, x.shape[-1]):
            raise ValueError(
                f"rotation: per-sample poses {tuple(rotation.shape)} must have {x.shape[-1]} samples at dim -3"
            )
        entries = [[rotation[..., i, j] for j in range(3)] for i in range(3)]
    elif rotation.dim() <= x.dim():
        _broadcast_shape("rotate_matrix", x.shape[:-2], rotation.shape[:-2])
        return _apply_static(x, foa_rotation_matrix(rotation.mT))
    else:
        raise ValueError(
            f"rotation: shape {tuple(rotation.shape)} has too many dims for x {tuple(x.shape)}; "
            "use [..., 3, 3] or [..., T, 3, 3]"
        )
    _broadcast_shape("rotate_matrix", (*x.shape[:-2], x.shape[-1]), entries[0][0].shape)
    return _apply_transposed(x, entries)


def interpolate_trajectory(times: Tensor, keyframes: Tensor, n_samples: int, sample_rate: float) -> Tensor:
    """Piecewise-linear keyframe angles -> per-sample angles, time moved to the last dim.

    ``times [K]`` are keyframe times in seconds (strictly increasing); ``keyframes [K]`` or
    ``[K, C]`` (e.g. ``C = 3`` for yaw, pitch, roll, radians). Sample ``n`` sits at ``n / sample_rate``
    seconds; before the first / after the last keyframe the end value is held (like ``np.interp``).
    Returns ``[n_samples]`` or ``[C, n_samples]`` so ``rotate(x, *interpolate_trajectory(...))`` works.

    Keyframes are taken as given: yaw is *not* unwrapped, so going from 170° to −170° sweeps 340°
    through the front; pass 190° instead of −170° for the short way. Differentiable in ``keyframes``.
    """
    if not isinstance(times, Tensor) or not isinstance(keyframes, Tensor):
        raise ValueError("interpolate_trajectory: times and keyframes must be torch tensors")
    if times.dim() != 1 or times.numel() == 0:
        raise ValueError(f"times: expected a non-empty 1-D tensor of seconds, got shape {tuple(times.shape)}")
    if keyframes.dim() not in (1, 2) or keyframes.shape[0] != times.shape[0]:
        raise ValueError(
            f"keyframes: expected [K] or [K, C] with K = {times.shape[0]} (len(times)), "
            f"got shape {tuple(keyframes.shape)}"
        )
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples: expected a positive integer, got {n_samples!r}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate: expected a positive number, got {sample_rate!r}")
    dtype = keyframes.dtype if keyframes.is_floating_point() else torch.get_default_dtype()
    work = torch.float64 if keyframes.device.type != "mps" else torch.float32
    t_key = times.to(device=keyframes.device, dtype=work)
    values = keyframes.to(work)
    if not bool(torch.isfinite(t_key).all() and torch.isfinite(values).all()):
        raise ValueError("interpolate_trajectory: times and keyframes must be finite")
    if t_key.numel() > 1 and not bool((t_key[1:] > t_key[:-1]).all()):
        raise ValueError("times: keyframe times must be strictly increasing")
    t = torch.arange(int(n_samples), device=keyframes.device, dtype=work) / float(sample_rate)
    if t_key.numel() == 1:
        out = values[:1].expand(int(n_samples), *values.shape[1:])
    else:
        # Segment k covers [t_k, t_{k+1}]; clamping the weight holds the end values outside.
        seg = (torch.searchsorted(t_key, t, right=True) - 1).clamp(0, t_key.numel() - 2)
        t0, t1 = t_key[seg], t_key[seg + 1]
        weight = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
        if values.dim() == 2:
            weight = weight.unsqueeze(-1)
        out = values[seg] + weight * (values[seg + 1] - values[seg])
    return out.movedim(0, -1).to(dtype)


def ambix_to_fuma(x: Tensor) -> Tensor:
    """AmbiX ``[W, Y, Z, X]`` (SN3D) -> FuMa ``[W/√2, X, Y, Z]`` along dim -2."""
    x = check_foa(x)
    w, y, z, xx = x.unbind(-2)
    return torch.stack((w / _SQRT2, xx, y, z), dim=-2)


def fuma_to_ambix(x: Tensor) -> Tensor:
    """FuMa ``[W, X, Y, Z]`` (first order) -> AmbiX ``[√2·W, Y, Z, X]`` along dim -2."""
    x = check_foa(x)
    w, xx, y, z = x.unbind(-2)
    return torch.stack((w * _SQRT2, y, z, xx), dim=-2)


def sn3d_to_n3d(x: Tensor) -> Tensor:
    """ACN SN3D -> ACN N3D: first-order channels scaled by √3 (√(2n+1)), W unchanged."""
    x = check_foa(x)
    w, dipole = x[..., :1, :], x[..., 1:, :]
    return torch.cat((w, dipole * _SQRT3), dim=-2)


def n3d_to_sn3d(x: Tensor) -> Tensor:
    """ACN N3D -> ACN SN3D: first-order channels divided by √3, W unchanged."""
    x = check_foa(x)
    w, dipole = x[..., :1, :], x[..., 1:, :]
    return torch.cat((w, dipole / _SQRT3), dim=-2)
