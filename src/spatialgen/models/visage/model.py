"""The ViSAGe network: encoder, decoder, per-stream heads, learned CFG nulls, and the training loss.

Conditions are grouped for classifier-free guidance: *visual* (CLIP features + energy map) and
*direction*. ``drop_visual`` / ``drop_direction`` (bool ``[B]``) replace a group by its learned null
embedding per sample (broadcast over time, then through the same projection as the real input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spatialgen.models.visage.config import ViSAGeConfig
from spatialgen.models.visage.decoder import DecodingState, StreamHeads, ViSAGeDecoder
from spatialgen.models.visage.encoder import ViSAGeEncoder
from spatialgen.models.visage.patterns import CodePattern, create_pattern

__all__ = ["ViSAGe", "ViSAGeOutput", "stream_cross_entropy"]


@dataclass
class ViSAGeOutput:
    """Teacher-forced forward result.

    Attributes:
        logits: ``[B, C, Q, F, V]``, aligned with the input codes (stream k's head at its own positions).
        hidden: ``[B, L, d]`` decoder states for the pattern sequence.
    """

    logits: Tensor
    hidden: Tensor


class ViSAGe(nn.Module):
    """ViSAGe encoder-decoder over codec tokens.

    Args:
        config: architecture; ``ViSAGeConfig()`` is the released full-size FOA model.
    """

    def __init__(self, config: ViSAGeConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ViSAGeConfig()
        self.pattern: CodePattern = create_pattern(config.pattern, config.num_channels, config.num_codebooks)
        self.encoder = ViSAGeEncoder(config)
        self.decoder = ViSAGeDecoder(config)
        self.heads = StreamHeads(config.num_streams, config.d_model, config.codebook_size)
        self.null_visual = nn.Parameter(torch.zeros(config.d_visual))
        self.null_energy = nn.Parameter(torch.zeros(config.energy_map_dim)) if config.energy_map_dim else None
        self.null_direction = nn.Parameter(torch.zeros(3)) if config.use_direction else None
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """BART init: linear/embedding weights ~ N(0, init_std), biases 0, PAD rows 0, BOS/EOS/nulls 0."""
        std = self.config.init_std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, std)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
        self.decoder.token_embedding.normal_(0.0, std)
        self.decoder.token_embedding[:, self.config.pad_token].zero_()
        self.heads.weight.normal_(0.0, std)
        self.heads.bias.zero_()
        for p in (self.encoder.bos, self.encoder.eos, self.decoder.bos, self.null_visual):
            p.zero_()
        for p in (self.null_energy, self.null_direction):
            if p is not None:
                p.zero_()

    # ------------------------------------------------------------------ encoder
    def _check_conditions(
        self, visual: Tensor, energy_map: Tensor | None, direction: Tensor | None
    ) -> tuple[int, int]:
        cfg = self.config
        if visual.ndim != 3 or visual.shape[-1] != cfg.d_visual:
            raise ValueError(f"visual must be [batch, frames, {cfg.d_visual}], got {tuple(visual.shape)}")
        B, T = visual.shape[:2]
        if not 1 <= T <= cfg.max_source_length:
            raise ValueError(f"visual has {T} frames; the model takes 1..{cfg.max_source_length}")
        if cfg.energy_map_dim:
            if energy_map is None or energy_map.shape != (B, T, cfg.energy_map_dim):
                got = None if energy_map is None else tuple(energy_map.shape)
                raise ValueError(f"energy_map must be [{B}, {T}, {cfg.energy_map_dim}], got {got}")
        elif energy_map is not None:
            raise ValueError("energy_map given but this config has energy_map_dim=0; pass energy_map=None")
        if cfg.use_direction:
            if direction is None or direction.shape != (B, 3):
                got = None if direction is None else tuple(direction.shape)
                raise ValueError(f"direction must be [{B}, 3] unit vectors, got {got}")
        elif direction is not None:
            raise ValueError("direction given but this config has use_direction=False; pass direction=None")
        return B, T

    @staticmethod
    def _substitute(x: Tensor, null: Tensor, drop: Tensor | None) -> Tensor:
        if drop is None:
            return x
        drop = drop.to(device=x.device, dtype=torch.bool).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(drop, null.to(x.dtype).expand_as(x), x)

    def encode(
        self,
        visual: Tensor,
        energy_map: Tensor | None = None,
        direction: Tensor | None = None,
        *,
        drop_visual: Tensor | None = None,
        drop_direction: Tensor | None = None,
    ) -> Tensor:
        """Encoder states ``[B, T + 2, d]``.

        Args:
            visual: ``[B, T, d_visual]`` per-frame CLIP embeddings.
            energy_map: ``[B, T, energy_map_dim]`` patch energy maps (if the config uses them).
            direction: ``[B, 3]`` camera direction (if the config uses it).
            drop_visual: bool ``[B]``: use the visual nulls (CLIP and energy map) for these samples.
            drop_direction: bool ``[B]``: use the direction null for these samples.
        """
        self._check_conditions(visual, energy_map, direction)
        dtype = self.encoder.visual_proj.weight.dtype
        visual = self._substitute(visual.to(dtype), self.null_visual, drop_visual)
        if self.null_energy is not None:
            energy_map = self._substitute(energy_map.to(dtype), self.null_energy, drop_visual)
        if self.null_direction is not None:
            direction = self._substitute(direction.to(dtype), self.null_direction, drop_direction)
        return self.encoder(visual, energy_map, direction)

    # ------------------------------------------------------------------ decoder
    def decode(self, sequence: Tensor, memory: Tensor) -> Tensor:
        """Teacher-forced decoder states ``[B, L, d]`` for a pattern ``sequence [B, L, K]``.

        Position p reads row p - 1 (BOS at p = 0) and predicts row p; row L - 1 is never an input.
        """
        x = self.decoder.input_embeddings(sequence[:, :-1], bos=True)
        return self.decoder(x, memory)

    def forward(
        self,
        visual: Tensor,
        codes: Tensor,
        energy_map: Tensor | None = None,
        direction: Tensor | None = None,
        *,
        drop_visual: Tensor | None = None,
        drop_direction: Tensor | None = None,
        input_codes: Tensor | None = None,
    ) -> ViSAGeOutput:
        """Teacher-forced logits for ``codes [B, C, Q, F]`` (ids in ``[0, V)``; -100 or PAD = missing frame).

        ``input_codes`` (same shape) replaces ``codes`` as the decoder's *input* history only (e.g. with some
        tokens corrupted for training); the logits stay aligned with ``codes``.
        """
        cfg = self.config
        if codes.ndim != 4 or codes.shape[1:3] != (cfg.num_channels, cfg.num_codebooks):
            raise ValueError(
                f"codes must be [batch, {cfg.num_channels}, {cfg.num_codebooks}, frames], got {tuple(codes.shape)}"
            )
        B, C, Q, F_ = codes.shape
        memory = self.encode(
            visual, energy_map, direction, drop_visual=drop_visual, drop_direction=drop_direction
        )
        if input_codes is not None and input_codes.shape != codes.shape:
            raise ValueError(f"input_codes {tuple(input_codes.shape)} must match codes {tuple(codes.shape)}")
        sequence, _ = self.pattern.build(codes if input_codes is None else input_codes, cfg.pad_token)
        hidden = self.decode(sequence, memory)
        # Each stream's logits only where it has tokens: gather [B, K, F, d] instead of all heads everywhere.
        pos = self.pattern.positions(F_, codes.device)  # [K, F]
        gathered = hidden[:, pos]  # [B, K, F, d]
        logits = self.heads.per_stream(gathered).reshape(B, C, Q, F_, -1)
        return ViSAGeOutput(logits=logits, hidden=hidden)

    def start_decoding(self, memory: Tensor, num_frames: int) -> DecodingState:
        """Caches for incremental decoding of ``num_frames`` frames (``pattern.sequence_length`` steps)."""
        return self.decoder.start(memory, self.pattern.sequence_length(num_frames))

    def decode_step(self, state: DecodingState, rows: Tensor | None) -> Tensor:
        """Decoder states for the next positions: BOS when ``rows`` is None, else ``embed(rows [B, N, K])``."""
        if rows is None:
            x = self.decoder.bos.expand(state.batch, 1, -1)
        else:
            x = self.decoder.input_embeddings(rows, bos=False)
        return self.decoder(x, state=state)


def stream_cross_entropy(
    logits: Tensor,
    codes: Tensor,
    weights: Sequence[float] | Tensor | None = None,
    *,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Weighted sum of per-stream cross entropies (jaeyeonkim99/visage ``modeling/visage.py``).

    Args:
        logits: ``[B, C, Q, F, V]`` from :meth:`ViSAGe.forward` (the pattern's mask is already applied:
            stream k's logits are taken only at the rows where the pattern places its tokens).
        codes: ``[B, C, Q, F]`` targets; ids outside ``[0, V)`` (-100, PAD) are ignored.
        weights: ``K = C * Q`` stream weights (default 1 each: the unweighted sum of the paper).
        label_smoothing: passed to the cross entropy.

    Returns:
        ``(loss, per_stream [K])``; a stream without any valid target contributes 0 (as the official code).
    """
    B, C, Q, F_, V = logits.shape
    if codes.shape != (B, C, Q, F_):
        raise ValueError(f"codes must be {(B, C, Q, F_)} to match logits, got {tuple(codes.shape)}")
    K = C * Q
    flat = logits.reshape(B, K, F_, V)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # CE in at least float32; float64 stays float64
    target = codes.reshape(B, K, F_)
    valid = (target >= 0) & (target < V)
    # CE = logsumexp - picked logit, without materialising a transposed copy of the logits.
    lse = torch.logsumexp(flat, dim=-1)
    picked = flat.gather(-1, torch.where(valid, target, 0)[..., None]).squeeze(-1)
    ce = lse - picked
    if label_smoothing:
        ce = (1.0 - label_smoothing) * ce + label_smoothing * (lse - flat.mean(dim=-1))
    valid = valid.to(ce.dtype)
    count = valid.sum(dim=(0, 2))
    ce = (ce * valid).sum(dim=(0, 2))
    per_stream = torch.where(count > 0, ce / count.clamp_min(1), torch.zeros_like(count))
    if weights is None:
        w = torch.ones(K, dtype=per_stream.dtype, device=per_stream.device)
    else:
        w = torch.as_tensor(weights, dtype=per_stream.dtype, device=per_stream.device)
        if w.shape != (K,):
            raise ValueError(f"weights must have {K} entries (one per stream), got shape {tuple(w.shape)}")
    return (w * per_stream).sum(), per_stream
