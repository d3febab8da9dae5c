"""Transformer blocks of the ViSAudio network (MM-DiT style, after MMAudio).

As hkchengrex/MMAudio ``mmaudio/model/transformer_layers.py`` builds ``JointBlock`` / ``MMDitSingleBlock``.

- :class:`StreamBlock`: one modality's adaLN -> QKV -> per-head RMS QK-norm -> RoPE, and after attention
  the gated output projection and gated SwiGLU, each modulated by that stream's conditioning.
- :class:`JointBlock`: the shared multimodal block. The left and right latents go through the *same*
  audio stream weights, each modulated by its own ear's per-token conditioning, and share the same RoPE
  positions; with the visual (CLIP) and text streams they form one attention over
  ``[left; right; visual; text]`` (or one per ear, ``ear_attention="per_ear"``). Swapping left and
  right (with their conditioning) therefore swaps the outputs exactly.
- :class:`BranchBlock` / :class:`FinalLayer`: the single-modal per-ear stack and its output head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.nn.adaln import AdaLN, modulate
from spatialgen.nn.mlp import ChannelLastConv1d, SwiGLU, token_linear
from spatialgen.nn.rope import apply_rope

__all__ = ["BranchBlock", "FinalLayer", "JointBlock", "StreamBlock", "attention"]


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """SDPA over ``[B, H, N, Dh]`` heads, merged back to ``[B, N, H * Dh]``; ``mask`` is an additive
    logit bias broadcast to ``[B, H, N, N_k]``."""
    out = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous(), attn_mask=mask)
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
    """Shared multimodal block: the ears' latent tokens attend jointly with the visual and text tokens.

    Args:
        dim, num_heads, mlp_ratio, mlp_multiple_of: sizes.
        last: the visual and text streams only contribute keys/values (outputs not used afterwards).
        text: build the text stream (token-wise projection and MLP, no RoPE, as MMAudio's).
        ear_attention: ``"joint"`` / ``"joint_offset"``: one attention over ``[left; right; visual; text]``,
            the latter adding a learnable per-head logit offset (init ``-log 2``) to every audio key;
            ``"per_ear"``: one attention per ear over ``[ear; visual; text]``, with the visual and text
            streams batched per ear (see :class:`~spatialgen.models.visaudio.config.ViSAudioConfig`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        last: bool = False,
        text: bool = False,
        ear_attention: str = "joint",
        mlp_ratio: float = 4.0,
        mlp_multiple_of: int = 256,
    ) -> None:
        super().__init__()
        kw = {"mlp_ratio": mlp_ratio, "mlp_multiple_of": mlp_multiple_of}
        self.ear_attention = ear_attention
        self.audio = StreamBlock(dim, num_heads, kernel_size=3, **kw)
        self.visual = StreamBlock(dim, num_heads, kernel_size=3, pre_only=last, **kw)
        self.text = StreamBlock(dim, num_heads, kernel_size=1, pre_only=last, **kw) if text else None
        if ear_attention == "joint_offset":
            # With L = R each audio time step appears as two equal keys; exp(-log 2) makes them weigh as one.
            self.audio_logit = nn.Parameter(torch.full((num_heads,), -math.log(2.0)))

    @property
    def streams_per_ear(self) -> bool:
        """True when the visual/text streams carry one copy per ear (``[B * 2, ...]``)."""
        return self.ear_attention == "per_ear"

    def forward(
        self,
        audio: Tensor,
        visual: Tensor,
        audio_c: Tensor,
        visual_c: Tensor,
        audio_angles: Tensor,
        visual_angles: Tensor,
        text: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One joint step.

        Args:
            audio: ``[B, 2, N, D]`` left and right latent tokens.
            visual: ``[B', M, D]`` visual tokens (``B' = B``, or ``B * 2`` ears-minor for ``per_ear``).
            audio_c: ``[B, 2, N, D]`` (or ``[B, 2, 1, D]``) per-ear conditioning.
            visual_c: ``[B', 1, D]`` global conditioning of the visual and text streams.
            audio_angles: ``[N, Dh/2]`` RoPE angles shared by both ears (same time, same position).
            visual_angles: ``[M, Dh/2]`` RoPE angles on the audio-latent time axis.
            text: ``[B', L, D]`` text tokens (no RoPE), or None.

        Returns:
            updated ``(audio [B, 2, N, D], visual [B', M, D], text [B', L, D] or None)``.
        """
        b, ears, n, _ = audio.shape
        # Both ears through the shared audio weights in one batched call.
        a_qkv, a_mods = self.audio.pre_attention(audio.flatten(0, 1), audio_c.flatten(0, 1), audio_angles)
        v_qkv, v_mods = self.visual.pre_attention(visual, visual_c, visual_angles)
        others = [v_qkv]
        if self.text is not None:
            if text is None:
                raise ValueError("this joint block has a text stream: pass the text tokens")
            t_qkv, t_mods = self.text.pre_attention(text, visual_c, None)
            others.append(t_qkv)
        if self.streams_per_ear:  # [B*2, H, N + M + L, Dh]: each ear with its own copy of the other streams
            qkv = [torch.cat((a_qkv[i], *(o[i] for o in others)), dim=2) for i in range(3)]
            out = attention(*qkv)
            audio_out, rest = out[:, :n], out[:, n:]
        else:  # [B, H, 2N + M + L, Dh]: ears side by side on the token axis
            qkv = [
                torch.cat(
                    (a_qkv[i].unflatten(0, (b, ears)).transpose(1, 2).flatten(2, 3), *(o[i] for o in others)),
                    dim=2,
                )
                for i in range(3)
            ]
            mask = None
            if self.ear_attention == "joint_offset":
                k_len = qkv[1].shape[2]
                mask = torch.zeros(
                    self.audio_logit.shape[0], 1, k_len, dtype=qkv[0].dtype, device=qkv[0].device
                )
                mask[..., : ears * n] = self.audio_logit.to(mask.dtype)[:, None, None]
            out = attention(*qkv, mask=mask)
            audio_out, rest = out[:, : ears * n].unflatten(1, (ears, n)).flatten(0, 1), out[:, ears * n :]
        audio = self.audio.post_attention(audio.flatten(0, 1), audio_out, a_mods).unflatten(0, (b, ears))
        m = visual.shape[1]
        visual = self.visual.post_attention(visual, rest[:, :m], v_mods)
        if self.text is not None:
            text = self.text.post_attention(text, rest[:, m:], t_mods)
        return audio, visual, text


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
