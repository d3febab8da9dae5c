"""ViSAGe decoder over summed per-stream token embeddings, and its per-stream output heads.

After ``VisageAmbisonicsDecoder`` and ``dac_heads`` of jaeyeonkim99/visage ``modeling/visage.py``.

Input at position ``p`` is the learned BOS (p = 0) or ``sum_k E_k[row_{p-1}[k]]`` (PAD contributes 0),
plus a learned position (BART offset 2: position p uses row p + 2), then LayerNorm, dropout and the
post-LN decoder layers. Stream ``k = c * Q + q`` has its own token table and its own linear head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.models.visage.config import ViSAGeConfig
from spatialgen.models.visage.layers import DecoderLayer
from spatialgen.nn.attention import KVCache

__all__ = ["POSITION_OFFSET", "DecodingState", "StreamHeads", "ViSAGeDecoder"]

#: BART's learned positions reserve two rows: position p reads row p + 2.
POSITION_OFFSET = 2


@dataclass
class DecodingState:
    """Incremental-decoding state: one self-attention cache per layer and the cached cross K/V."""

    batch: int
    caches: list[KVCache]
    cross_kv: list[tuple[Tensor, Tensor]]
    position: int = 0

    @property
    def offset(self) -> int:
        """Positions decoded so far."""
        return self.position


class ViSAGeDecoder(nn.Module):
    """Decoder stack: embedded inputs ``[B, N, d]`` at positions ``offset..`` -> hidden ``[B, N, d]``."""

    def __init__(self, config: ViSAGeConfig) -> None:
        super().__init__()
        d, K = config.d_model, config.num_streams
        self.config = config
        self.pad_token = config.pad_token
        self.rows = config.embedding_rows
        # One [K, rows, d] table (stream k = slice k): summing K lookups is one embedding_bag call.
        self.token_embedding = nn.Parameter(torch.zeros(K, self.rows, d))
        self.bos = nn.Parameter(torch.zeros(1, d))
        self.positions = nn.Embedding(config.max_target_length + POSITION_OFFSET, d)
        self.norm_embed = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer.from_config(config, config.decoder_heads, config.decoder_ffn_dim)
            for _ in range(config.decoder_layers)
        )

    def embed_tokens(self, rows: Tensor) -> Tensor:
        """``rows [B, N, K]`` token ids -> ``[B, N, d]`` summed stream embeddings.

        PAD (``codebook_size``) and negative ids (e.g. the -100 ignore label) mean "no token" and add 0.
        """
        B, N, K = rows.shape
        if self.token_embedding.shape[0] != K:
            raise ValueError(
                f"ViSAGeDecoder: rows have {K} streams, the model has {self.token_embedding.shape[0]}"
            )
        empty = (rows < 0) | (rows >= self.pad_token)
        offsets = torch.arange(K, device=rows.device) * self.rows
        # Every empty slot points at stream 0's PAD row, the embedding_bag padding index (always zero).
        index = torch.where(empty, self.pad_token, rows + offsets).reshape(B * N, K)
        weight = self.token_embedding.reshape(-1, self.token_embedding.shape[-1])
        out = F.embedding_bag(index, weight, mode="sum", padding_idx=self.pad_token)
        return out.reshape(B, N, -1)

    def input_embeddings(self, rows: Tensor, *, bos: bool = True) -> Tensor:
        """Decoder inputs for ``rows [B, N, K]``: ``[bos; embed(rows)]`` (``N + 1`` positions) or just ``embed``."""
        x = self.embed_tokens(rows)
        if bos:
            x = torch.cat([self.bos.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        return x

    def start(self, memory: Tensor, capacity: int) -> DecodingState:
        """Allocate caches for ``capacity`` positions and project ``memory`` once for cross-attention."""
        if capacity > self.config.max_target_length:
            raise ValueError(
                f"ViSAGeDecoder: {capacity} positions exceed max_target_length {self.config.max_target_length}"
            )
        B = memory.shape[0]
        caches, cross = [], []
        for layer in self.layers:
            attn = layer.self_attn
            caches.append(
                KVCache(B, attn.num_heads, attn.head_dim, capacity, dtype=memory.dtype, device=memory.device)
            )
            cross.append(layer.cross_attn.project_kv(memory))
        return DecodingState(B, caches, cross)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        state: DecodingState | None = None,
    ) -> Tensor:
        """Run the stack on embedded inputs ``x [B, N, d]``.

        Without ``state`` (training / teacher forcing) positions start at 0 and ``memory`` is required;
        with ``state`` positions continue after the cached ones and the caches are updated in place.
        """
        offset = 0 if state is None else state.offset
        N = x.shape[1]
        if offset + N > self.config.max_target_length:
            raise ValueError(
                f"ViSAGeDecoder: {offset + N} positions exceed max_target_length {self.config.max_target_length}"
            )
        pos = self.positions.weight[offset + POSITION_OFFSET : offset + N + POSITION_OFFSET]
        h = self.dropout(self.norm_embed(x + pos))
        for i, layer in enumerate(self.layers):
            if state is None:
                h = layer(h, memory)
            else:
                h = layer(h, cross_kv=state.cross_kv[i], cache=state.caches[i])
        if state is not None:
            state.position += N
        return h


class StreamHeads(nn.Module):
    """K linear heads ``d -> V`` stored as one ``[K, V, d]`` weight and ``[K, V]`` bias."""

    def __init__(self, num_streams: int, dim: int, vocab: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_streams, vocab, dim))
        self.bias = nn.Parameter(torch.zeros(num_streams, vocab))

    def select(self, streams: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Weights ``[S, V, d]`` and biases ``[S, V]`` of the heads ``streams`` (a copy; reuse it across steps)."""
        if streams is None:
            return self.weight, self.bias
        return self.weight[streams], self.bias[streams]

    def forward(
        self, hidden: Tensor, streams: Tensor | None = None, *, selected: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """Logits of the heads ``streams`` (default all) at every position: ``[B, N, d] -> [B, N, S, V]``.

        ``selected`` = a cached :meth:`select` result replaces ``streams`` (generation reuses a few head sets).
        """
        w, b = self.select(streams) if selected is None else selected
        return torch.einsum("bnd,svd->bnsv", hidden, w) + b

    def per_stream(self, hidden: Tensor) -> Tensor:
        """Head k applied to its own hidden states only: ``[B, K, F, d] -> [B, K, F, V]``."""
        return torch.einsum("bkfd,kvd->bkfv", hidden, self.weight) + self.bias[:, None, :]
