"""Token statistics of ViSAGe training: per-codebook accuracy/perplexity sums and the unigram entropy."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["token_counts", "token_stats", "unigram_entropy"]


def token_stats(logits: Tensor, codes: Tensor) -> Tensor:
    """Per codebook ``[Q, 3]``: summed cross entropy, correct argmax count, valid target count (float64).

    ``logits [B, C, Q, F, V]``, ``codes [B, C, Q, F]`` (negative or out-of-range ids are not targets).
    """
    V = logits.shape[-1]
    valid = (codes >= 0) & (codes < V)
    target = torch.where(valid, codes, 0)
    x = logits.float()
    ce = torch.logsumexp(x, -1) - x.gather(-1, target[..., None]).squeeze(-1)
    correct = (x.argmax(-1) == target) & valid
    w = valid.double()
    return torch.stack(
        [(ce.double() * w).sum((0, 1, 3)), correct.double().sum((0, 1, 3)), w.sum((0, 1, 3))], dim=-1
    )


def token_counts(codes: Tensor, num_streams: int, codebook_size: int) -> Tensor:
    """``[K, V]`` counts of each code per stream (``codes [B, C, Q, F]`` with ``C · Q = K`` streams)."""
    K, V = num_streams, codebook_size
    flat = codes.reshape(codes.shape[0], K, -1).transpose(0, 1).reshape(K, -1)
    valid = (flat >= 0) & (flat < V)
    index = torch.where(valid, flat + V * torch.arange(K, device=flat.device)[:, None], K * V)
    return torch.bincount(index.reshape(-1), minlength=K * V + 1)[: K * V].reshape(K, V)


def unigram_entropy(counts: Tensor) -> Tensor:
    """Summed per-stream entropy (nats) of the token marginals ``counts [K, V]``: the loss of a model
    that ignores all context."""
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    return -(p * p.clamp_min(1e-300).log()).sum()
