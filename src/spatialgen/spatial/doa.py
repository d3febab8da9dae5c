"""Direction of arrival and diffuseness from FOA by the pseudo-intensity vector (PIV).

For AmbiX input ``[..., 4, T]`` (ACN [W, Y, Z, X], SN3D) the STFT-domain pseudo-intensity is

    I(t, f) = Re{ W*(t, f) · [X, Y, Z](t, f) }

(Jarrett, Habets & Naylor 2010). A plane wave ``s`` from ``u`` encodes to ``[s, s·u_y, s·u_z, s·u_x]``, so
``I = |S|² u`` in every bin and the DOA is exact. Summing ``I`` over time-frequency bins weights each
bin by its energy. Diffuseness uses the SN3D energy density ``E = ½(|W|² + ‖[X, Y, Z]‖²)``:

    ψ = 1 − ‖Σ I‖ / Σ E,

0 for a single plane wave (``‖I‖ = E`` per bin) and → 1 for an isotropic diffuse field (``Σ I`` → 0).

Energy maps live in :mod:`spatialgen.spatial.energy_map` and are re-exported here.
Work is in float64; outputs keep the input's floating dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from spatialgen.spatial.energy_map import (
    BEAM_ORDER1_GAINS,
    VISAGE_MAP_SHAPE,
    VISAGE_VECTOR_LENGTH,
    as_foa64,
    energy_map,
    energy_map_grid,
    out_dtype,
    visage_beam_weights,
    visage_energy_map,
    visage_fit_length,
    visage_grid,
    visage_map_vector,
    visage_sphere_sample,
)
from spatialgen.spatial.geometry import direction_to_angles

__all__ = [
    "BEAM_ORDER1_GAINS",
    "VISAGE_MAP_SHAPE",
    "VISAGE_VECTOR_LENGTH",
    "IntensityField",
    "as_foa64",
    "diffuseness",
    "energy_map",
    "energy_map_grid",
    "intensity_doa",
    "intensity_vectors",
    "visage_beam_weights",
    "visage_energy_map",
    "visage_fit_length",
    "visage_grid",
    "visage_map_vector",
    "visage_sphere_sample",
]

_WEIGHTINGS = ("energy", "unit")


class IntensityField(NamedTuple):
    """STFT-domain pseudo-intensity of FOA (float64).

    intensity: ``[..., 3, n_bins, n_frames]`` in (x, y, z) order, i.e. ``Re{W* [X, Y, Z]}``.
    energy: ``[..., n_bins, n_frames]``, ``½(|W|² + |X|² + |Y|² + |Z|²)``.
    freqs: ``[n_bins]`` bin frequencies in Hz (only the bins inside ``band``).
    times: ``[n_frames]`` frame centre times in seconds (frame ``j`` is centred on sample ``j·hop``).
    """

    intensity: Tensor
    energy: Tensor
    freqs: Tensor
    times: Tensor


def _check_stft_args(
    sample_rate: float, n_fft: int, hop: int | None, band: tuple[float, float] | None
) -> int:
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if n_fft < 2:
        raise ValueError(f"n_fft must be >= 2, got {n_fft}")
    hop = n_fft // 2 if hop is None else hop
    if hop < 1:
        raise ValueError(f"hop must be >= 1, got {hop}")
    if band is not None:
        fmin, fmax = band
        if not (0 <= fmin < fmax):
            raise ValueError(f"band must be (fmin, fmax) in Hz with 0 <= fmin < fmax, got {band}")
    return hop


def intensity_vectors(
    x: Tensor | np.ndarray,
    sample_rate: float,
    *,
    n_fft: int = 512,
    hop: int | None = None,
    band: tuple[float, float] | None = None,
) -> IntensityField:
    """Pseudo-intensity vectors of FOA ``[..., 4, T]`` per STFT bin (Hann window, zero-padded centring).

    ``band=(fmin, fmax)`` in Hz keeps only the bins with ``fmin <= f <= fmax``. ``hop`` defaults to
    ``n_fft // 2``. See :class:`IntensityField` for the layout.
    """
    a = as_foa64(x)
    hop = _check_stft_args(sample_rate, n_fft, hop, band)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=a.device) * (sample_rate / n_fft)
    keep = None
    if band is not None:
        keep = (freqs >= band[0]) & (freqs <= band[1])
        if not bool(keep.any()):
            raise ValueError(f"band {band} Hz contains no STFT bin (bin spacing {sample_rate / n_fft:g} Hz)")
        freqs = freqs[keep]
    window = torch.hann_window(n_fft, dtype=torch.float64, device=a.device)
    flat = a.reshape(-1, a.shape[-1])
    # Constant padding so clips shorter than n_fft work; every frame is centred on sample j·hop.
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    spec = spec.reshape(*a.shape[:-1], *spec.shape[-2:])  # [..., 4, F, N]
    if keep is not None:
        spec = spec[..., keep, :]
    w, y, z, xx = spec.unbind(-3)
    dipole = torch.stack((xx, y, z), dim=-3)  # (x, y, z) order
    intensity = (w.conj().unsqueeze(-3) * dipole).real
    energy = 0.5 * (w.abs().square() + dipole.abs().square().sum(-3))
    times = torch.arange(spec.shape[-1], dtype=torch.float64, device=a.device) * (hop / sample_rate)
    return IntensityField(intensity, energy, freqs, times)


def _pool_frames(
    values: Tensor, n_samples: int, sample_rate: float, hop: int, per_frame: float | None
) -> Tensor:
    """Sum ``[..., n_frames]`` STFT frames into blocks of ``per_frame`` s (or one block when None).

    Block ``k`` covers samples ``[k·L, (k+1)·L)`` with ``L = round(per_frame · sample_rate)``; an STFT
    frame goes to the block holding its centre sample. Returns ``[...]`` or ``[..., n_blocks]``.
    """
    if per_frame is None:
        return values.sum(-1)
    if not per_frame > 0:
        raise ValueError(f"per_frame must be a frame duration in seconds > 0, got {per_frame}")
    block = max(1, round(per_frame * sample_rate))
    n_blocks = math.ceil(n_samples / block)
    centres = torch.arange(values.shape[-1], device=values.device) * hop
    index = torch.div(centres, block, rounding_mode="floor").clamp_max(n_blocks - 1)
    assign = torch.nn.functional.one_hot(index, n_blocks).to(values.dtype)  # [n_frames, n_blocks]
    return values @ assign


def intensity_doa(
    x: Tensor | np.ndarray,
    sample_rate: float,
    *,
    n_fft: int = 512,
    hop: int | None = None,
    band: tuple[float, float] | None = None,
    per_frame: float | None = None,
    weighting: str = "energy",
) -> tuple[Tensor, Tensor]:
    """Direction of arrival ``(azimuth, elevation)`` in radians of FOA ``[..., 4, T]`` by PIV.

    ``weighting="energy"`` sums the intensity vectors (each bin weighted by its energy, the standard
    estimator); ``"unit"`` sums unit vectors so every bin with energy votes equally. ``band`` restricts
    the bins (Hz), e.g. to isolate one source. With ``per_frame`` (seconds) the clip is split into
    consecutive blocks of that duration and the output is ``[..., n_blocks]``, block ``k`` centred at
    ``(k + ½)·per_frame`` s; otherwise one direction per clip, ``[...]``. Azimuth is in (−π, π];
    a silent block gives (0, 0).
    """
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    hop = _check_stft_args(sample_rate, n_fft, hop, band)
    field = intensity_vectors(x, sample_rate, n_fft=n_fft, hop=hop, band=band)
    vec = field.intensity
    if weighting == "unit":
        norm = vec.norm(dim=-3, keepdim=True)
        vec = torch.where(norm > 0, vec / norm.clamp_min(torch.finfo(vec.dtype).tiny), torch.zeros_like(vec))
    total = _pool_frames(vec.sum(-2), x.shape[-1], sample_rate, hop, per_frame)  # [..., 3(, n_blocks)]
    azimuth, elevation = direction_to_angles(total.movedim(-1, -2) if per_frame is not None else total)
    dtype = out_dtype(x)
    return azimuth.to(dtype), elevation.to(dtype)


def diffuseness(
    x: Tensor | np.ndarray,
    sample_rate: float,
    *,
    n_fft: int = 512,
    hop: int | None = None,
    band: tuple[float, float] | None = None,
    per_frame: float | None = None,
) -> Tensor:
    """Diffuseness ``ψ = 1 − ‖Σ I‖ / Σ ½(|W|² + ‖[X, Y, Z]‖²)`` of FOA ``[..., 4, T]`` (AmbiX SN3D).

    0 for a single plane wave, → 1 for isotropic diffuse sound. Sums run over the STFT bins in
    ``band`` and over the whole clip, or over blocks of ``per_frame`` seconds (output ``[..., n_blocks]``,
    as in :func:`intensity_doa`). A silent clip or block gives 1 (no directional energy).
    """
    hop = _check_stft_args(sample_rate, n_fft, hop, band)
    field = intensity_vectors(x, sample_rate, n_fft=n_fft, hop=hop, band=band)
    n = x.shape[-1]
    intensity = _pool_frames(field.intensity.sum(-2), n, sample_rate, hop, per_frame)
    energy = _pool_frames(field.energy.sum(-2), n, sample_rate, hop, per_frame)
    ratio = intensity.norm(dim=-2 if per_frame is not None else -1) / energy.clamp_min(
        torch.finfo(energy.dtype).tiny
    )
    return (1.0 - ratio).clamp(0.0, 1.0).to(out_dtype(x))
