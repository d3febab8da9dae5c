"""Distribution metrics on audio embeddings / classifier logits.

As hkchengrex/av-benchmark computes them (``av_bench/metrics/fad.py``, ``kl.py``, ``isc.py``):

- Fréchet distance ``|μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½`` with ``Σ`` the unbiased covariance
  (``np.cov``, ddof 1); ``tr (Σ1 Σ2)^½ = Σ sqrt(eig(Σ1^½ Σ2 Σ1^½))`` (symmetric, so no complex sqrtm).
- KL(gt‖pred) per paired clip: ``Σ_c softmax(g)_c (log_softmax(g)_c − log_softmax(p)_c)``.
- Inception score: rows shuffled by ``RandomState(2020)``, 10 splits ``[i·N//10, (i+1)·N//10)``, per split
  ``exp(mean_x KL(p(c|x) ‖ mean_x p(c|x)))``; mean and std over splits.

All in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "frechet_distance",
    "frechet_distance_from_stats",
    "inception_score",
    "kl_divergence",
    "mean_cov",
]


def _sqrt_psd(s: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)) @ vecs.transpose(-1, -2)


def frechet_distance_from_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Fréchet distance between Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (float64 scalar or
    batched over leading axes). Clamped at 0 (round-off can make identical sets ≈ −1e-12)."""
    mu1, sigma1, mu2, sigma2 = (t.to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.transpose(-1, -2)) / 2).clamp_min(0).sqrt().sum(-1)
    diag = torch.diagonal(sigma1, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(sigma2, dim1=-2, dim2=-1).sum(-1)
    return ((mu1 - mu2).square().sum(-1) + diag - 2 * tr_covmean).clamp_min(0)


def mean_cov(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of ``[N, D]`` features (N >= 2), float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2 samples, got shape {tuple(features.shape)}")
    x = features.to(torch.float64)
    mu = x.mean(0)
    d = x - mu
    return mu, d.T @ d / (x.shape[0] - 1)


def frechet_distance(pred_features: Tensor, target_features: Tensor) -> Tensor:
    """Fréchet distance between two embedding sets ``[N1, D]`` and ``[N2, D]`` (unpaired), float64."""
    if pred_features.shape[-1] != target_features.shape[-1]:
        raise ValueError(
            f"embedding sizes differ: pred {pred_features.shape[-1]} vs target {target_features.shape[-1]}"
        )
    return frechet_distance_from_stats(*mean_cov(pred_features), *mean_cov(target_features))


def kl_divergence(pred_logits: Tensor, target_logits: Tensor, eps: float | None = None) -> Tensor:
    """Per-pair KL(gt‖pred) over softmax class probabilities: ``[N, C]`` x2 -> ``[N]`` float64.

    ``eps``: audioldm_eval's variant ``Σ g (log g − log(p + eps))`` (ViSAGe's ``kld_mean`` uses 1e-6);
    None is av-benchmark's exact ``Σ g (log_softmax g − log_softmax p)``.
    """
    if pred_logits.shape != target_logits.shape:
        raise ValueError(
            f"pred logits {tuple(pred_logits.shape)} and target logits {tuple(target_logits.shape)} must "
            "have the same shape (paired clips, same classifier)"
        )
    log_p = torch.log_softmax(pred_logits.to(torch.float64), -1)
    if eps is not None:
        log_p = torch.log(log_p.exp() + eps)
    log_g = torch.log_softmax(target_logits.to(torch.float64), -1)
    return (log_g.exp() * (log_g - log_p)).sum(-1)


def inception_score(logits: Tensor, splits: int = 10, seed: int = 2020) -> tuple[Tensor, Tensor]:
    """Inception score ``(mean, std)`` over ``splits`` of softmax(logits) ``[N, C]`` (N >= splits)."""
    n = logits.shape[0]
    if logits.ndim != 2 or n < splits:
        raise ValueError(f"logits must be [N, C] with N >= splits={splits}, got shape {tuple(logits.shape)}")
    order = torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)
    p = torch.softmax(logits.to(torch.float64)[order], -1)
    log_p = torch.log_softmax(logits.to(torch.float64)[order], -1)
    scores = []
    for i in range(splits):
        part, log_part = (
            p[i * n // splits : (i + 1) * n // splits],
            log_p[i * n // splits : (i + 1) * n // splits],
        )
        marginal = part.mean(0, keepdim=True)
        kl = (part * (log_part - torch.log(marginal))).sum(-1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return s.mean(), s.std(correction=0)
