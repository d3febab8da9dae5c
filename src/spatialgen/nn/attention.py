"""Multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``, with a KV cache.

One module serves self-attention (``context=None``), cross-attention (``context`` given) and
incremental decoding:

- self-attention cache: :class:`KVCache` preallocates ``[B, H, capacity, Dh]`` keys/values; every call
  writes the new positions and attends over everything written so far (causal across calls);
- cross-attention cache: :meth:`MultiHeadAttention.project_kv` projects the context once and the
  result is passed back as ``kv=`` on every step.

Projections are named ``q_proj``/``k_proj``/``v_proj``/``out_proj`` (the usual fairseq/BART layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KVCache", "MultiHeadAttention", "causal_mask"]


def causal_mask(n_queries: int, n_keys: int, *, device: torch.device | None = None) -> Tensor:
    """Boolean ``[n_queries, n_keys]`` mask (True = attend) for queries that are the last ``n_queries`` keys.

    Bottom-right aligned: query i sits at key position ``n_keys - n_queries + i`` and sees keys up to it,
    which is what an incremental step over a cache needs (SDPA's ``is_causal`` is top-left aligned).
    """
    if n_queries > n_keys:
        raise ValueError(f"causal_mask: n_queries ({n_queries}) must be <= n_keys ({n_keys})")
    q_pos = torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]
    return torch.arange(n_keys, device=device)[None, :] <= q_pos


class KVCache:
    """Preallocated self-attention keys/values of one layer: ``[B, H, capacity, Dh]`` each.

    Args:
        batch, num_heads, head_dim, capacity: cache geometry; ``capacity`` = longest sequence.
        dtype, device: storage type and place (those of the layer's activations).
    """

    def __init__(
        self,
        batch: int,
        num_heads: int,
        head_dim: int,
        capacity: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        if min(batch, num_heads, head_dim, capacity) <= 0:
            raise ValueError(
                f"KVCache: batch, num_heads, head_dim and capacity must be positive, got "
                f"{batch}, {num_heads}, {head_dim}, {capacity}"
            )
        shape = (batch, num_heads, capacity, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        """Maximum number of positions the cache holds."""
        return self.keys.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``k, v [B, H, N, Dh]`` after the cached positions; return all cached keys/values so far."""
        n = k.shape[2]
        end = self.length + n
        if end > self.capacity:
            raise ValueError(
                f"KVCache: {end} positions exceed the capacity {self.capacity}; allocate a larger cache"
            )
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (with biases), evaluated with SDPA.

    Args:
        dim: model width (queries, keys/values source and output).
        num_heads: heads; ``dim`` must divide by it.
        dropout: attention-probability dropout (training only).
    """

    def __init__(self, dim: int, num_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MultiHeadAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.dropout = float(dropout)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # [B, H, N, Dh]

    def project_kv(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Per-head keys and values ``[B, H, M, Dh]`` of ``context [B, M, dim]`` (cache across steps)."""
        return self._split(self.k_proj(context)), self._split(self.v_proj(context))

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        kv: tuple[Tensor, Tensor] | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Attend from ``x [B, N, dim]``.

        Args:
            x: queries (and, for self-attention, keys/values).
            context: ``[B, M, dim]`` keys/values source for cross-attention.
            kv: precomputed ``project_kv(context)`` (takes precedence over ``context``).
            causal: causal self-attention (with a cache: over all cached positions plus the new ones).
            cache: self-attention :class:`KVCache`; the new keys/values are appended to it.

        Returns:
            ``[B, N, dim]``.
        """
        q = self._split(self.q_proj(x))
        is_self = kv is None and context is None
        k, v = kv if kv is not None else self.project_kv(x if context is None else context)
        if cache is not None:
            if not is_self:
                raise ValueError(
                    "MultiHeadAttention: a KVCache is for self-attention; pass kv= for cross-attention"
                )
            k, v = cache.append(k, v)
        n, m = q.shape[2], k.shape[2]
        attn_mask = None
        is_causal = causal and n > 1 and n == m  # top-left == bottom-right alignment: SDPA's fused path
        if causal and n > 1 and n != m:
            attn_mask = causal_mask(n, m, device=q.device)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))
