"""Transformer blocks of the ViSAudio network (MM-DiT style, after MMAudio, reference/mmaudio.md §1.1).

- :class:`StreamBlock`: one modality's adaLN -> QKV -> per-head RMS QK-norm -> RoPE, and after attention
  the gated output projection and gated SwiGLU, each modulated by that stream's conditioning.
- :class:`JointBlock`: the shared multimodal block. The left and right latents go through the *same*
  audio stream weights, each modulated by its own ear's per-token conditioning, and share the same RoPE
  positions; with the visual (CLIP) stream they form one attention over ``[left; right; visual]``.
  Swapping left and right (with their conditioning) therefore swaps the outputs exactly.
- :class:`BranchBlock` / :class:`FinalLayer`: the single-modal per-ear stack and its output head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.nn.adaln import AdaLN, modulate
from spatialgen.nn.mlp import ChannelLastConv1d, SwiGLU, token_linear
from spatialgen.nn.rope import apply_rope

__all__ = ["BranchBlock", "FinalLayer", "JointBlock", "StreamBlock", "attention"]


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """SDPA over ``[B, H, N, Dh]`` heads, merged back to ``[B, N, H * Dh]``."""
    out = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
    return out.transpose(1, 2).flatten(2)


class StreamBlock(nn.Module):
    """Per-modality half of an MM-DiT block (also a complete self-attention block via :meth:`forward`).

    The QKV projection's output rows are ordered ``(q|k|v, head, channel)``.

    Args:
        dim: width; ``num_heads`` heads of ``dim // num_heads``.
        kernel_size: 1 for token-wise output projection/MLP, odd > 1 for temporal convolutions.
        pre_only: only produce q/k/v (the last joint block's visual stream, whose output is never used).
        mlp_ratio, mlp_multiple_of: SwiGLU width.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        kernel_size: int = 3,
        pre_only: bool = False,
        mlp_ratio: float = 4.0,
        mlp_multiple_of: int = 256,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pre_only = pre_only
        head_dim = dim // num_heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(head_dim)
        self.k_norm = nn.RMSNorm(head_dim)
        self.adaln = AdaLN(dim, 2 if pre_only else 6)
        if not pre_only:
            self.proj = token_linear(dim, dim, kernel_size)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
            self.mlp = SwiGLU(dim, int(dim * mlp_ratio), kernel_size, mlp_multiple_of)

    def pre_attention(
        self, x: Tensor, c: Tensor, angles: Tensor | None
    ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, ...]]:
        """Queries/keys/values ``[B, H, N, Dh]`` of ``x [B, N, D]`` under conditioning ``c`` ([B,1,D] or [B,N,D]).

        Returns ``((q, k, v), modulation)``; the modulation tensors feed :meth:`post_attention`.
        """
        mods = self.adaln(c)
        h = modulate(self.norm1(x), mods[0], mods[1])
        q, k, v = self.qkv(h).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if angles is not None:
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        return (q, k, v), tuple(mods[2:])

    def post_attention(self, x: Tensor, attn_out: Tensor, mods: tuple[Tensor, ...]) -> Tensor:
        """Gated residual output projection and gated SwiGLU (identity for ``pre_only``)."""
        if self.pre_only:
            return x
        gate_attn, shift, scale, gate_mlp = mods
        x = x + self.proj(attn_out) * gate_attn
        return x + self.mlp(modulate(self.norm2(x), shift, scale)) * gate_mlp

    def forward(self, x: Tensor, c: Tensor, angles: Tensor | None) -> Tensor:
        """Self-attention block: ``[B, N, D] -> [B, N, D]``."""
        qkv, mods = self.pre_attention(x, c, angles)
        return self.post_attention(x, attention(*qkv), mods)


class JointBlock(nn.Module):
    """Shared multimodal block: one attention over ``[left latent; right latent; visual]`` tokens.

    Args:
        dim, num_heads, mlp_ratio, mlp_multiple_of: sizes.
        last: the visual stream only contributes keys/values (its outputs are not used afterwards).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        last: bool = False,
        mlp_ratio: float = 4.0,
        mlp_multiple_of: int = 256,
    ) -> None:
        super().__init__()
        kw = {"mlp_ratio": mlp_ratio, "mlp_multiple_of": mlp_multiple_of}
        self.audio = StreamBlock(dim, num_heads, kernel_size=3, **kw)
        self.visual = StreamBlock(dim, num_heads, kernel_size=3, pre_only=last, **kw)

    def forward(
        self,
        audio: Tensor,
        visual: Tensor,
        audio_c: Tensor,
        visual_c: Tensor,
        audio_angles: Tensor,
        visual_angles: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """One joint step.

        Args:
            audio: ``[B, 2, N, D]`` left and right latent tokens.
            visual: ``[B, M, D]`` visual tokens.
            audio_c: ``[B, 2, N, D]`` per-ear, per-token conditioning.
            visual_c: ``[B, 1, D]`` global conditioning of the visual stream.
            audio_angles: ``[N, Dh/2]`` RoPE angles shared by both ears (same time, same position).
            visual_angles: ``[M, Dh/2]`` RoPE angles on the audio-latent time axis.

        Returns:
            updated ``(audio [B, 2, N, D], visual [B, M, D])``.
        """
        b, ears, n, _ = audio.shape
        # Both ears through the shared audio weights in one batched call.
        (aq, ak, av), a_mods = self.audio.pre_attention(
            audio.flatten(0, 1), audio_c.flatten(0, 1), audio_angles
        )
        (vq, vk, vv), v_mods = self.visual.pre_attention(visual, visual_c, visual_angles)

        def tokens(
            t: Tensor,
        ) -> Tensor:  # [B*2, H, N, Dh] -> [B, H, 2N, Dh]: ears side by side on the token axis
            return t.unflatten(0, (b, ears)).transpose(1, 2).flatten(2, 3)

        out = attention(*(torch.cat((tokens(a), v), dim=2) for a, v in ((aq, vq), (ak, vk), (av, vv))))
        audio_out = out[:, : ears * n].unflatten(1, (ears, n)).flatten(0, 1)
        audio = self.audio.post_attention(audio.flatten(0, 1), audio_out, a_mods).unflatten(0, (b, ears))
        visual = self.visual.post_attention(visual, out[:, ears * n :], v_mods)
        return audio, visual


class BranchBlock(StreamBlock):
    """Single-modal (one ear) self-attention block with temporal-conv projection and MLP."""

    def __init__(
        self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, mlp_multiple_of: int = 256
    ) -> None:
        super().__init__(dim, num_heads, kernel_size=3, mlp_ratio=mlp_ratio, mlp_multiple_of=mlp_multiple_of)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) -> LayerNorm -> Conv1d(k=7) to the latent width; starts at exactly zero output."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.adaln = AdaLN(dim, 2)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = ChannelLastConv1d(dim, out_dim, 7)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """``[B, N, D]`` tokens under ``c`` ([B,1,D] or [B,N,D]) -> ``[B, N, out_dim]``."""
        shift, scale = self.adaln(c)
        return self.conv(modulate(self.norm(x), shift, scale))
