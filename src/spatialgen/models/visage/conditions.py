"""ViSAGe's visual conditions besides the encoder's tokens: the patch energy map and the camera direction.

Split from :mod:`spatialgen.models.visage.pipeline`, which uses both (and re-exports them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spatialgen.spatial.geometry import direction as unit_direction

__all__ = ["camera_direction_vector", "visual_energy_map"]


def _normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def visual_energy_map(
    patch_tokens: Tensor,
    grid: tuple[int, int] | None = None,
    *,
    temperature: float = 0.1,
    top_p: float = 0.7,
) -> Tensor:
    """ViSAGe's per-frame patch energy map (visual saliency) from patch tokens ``[B, T, N, D]`` -> ``[B, T, N]``.

    Follows the official ``infer_clip_energy.py`` (jaeyeonkim99/visage): with ``f̂`` the unit-normalised tokens, the spatial score is
    ``||f̂ − normalize(mean of the existing 4-neighbours)||`` and the temporal score
    ``||f̂ − normalize(A)||`` with ``A[0] = F[1]``, ``A[t] = (F[t−1] + F[t+1]) / 2``, ``A[T−1] = F[T−2]``
    (a single frame has no temporal neighbour: ``A = F``, a zero score). ``E0 = ½(softmax(s_sp/τ) +
    softmax(s_tp/τ))``; the patches of lowest ``E0`` whose cumulative mass is ``<= 1 − top_p`` are removed
    (their scores set to −inf) and the same average of softmaxes is recomputed. Rows sum to 1.

    Args:
        patch_tokens: raw last-layer patch tokens (CLS dropped) in row-major grid order.
        grid: ``(rows, cols)`` of the patch grid; None means square (``N`` must be a perfect square).
        temperature: softmax temperature τ (0.1).
        top_p: mass of the kept patch set (0.7).

    Returns:
        ``[B, T, N]`` in the input's floating dtype (float32 for half inputs); computed in float32 or wider.
    """
    if patch_tokens.ndim != 4:
        raise ValueError(
            f"patch_tokens must be [batch, frames, patches, dim], got {tuple(patch_tokens.shape)}"
        )
    B, T, N, D = patch_tokens.shape
    if grid is None:
        side = round(N**0.5)
        grid = (side, side)
    rows, cols = int(grid[0]), int(grid[1])
    if rows * cols != N:
        raise ValueError(f"patch grid {rows}x{cols} does not match {N} patch tokens; pass grid=(rows, cols)")
    if not 0.0 < top_p <= 1.0 or temperature <= 0:
        raise ValueError(
            f"need 0 < top_p <= 1 and temperature > 0, got top_p={top_p}, temperature={temperature}"
        )
    work = torch.promote_types(patch_tokens.dtype, torch.float32)
    F = patch_tokens.to(work)
    unit = _normalize(F)

    # spatial: mean of the existing up/down/left/right neighbours on the grid
    g = F.reshape(B, T, rows, cols, D)
    total = torch.zeros_like(g)
    count = torch.zeros(rows, cols, 1, dtype=work, device=F.device)
    total[:, :, 1:] += g[:, :, :-1]
    count[1:] += 1
    total[:, :, :-1] += g[:, :, 1:]
    count[:-1] += 1
    total[:, :, :, 1:] += g[:, :, :, :-1]
    count[:, 1:] += 1
    total[:, :, :, :-1] += g[:, :, :, 1:]
    count[:, :-1] += 1
    mean = (total / count.clamp_min(1)).reshape(B, T, N, D)
    s_sp = (unit - _normalize(mean)).norm(dim=-1)

    # temporal: neighbours in time (ends use their single neighbour)
    if T == 1:
        around = F
    else:
        inner = (F[:, :-2] + F[:, 2:]) / 2
        around = torch.cat([F[:, 1:2], inner, F[:, -2:-1]], dim=1)
    s_tp = (unit - _normalize(around)).norm(dim=-1)

    e0 = 0.5 * ((s_sp / temperature).softmax(-1) + (s_tp / temperature).softmax(-1))
    sorted_e, order = e0.sort(dim=-1)
    drop_sorted = sorted_e.cumsum(dim=-1) <= 1.0 - top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    s_sp = s_sp.masked_fill(drop, float("-inf"))
    s_tp = s_tp.masked_fill(drop, float("-inf"))
    energy = 0.5 * ((s_sp / temperature).softmax(-1) + (s_tp / temperature).softmax(-1))
    out_dtype = patch_tokens.dtype if patch_tokens.dtype in (torch.float32, torch.float64) else torch.float32
    return energy.to(out_dtype)


def camera_direction_vector(camera_direction: Tensor, batch: int) -> Tensor:
    """``[B, 2]`` (azimuth, elevation) radians -> ``[B, 3]`` unit vectors (+x front, +y left, +z up)."""
    if camera_direction.ndim != 2 or camera_direction.shape != (batch, 2):
        raise ValueError(
            f"camera_direction must be [{batch}, 2] (azimuth, elevation) radians, got {tuple(camera_direction.shape)}"
        )
    return unit_direction(camera_direction[:, 0], camera_direction[:, 1])
