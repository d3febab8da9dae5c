"""Spatial metrics of FOA: ViSAGe's energy-map CC / AUC-Judd and intensity-DOA error.

ViSAGe's protocol (jaeyeonkim99/visage ``evaluate_spatial.py``, ``utils/view_video.py``), reproduced exactly:

1. FOA ``[B, 4, T]`` (AmbiX, 16 kHz in the paper), padded or truncated to 5 s;
2. RMS energy map on the 2° grid with ViSAGe's √2 beam, per whole clip, 1 s chunks (1 fps) or 0.2 s
   chunks (5 fps), resampled ("sin θ correction") to 10,312-vectors
   (:func:`spatialgen.spatial.doa.visage_map_vector`);
3. CC = Pearson r, AUC = AUC-Judd with 1e-7 jitter (seeded here), ``tp_i = i/N_f`` as published;
4. per clip, the mean over chunks skipping NaN chunks; the caller averages over clips.

``beam="sn3d"`` is the corrected variant (true SN3D steering ``[1, cosν sinφ, sinν, cosν cosφ]``):
report it separately, never mixed with the published numbers.

A constant map (silence, W only) has no defined CC/AUC: it gives NaN and a warning, never a number.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from spatialgen.errors import InvalidAudioError
from spatialgen.metrics.functional._common import is_constant, warn_nan
from spatialgen.metrics.functional.direction import block_audible
from spatialgen.spatial.doa import as_foa64, intensity_doa, visage_fit_length, visage_map_vector
from spatialgen.spatial.geometry import great_circle

__all__ = [
    "ENERGY_MAP_BEAMS",
    "auc_judd",
    "doa_error",
    "energy_map_auc",
    "energy_map_cc",
    "energy_map_vectors",
    "pearson_cc",
]

ENERGY_MAP_BEAMS = ("visage", "sn3d")
# Scaling [W, Y, Z, X] by these turns ViSAGe's steering [1, √2 cY, sν, √2 cX] into the SN3D one:
# the map is a quadratic form in the channels, so scaling the input is the same as fixing the beam.
_SN3D_FIX = (1.0, 1.0 / math.sqrt(2.0), 1.0, 1.0 / math.sqrt(2.0))


def energy_map_vectors(
    x: Tensor,
    sample_rate: int,
    *,
    fps: int | None = None,
    beam: str = "visage",
    seconds: float | None = 5.0,
) -> Tensor:
    """The 10,312-vectors CC / AUC compare: ``[B, 10312]`` (whole clip) or ``[B, n_chunks, 10312]``.

    ``seconds`` pads / truncates first (ViSAGe: 5 s; None keeps the length, which must then be a whole
    number of ``sample_rate // fps`` chunks). ``beam`` is "visage" (published) or "sn3d" (corrected).
    """
    if beam not in ENERGY_MAP_BEAMS:
        raise ValueError(f"beam must be one of {ENERGY_MAP_BEAMS}, got {beam!r}")
    a = as_foa64(x, "foa")
    if seconds is not None:
        a = visage_fit_length(a, sample_rate, seconds)
    if beam == "sn3d":
        a = a * a.new_tensor(_SN3D_FIX)[:, None]
    return visage_map_vector(a, sample_rate, fps)


def pearson_cc(pred: Tensor, target: Tensor) -> Tensor:
    """Pearson correlation along the last axis (ViSAGe's CC): ``Σ p̃q̃ / sqrt(Σp̃² Σq̃²)``, z-scored
    with the population std. Constant vectors give NaN (see module doc). Float64 ``[...]``."""
    p, q = torch.broadcast_tensors(pred.to(torch.float64), target.to(torch.float64))
    bad = is_constant(p) | is_constant(q)
    p = (p - p.mean(-1, keepdim=True)) / p.std(-1, correction=0, keepdim=True)
    q = (q - q.mean(-1, keepdim=True)) / q.std(-1, correction=0, keepdim=True)
    cc = (p * q).sum(-1) / ((p * p).sum(-1) * (q * q).sum(-1)).sqrt()
    return torch.where(bad, torch.full_like(cc, math.nan), cc)


@lru_cache(maxsize=4)
def _jitter(n: int, seed: int) -> np.ndarray:
    # ViSAGe draws np.random.randn(n) / 1e7 from the global RNG; a fixed seed makes it reproducible.
    return np.random.RandomState(seed).randn(n)


def auc_judd(
    pred: Tensor,
    target: Tensor,
    *,
    jitter: float = 1e-7,
    seed: int | None = 0,
    noise: Tensor | None = None,
) -> Tensor:
    """AUC-Judd of saliency ``pred`` against ground truth ``target`` along the last axis (ViSAGe's AUC).

    ``S = pred + jitter·noise`` (``noise = RandomState(seed).randn(n)`` unless given; ``seed=None`` draws a
    fresh one), min-max normalised. Fixations: ``target > max(target) − std(target)``. For thresholds
    ``t_i`` = S at the fixations sorted descending: ``tp_i = i/N_f`` (published off-by-one kept),
    ``fp_i = (#(S ≥ t_i) − i)/(N − N_f)``; the curves are padded with 0 and 1 and integrated by the
    trapezoid rule. Constant inputs (or no/all fixations) give NaN. Float64 ``[...]``.
    """
    s, g = torch.broadcast_tensors(pred.to(torch.float64), target.to(torch.float64))
    n = s.shape[-1]
    bad = is_constant(s) | is_constant(g)
    if jitter:
        if noise is None:
            noise = torch.from_numpy(_jitter(n, seed) if seed is not None else np.random.randn(n))
        s = s + jitter * noise.to(s)
    lo, hi = s.amin(-1, keepdim=True), s.amax(-1, keepdim=True)
    s = (s - lo) / (hi - lo).clamp_min(torch.finfo(s.dtype).tiny)
    fix = g > g.amax(-1, keepdim=True) - g.std(-1, correction=0, keepdim=True)
    n_fix = fix.sum(-1, keepdim=True)
    thr = torch.where(fix, s, torch.full_like(s, -math.inf)).sort(-1, descending=True).values
    ascending = s.sort(-1).values.contiguous()
    above = n - torch.searchsorted(ascending, thr.contiguous(), side="left")  # #(S >= t_i)
    i = torch.arange(n, dtype=torch.float64, device=s.device)
    valid = i < n_fix
    nf = n_fix.to(torch.float64)
    tp = torch.where(valid, i / nf.clamp_min(1), torch.ones_like(s))
    fp = torch.where(valid, (above - i) / (n - nf).clamp_min(1), torch.ones_like(s))
    zeros, ones = s.new_zeros(*s.shape[:-1], 1), s.new_ones(*s.shape[:-1], 1)
    tp, fp = torch.cat((zeros, tp, ones), -1), torch.cat((zeros, fp, ones), -1)
    auc = ((fp[..., 1:] - fp[..., :-1]) * (tp[..., 1:] + tp[..., :-1]) / 2).sum(-1)
    bad = bad | (n_fix.squeeze(-1) == 0) | (n_fix.squeeze(-1) == n)
    return torch.where(bad, torch.full_like(auc, math.nan), auc)


def _per_clip(values: Tensor, fps: int | None, what: str) -> Tensor:
    """Chunk scores ``[B, n_chunks]`` -> per-clip means skipping NaN chunks (ViSAGe's nanmean)."""
    if fps is None:
        warn_nan(what, int(values.isnan().sum()), values.numel(), "constant energy map: silence or W only")
        return values
    finite = ~values.isnan()
    count = finite.sum(-1)
    mean = torch.where(finite, values, torch.zeros_like(values)).sum(-1) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    warn_nan(what, int(mean.isnan().sum()), mean.numel(), f"every {fps}-fps chunk has a constant energy map")
    return mean


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape[:-1] != target.shape[:-1]:
        raise InvalidAudioError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same batch and "
            "channel shape (pair each prediction with its ground truth)"
        )


def energy_map_cc(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    fps: int | None = None,
    beam: str = "visage",
    seconds: float | None = 5.0,
) -> Tensor:
    """Per-clip energy-map CC of FOA ``pred`` vs ``target`` ``[B, 4, T]`` -> ``[B]`` float64.

    ``fps=None``: whole clip ("corr_all"); 1 / 5: mean over 1 s / 0.2 s chunks skipping NaN chunks.
    """
    _check_pair(pred, target)
    p = energy_map_vectors(pred, sample_rate, fps=fps, beam=beam, seconds=seconds)
    g = energy_map_vectors(target, sample_rate, fps=fps, beam=beam, seconds=seconds)
    return _per_clip(pearson_cc(p, g), fps, "energy_map_cc")


def energy_map_auc(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    fps: int | None = None,
    beam: str = "visage",
    seconds: float | None = 5.0,
    seed: int | None = 0,
) -> Tensor:
    """Per-clip energy-map AUC-Judd (prediction = saliency, truth = fixations) ``[B]`` float64.

    Same chunking as :func:`energy_map_cc`; ``seed`` fixes the 1e-7 jitter (one vector for every map).
    """
    _check_pair(pred, target)
    p = energy_map_vectors(pred, sample_rate, fps=fps, beam=beam, seconds=seconds)
    g = energy_map_vectors(target, sample_rate, fps=fps, beam=beam, seconds=seconds)
    return _per_clip(auc_judd(p, g, seed=seed), fps, "energy_map_auc")


def doa_error(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    *,
    frame: float | None = 0.2,
    n_fft: int = 512,
    band: tuple[float, float] | None = None,
    silence_db: float = -60.0,
) -> Tensor:
    """Mean great-circle error (radians) between the intensity DOAs of FOA ``pred`` and ``target``.

    DOAs come from :func:`~spatialgen.spatial.doa.intensity_doa` per block of ``frame`` seconds (None:
    one per clip). Blocks whose ground-truth W energy is more than ``silence_db`` below the clip's
    loudest block (or below −100 dBFS) are skipped, and so are blocks where the prediction is silent
    (their direction is undefined). Returns ``[B]`` float64; a clip with no block audible in both is
    NaN with a warning.
    """
    _check_pair(pred, target)
    p, g = as_foa64(pred, "pred"), as_foa64(target, "target")
    az_p, el_p = intensity_doa(p, sample_rate, n_fft=n_fft, band=band, per_frame=frame)
    az_g, el_g = intensity_doa(g, sample_rate, n_fft=n_fft, band=band, per_frame=frame)
    err = great_circle(az_p, el_p, az_g, el_g)
    if frame is None:
        err = err[..., None]
    # a block silent in either signal has no direction (an all-silent prediction is NaN, not ~43°)
    loud = block_audible(p, sample_rate, frame, silence_db) & block_audible(g, sample_rate, frame, silence_db)
    loud = loud[..., : err.shape[-1]]
    count = loud.sum(-1)
    mean = torch.where(loud, err, torch.zeros_like(err)).sum(-1) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, torch.full_like(mean, math.nan))
    warn_nan("doa_error", int(mean.isnan().sum()), mean.numel(), "silent prediction or ground truth")
    return mean
