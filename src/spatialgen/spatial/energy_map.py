"""Steered-response energy maps from FOA, including ViSAGe's exact evaluation map.

Two families live here:

- :func:`energy_map`: a first-order beam ``b(u) = W + w1 · u·[X, Y, Z]`` steered over an equirect grid
  of cell centres, ``map = mean_t b²``. Row 0 is the top (highest elevation), column 0 is azimuth
  ≈ +180° (the left edge), so the map is laid out like an equirect video frame: +azimuth (left)
  sits left of the centre column.
- :func:`visage_energy_map` / :func:`visage_sphere_sample`: the ViSAGe metric's map and its
  "sin θ" resampling to a 10,312-vector, bit-for-bit the same formulas (√2 beam quirk included),
  for metric parity only. Its argmax is biased toward the horizon; never use it as a DOA.

FOA is AmbiX ``[..., 4, T]`` (ACN [W, Y, Z, X], SN3D). Maps are quadratic forms ``gᵀ C g`` of the 4×4
channel covariance ``C = mean_t a aᵀ``, which is exact and cheap; work is in float64, outputs keep the
input dtype.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from spatialgen.errors import InvalidAudioError
from spatialgen.spatial.checks import check_foa

__all__ = [
    "BEAM_ORDER1_GAINS",
    "VISAGE_MAP_SHAPE",
    "VISAGE_VECTOR_LENGTH",
    "as_foa64",
    "energy_map",
    "energy_map_grid",
    "visage_beam_weights",
    "visage_energy_map",
    "visage_fit_length",
    "visage_grid",
    "visage_map_vector",
    "visage_sphere_sample",
]

# First-order gain w1 of the dipole part for AmbiX (SN3D) input: b = W + w1 · u·d (Zotter & Frank 2019).
BEAM_ORDER1_GAINS: dict[str, float] = {
    "cardioid": 1.0,  # in-phase decoder, no rear lobe
    "max_re": math.sqrt(3.0),  # 3-D max-rE for N=1
    "hypercardioid": 3.0,  # basic / plane-wave decomposition (the N3D "basic" beam)
    "pwd": 3.0,
}
VISAGE_MAP_SHAPE = (90, 180)  # (elevation rows, azimuth columns) on ViSAGe's 2° grid
VISAGE_VECTOR_LENGTH = 10312  # length of the sin θ-resampled vector fed to CC / AUC


def as_foa64(x: Tensor | np.ndarray, name: str = "x") -> Tensor:
    """Validate FOA ``[..., 4, T]`` (tensor or numpy array) and return it as float64 on its device."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.is_complex():
        raise InvalidAudioError(f"{name}: must be real-valued audio, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return check_foa(x, name).to(torch.float64)


def _covariance(a: Tensor) -> Tensor:
    """Channel covariance ``mean_t a aᵀ``: ``[..., 4, T]`` -> ``[..., 4, 4]`` (float64)."""
    return a @ a.transpose(-1, -2) / a.shape[-1]


def _quadratic_map(cov: Tensor, gains: Tensor) -> Tensor:
    """``gᵀ C g`` for every grid point: cov ``[..., 4, 4]``, gains ``[H, W, 4]`` -> ``[..., H, W]``."""
    out = torch.einsum("hwc,...cd,hwd->...hw", gains, cov, gains)
    return out.clamp_min(0.0)  # a PSD form can round to -1e-17; keep sqrt and logs safe


def energy_map_grid(
    n_el: int, n_az: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Cell-centre angles (radians) of the :func:`energy_map` grid: ``(azimuth [n_az], elevation [n_el])``.

    ``elevation[i] = π/2 − π(i + ½)/n_el`` (row 0 = top) and ``azimuth[j] = π − 2π(j + ½)/n_az``
    (column 0 = +π side, i.e. the left edge; +90° left lies at column n_az/4), the layout of an
    equirect frame of size (n_el, n_az).
    """
    if n_el < 1 or n_az < 1:
        raise ValueError(f"energy_map_grid: n_el and n_az must be >= 1, got n_el={n_el}, n_az={n_az}")
    i = torch.arange(n_el, dtype=torch.float64, device=device)
    j = torch.arange(n_az, dtype=torch.float64, device=device)
    elevation = math.pi / 2 - math.pi * (i + 0.5) / n_el
    azimuth = math.pi - 2 * math.pi * (j + 0.5) / n_az
    return azimuth.to(dtype), elevation.to(dtype)


def _beam_gain(beam: str | float) -> float:
    if isinstance(beam, str):
        if beam not in BEAM_ORDER1_GAINS:
            raise ValueError(f"energy_map: unknown beam {beam!r}; choose one of {sorted(BEAM_ORDER1_GAINS)}")
        return BEAM_ORDER1_GAINS[beam]
    gain = float(beam)
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"energy_map: a numeric beam is the dipole gain w1 and must be >= 0, got {beam}")
    return gain


def energy_map(
    x: Tensor | np.ndarray,
    *,
    n_el: int = 90,
    n_az: int = 180,
    beam: str | float = "cardioid",
    rms: bool = False,
) -> Tensor:
    """Steered-response power map of FOA ``[..., 4, T]`` -> ``[..., n_el, n_az]``.

    The beam toward ``u`` is ``b(u, t) = W + w1 · u·[X, Y, Z]`` with ``w1`` from ``beam``: "cardioid"
    (1), "max_re" (√3), "hypercardioid"/"pwd" (3), or a number. The map is ``mean_t b²`` (``rms=True``:
    its square root). A plane wave gives ``s²(1 + w1 cos γ)²``, peaking at the source. Grid cells are
    described by :func:`energy_map_grid`: row 0 = top, column 0 = +180° (left edge), +azimuth on the
    left like an equirect frame. Broadband: band-pass the FOA first for a per-band map.
    """
    a = as_foa64(x)
    w1 = _beam_gain(beam)
    azimuth, elevation = energy_map_grid(n_el, n_az, device=a.device)
    el, az = torch.meshgrid(elevation, azimuth, indexing="ij")
    cos_el = torch.cos(el)
    # ACN channel order [W, Y, Z, X] against u = (cos az cos el, sin az cos el, sin el).
    gains = torch.stack(
        (torch.ones_like(el), w1 * torch.sin(az) * cos_el, w1 * torch.sin(el), w1 * torch.cos(az) * cos_el),
        -1,
    )
    out = _quadratic_map(_covariance(a), gains)
    if rms:
        out = out.sqrt()
    return out.to(out_dtype(x))


def out_dtype(x: Tensor | np.ndarray) -> torch.dtype:
    """Dtype results are returned in: the input's floating dtype, else torch's default float."""
    dtype = x.dtype if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x)).dtype
    return dtype if dtype.is_floating_point else torch.get_default_dtype()


# ------------------------------------------------------------------------------------------------
# ViSAGe's evaluation map (jaeyeonkim99/visage ``evaluate_spatial.py``, ``utils/view_video.py``)


def visage_grid(
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """ViSAGe's map grid in radians: ``(azimuth [180], elevation [90])``.

    Row ``r`` ↔ elevation ``88 − 2r``° (no +90° row; the −90° pole is the last row), column ``c`` ↔
    azimuth ``178 − 2c``° (+azimuth = left side of the map). Points sit on 2° corners, not centres.
    """
    r = torch.arange(VISAGE_MAP_SHAPE[0], dtype=torch.float64, device=device)
    c = torch.arange(VISAGE_MAP_SHAPE[1], dtype=torch.float64, device=device)
    return torch.deg2rad(178.0 - 2.0 * c).to(dtype), torch.deg2rad(88.0 - 2.0 * r).to(dtype)


def visage_beam_weights(*, device: torch.device | str | None = None) -> Tensor:
    """ViSAGe's steering gains ``[90, 180, 4]`` (float64) for ACN ``[W, Y, Z, X]``.

    ``g(φ, ν) = [1, √2·cos ν·sin φ, sin ν, √2·cos ν·cos φ]``: the √2 on Y and X (a misplaced parenthesis
    in the official SN3D normalisation) is kept on purpose for metric parity; it pulls peaks toward
    the horizon (a source at elevation θ peaks at ``atan(tan θ / √2)``).
    """
    azimuth, elevation = visage_grid(device=device)
    el, az = torch.meshgrid(elevation, azimuth, indexing="ij")
    root2_cos = math.sqrt(2.0) * torch.cos(el)
    return torch.stack(
        (torch.ones_like(el), root2_cos * torch.sin(az), torch.sin(el), root2_cos * torch.cos(az)), -1
    )


def visage_fit_length(x: Tensor, sample_rate: int, seconds: float = 5.0) -> Tensor:
    """Truncate or zero-pad the last axis to ``int(sample_rate * seconds)`` samples, as ViSAGe's
    evaluation does before computing maps (it uses 16 kHz, 5 s = 80,000 samples)."""
    if sample_rate <= 0 or seconds <= 0:
        raise ValueError(
            f"visage_fit_length: sample_rate and seconds must be > 0, got {sample_rate}, {seconds}"
        )
    n = int(sample_rate * seconds)
    length = x.shape[-1]
    if length >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - length))


def visage_energy_map(x: Tensor | np.ndarray, sample_rate: int, fps: int | None = None) -> Tensor:
    """ViSAGe's energy map of FOA ``[..., 4, T]``: ``E = sqrt(mean_t (g·a(t))²)`` on :func:`visage_grid`.

    ``fps=None`` gives one map for the whole clip, ``[..., 90, 180]``. ``fps=k`` splits the clip into
    consecutive chunks of ``sample_rate // k`` samples (1 fps = 1 s, 5 fps = 0.2 s) and gives
    ``[..., n_chunks, 90, 180]``; ``T`` must be a whole number of chunks, as in the official code (use
    :func:`visage_fit_length` to get ViSAGe's 5 s first). Broadband, no STFT. ViSAGe computes it at 16 kHz;
    resample beforehand for parity. Output keeps the input dtype (float64 internally).
    """
    a = as_foa64(x)
    if sample_rate <= 0:
        raise ValueError(f"visage_energy_map: sample_rate must be > 0, got {sample_rate}")
    if fps is not None:
        if fps <= 0 or sample_rate // fps == 0:
            raise ValueError(f"visage_energy_map: fps must be a positive int <= sample_rate, got {fps}")
        chunk = sample_rate // fps
        if a.shape[-1] % chunk:
            raise InvalidAudioError(
                f"x: {a.shape[-1]} samples is not a whole number of {chunk}-sample chunks at fps={fps}; "
                "pad or truncate it first (visage_fit_length)"
            )
        a = a.unflatten(-1, (a.shape[-1] // chunk, chunk)).movedim(-2, -3)  # [..., n_chunks, 4, chunk]
    out = _quadratic_map(_covariance(a), visage_beam_weights(device=a.device)).sqrt()
    return out.to(out_dtype(x))


@lru_cache(maxsize=8)
def _sphere_sample_plan(device: str) -> tuple[Tensor, Tensor, Tensor]:
    """Flat indices (left, right) into a 90×180 map and right-hand weights of ViSAGe's resampling."""
    n_rows, n_cols = VISAGE_MAP_SHAPE
    left, right, weight = [], [], []
    for row in range(n_rows):
        count = round(n_cols * math.sin(math.pi * (row + 0.5) / n_rows))  # round half to even, like np.round
        # Same operation order as the official code, so positions agree to the last bit.
        pos = np.arange(count) * (n_cols - 0.5 * (n_cols / count)) / count
        base = np.floor(pos).astype(np.int64)
        # pos < 179 always, so base + 1 stays in the row and np.interp's period never wraps.
        left.append(row * n_cols + base)
        right.append(row * n_cols + np.minimum(base + 1, n_cols - 1))
        weight.append(pos - base)

    def join(parts: list[np.ndarray], dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(np.concatenate(parts), dtype=dtype, device=device)

    return join(left, torch.long), join(right, torch.long), join(weight, torch.float64)


def visage_sphere_sample(maps: Tensor) -> Tensor:
    """ViSAGe's "sin θ correction" (``er_sphere_sample``): ``[..., 90, 180]`` -> ``[..., 10312]``.

    Row ``i`` keeps ``S_i = round(180·sin(π(i + ½)/90))`` linearly interpolated samples at column
    positions ``x_k = k·(180 − 90/S_i)/S_i``; the rows are concatenated (polar rows get fewer samples,
    roughly equal-area). These vectors are the exact inputs of ViSAGe's CC and AUC-Judd.
    """
    if maps.shape[-2:] != VISAGE_MAP_SHAPE:
        raise ValueError(f"visage_sphere_sample: expected maps [..., 90, 180], got shape {tuple(maps.shape)}")
    left, right, weight = _sphere_sample_plan(str(maps.device))
    flat = maps.flatten(-2).to(torch.float64)
    out = flat[..., left] * (1 - weight) + flat[..., right] * weight
    return out.to(maps.dtype if maps.is_floating_point() else torch.get_default_dtype())


def visage_map_vector(x: Tensor | np.ndarray, sample_rate: int, fps: int | None = None) -> Tensor:
    """The 1-D vectors ViSAGe's CC / AUC-Judd compare: ``visage_sphere_sample(visage_energy_map(...))``.

    ``[..., 10312]`` for the whole clip, ``[..., n_chunks, 10312]`` with ``fps``.
    """
    return visage_sphere_sample(visage_energy_map(x, sample_rate, fps))
