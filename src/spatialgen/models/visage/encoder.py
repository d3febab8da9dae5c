"""ViSAGe encoder over per-frame visual tokens (jaeyeonkim99/visage ``modeling/visage.py``).

``x_t = W v_t + MLP_E(e_t) + P[t] + MLP_D(d)``, wrapped as ``[bos; x_1..x_T; eos]``, then LayerNorm,
dropout and the post-LN encoder layers. BOS/EOS get no position, energy or direction term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spatialgen.models.visage.config import ViSAGeConfig
from spatialgen.models.visage.layers import EncoderLayer

__all__ = ["ViSAGeEncoder", "conditioning_mlp"]


def conditioning_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """``Linear(in, dim) - GELU - Linear(dim, dim)``: the energy-map and direction embedders."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))


class ViSAGeEncoder(nn.Module):
    """Visual encoder: ``visual [B, T, d_visual]`` (+ energy map, direction) -> states ``[B, T + 2, d]``."""

    def __init__(self, config: ViSAGeConfig) -> None:
        super().__init__()
        d = config.d_model
        self.config = config
        self.visual_proj = nn.Linear(config.d_visual, d)
        self.energy_mlp = conditioning_mlp(config.energy_map_dim, d) if config.energy_map_dim > 0 else None
        self.direction_mlp = conditioning_mlp(3, d) if config.use_direction else None
        self.positions = nn.Embedding(config.max_source_length, d)
        self.bos = nn.Parameter(torch.zeros(1, d))
        self.eos = nn.Parameter(torch.zeros(1, d))
        self.norm_embed = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer.from_config(config, config.encoder_heads, config.encoder_ffn_dim)
            for _ in range(config.encoder_layers)
        )

    def embed(self, visual: Tensor, energy_map: Tensor | None, direction: Tensor | None) -> Tensor:
        """Input embeddings ``[B, T + 2, d]`` before the LayerNorm (BOS, frame tokens, EOS)."""
        B, T, _ = visual.shape
        x = self.visual_proj(visual)
        if self.energy_mlp is not None:
            x = x + self.energy_mlp(energy_map)
        x = x + self.positions.weight[:T]
        if self.direction_mlp is not None:
            x = x + self.direction_mlp(direction)[:, None, :]
        return torch.cat([self.bos.expand(B, 1, -1), x, self.eos.expand(B, 1, -1)], dim=1)

    def forward(
        self, visual: Tensor, energy_map: Tensor | None = None, direction: Tensor | None = None
    ) -> Tensor:
        """Encoder states ``[B, T + 2, d]`` (inputs already validated and null-substituted by the model)."""
        x = self.dropout(self.norm_embed(self.embed(visual, energy_map, direction)))
        for layer in self.layers:
            x = layer(x)
        return x
