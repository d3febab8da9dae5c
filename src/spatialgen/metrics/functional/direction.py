"""Direction errors of FOA: azimuth, elevation and angular error of the dominant direction.

FOA papers after ViSAGe (OmniAudio, ICML 2025; SwanSphere; SpatialV2A) compare the dominant direction of
the generated field with the truth's. Two estimators of that direction, per clip or per block:

- ``"intensity"``: the energy-weighted sum of pseudo-intensity vectors ``Re(W* [X, Y, Z])`` over the
  block's STFT bins (:func:`spatialgen.spatial.doa.intensity_doa`);
- ``"map"``: the peak of a max-rE steered-response energy map on a 1° grid
  (:func:`spatialgen.spatial.energy_map.energy_map`, cell centres), which follows the loudest source
  rather than the vector mean of all of them.

Errors: azimuth ``|wrap(az_p − az_g)|`` in [0, π], elevation ``|el_p − el_g|``, angular the great-circle
angle. A block where either signal is silent (W energy below ``silence_db`` of that clip's loudest
block, or below −100 dBFS mean square) has no direction: it is skipped, and a clip with no block audible
in both is NaN with a warning, never a number (an all-silent prediction used to score ~43°).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spatialgen.errors import InvalidAudioError
from spatialgen.metrics.functional._common import warn_nan
from spatialgen.spatial.doa import intensity_doa
from spatialgen.spatial.energy_map import as_foa64, energy_map, energy_map_grid

__all__ = ["DIRECTION_ERRORS", "DIRECTION_METHODS", "block_audible", "direction_errors", "foa_direction"]

DIRECTION_METHODS = ("intensity", "map")
DIRECTION_ERRORS = ("azimuth", "elevation", "angular")
_FLOOR = 1e-10  # -100 dBFS mean square: digital silence
_MAP_GRID = (180, 360)  # 1° cells


def _blocks(x: Tensor, sample_rate: int, frame: float | None) -> Tensor:
    """``[..., C, T]`` -> ``[..., n_blocks, C, block]`` (zero-padded last block); one block when None."""
    if frame is None:
        return x.unsqueeze(-3)
    if not frame > 0:
        raise ValueError(f"frame must be a block duration in seconds > 0 or None, got {frame}")
    block = max(1, round(frame * sample_rate))
    n = math.ceil(x.shape[-1] / block)
    x = torch.nn.functional.pad(x, (0, n * block - x.shape[-1]))
    return x.unflatten(-1, (n, block)).movedim(-2, -3)


def block_audible(x: Tensor, sample_rate: int, frame: float | None, silence_db: float = -60.0) -> Tensor:
    """Bool ``[B, n_blocks]``: W (channel 0) energy above ``silence_db`` of the clip's loudest block
    and above −100 dBFS mean square."""
    blocks = _blocks(x.to(torch.float64)[..., :1, :], sample_rate, frame)  # [B, n, 1, block]
    mean_square = blocks.square().mean((-2, -1))
    energy = mean_square
    return (energy > energy.amax(-1, keepdim=True) * 10 ** (silence_db / 10)) & (mean_square > _FLOOR)


def foa_direction(
    x: Tensor, sample_rate: int, *, method: str = "intensity", frame: float | None = None, n_fft: int = 512
) -> tuple[Tensor, Tensor]:
    """Dominant ``(azimuth, elevation)`` in radians of FOA ``[B, 4, T]``: ``[B, n_blocks]`` each.

    ``frame`` seconds per block (None: one block, the whole clip). ``method``: see the module doc.
    Silent blocks give an arbitrary direction; mask them with :func:`block_audible`.
    """
    if method not in DIRECTION_METHODS:
        raise ValueError(f"method must be one of {DIRECTION_METHODS}, got {method!r}")
    a = as_foa64(x, "x")
    if a.ndim != 3:
        raise InvalidAudioError(f"FOA must be [batch, 4, samples], got {tuple(a.shape)}")
    if method == "intensity":
        az, el = intensity_doa(a, sample_rate, n_fft=n_fft, per_frame=frame)
        return (az[:, None], el[:, None]) if frame is None else (az, el)
    maps = energy_map(_blocks(a, sample_rate, frame), n_el=_MAP_GRID[0], n_az=_MAP_GRID[1], beam="max_re")
    peak = maps.flatten(-2).argmax(-1)  # [B, n]
    azimuth, elevation = energy_map_grid(*_MAP_GRID, device=a.device)
    return azimuth[peak % _MAP_GRID[1]], elevation[peak // _MAP_GRID[1]]


def _angular(az1: Tensor, el1: Tensor, az2: Tensor, el2: Tensor) -> Tensor:
    # haversine form: accurate for small angles
    h = torch.sin((el2 - el1) / 2) ** 2 + torch.cos(el1) * torch.cos(el2) * torch.sin((az2 - az1) / 2) ** 2
    return 2 * torch.asin(h.clamp(0, 1).sqrt())


def direction_errors(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    method: str = "intensity",
    frame: float | None = None,
    silence_db: float = -60.0,
    n_fft: int = 512,
) -> dict[str, Tensor]:
    """Per-clip ``{"azimuth", "elevation", "angular"}`` errors in radians ``[B]`` (float64).

    Each is the mean over the blocks of ``frame`` seconds (None: the whole clip) audible in both
    ``pred`` and ``target`` ``[B, 4, T]``; NaN (with one warning) for a clip without such a block.
    """
    if pred.shape != target.shape:
        raise InvalidAudioError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape; "
            "pad or truncate both to one length"
        )
    az_p, el_p = foa_direction(pred, sample_rate, method=method, frame=frame, n_fft=n_fft)
    az_g, el_g = foa_direction(target, sample_rate, method=method, frame=frame, n_fft=n_fft)
    keep = block_audible(pred, sample_rate, frame, silence_db) & block_audible(
        target, sample_rate, frame, silence_db
    )
    keep = keep[..., : az_p.shape[-1]]
    daz = torch.remainder(az_p - az_g + math.pi, 2 * math.pi) - math.pi
    errors = {
        "azimuth": daz.abs(),
        "elevation": (el_p - el_g).abs(),
        "angular": _angular(az_p, el_p, az_g, el_g),
    }
    count = keep.sum(-1)
    out = {}
    for name, err in errors.items():
        err = err.to(torch.float64)
        mean = torch.where(keep, err, torch.zeros_like(err)).sum(-1) / count.clamp_min(1)
        out[name] = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    warn_nan(
        f"direction_errors[{method}]",
        int((count == 0).sum()),
        count.numel(),
        "no block audible in both prediction and ground truth: silent prediction or truth",
    )
    return out
