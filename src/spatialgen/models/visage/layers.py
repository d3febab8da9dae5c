"""Post-LN transformer layers of ViSAGe (BART layout): encoder layer and decoder layer with cross-attention.

Post-LN means ``x = LN(x + Drop(Attn(x)))`` then ``x = LN(x + Drop(fc2(Drop_act(GELU(fc1 x)))))``; the
GELU is the exact (erf) one, LayerNorm eps comes from the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.nn.attention import KVCache, MultiHeadAttention

if TYPE_CHECKING:
    from typing_extensions import Self

    from spatialgen.models.visage.config import ViSAGeConfig

__all__ = ["DecoderLayer", "EncoderLayer", "FeedForward"]


class FeedForward(nn.Module):
    """``fc2(Drop(GELU(fc1 x)))``."""

    def __init__(self, dim: int, hidden: int, activation_dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.activation_dropout = float(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the two linear layers around the GELU."""
        h = F.dropout(F.gelu(self.fc1(x)), self.activation_dropout, self.training)
        return self.fc2(h)


class _PostLNLayer(nn.Module):
    """Self-attention, cross-attention (subclasses with ``cross = True``) and FFN, each with its post-LN.

    Modules are registered in BART's order (self-attention, cross-attention, FFN), which fixes the order of
    parameters and hence of optimizer states in checkpoints.

    Args:
        dim, heads, ffn_dim: width, attention heads, FFN hidden width.
        dropout, attention_dropout, activation_dropout: residual, attention-probability and FFN dropout.
        eps: LayerNorm epsilon.
    """

    cross = False

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        *,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, dropout=attention_dropout)
        self.self_attn_norm = nn.LayerNorm(dim, eps=eps)
        if self.cross:
            self.cross_attn = MultiHeadAttention(dim, heads, dropout=attention_dropout)
            self.cross_attn_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = float(dropout)

    @classmethod
    def from_config(cls, config: ViSAGeConfig, heads: int, ffn_dim: int) -> Self:
        """A layer of ``config``'s width, dropouts and LayerNorm epsilon with ``heads`` and ``ffn_dim``."""
        return cls(
            config.d_model,
            heads,
            ffn_dim,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            activation_dropout=config.activation_dropout,
            eps=config.layer_norm_eps,
        )


class EncoderLayer(_PostLNLayer):
    """Bidirectional self-attention + FFN, each followed by a residual LayerNorm."""

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim] -> [B, N, dim]``."""
        x = self.self_attn_norm(x + F.dropout(self.self_attn(x), self.dropout, self.training))
        return self.ffn_norm(x + F.dropout(self.ffn(x), self.dropout, self.training))


class DecoderLayer(_PostLNLayer):
    """Causal self-attention, cross-attention to the encoder states, FFN; post-LN after each."""

    cross = True

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        cross_kv: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """``x [B, N, dim]`` attending causally to itself (and ``cache``) and to ``memory``/``cross_kv``."""
        if memory is None and cross_kv is None:
            raise ValueError(
                "DecoderLayer: pass the encoder states as memory= or their projection as cross_kv="
            )
        h = self.self_attn(x, causal=True, cache=cache)
        x = self.self_attn_norm(x + F.dropout(h, self.dropout, self.training))
        h = self.cross_attn(x, memory, kv=cross_kv)
        x = self.cross_attn_norm(x + F.dropout(h, self.dropout, self.training))
        return self.ffn_norm(x + F.dropout(self.ffn(x), self.dropout, self.training))
