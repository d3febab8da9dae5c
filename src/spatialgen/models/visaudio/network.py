"""The ViSAudio dual-branch flow network.

``x [B, 2, D, F]`` (left/right normalised latents) and ``t [B]`` -> velocity ``[B, 2, D, F]``:

1. a shared audio input projection (Conv1d k7 -> act -> temporal SwiGLU) embeds each ear;
2. ``joint_depth`` shared MM-DiT blocks attend over ``[left; right; CLIP; text]`` tokens; both ears use
   the audio weights with their own per-ear conditioning and the same time-aligned RoPE positions
   (``ear_attention`` selects one joint attention, the same with MMAudio-exact audio-key offsets, or one
   attention per ear);
3. ``branch_depth`` single-modal blocks per ear (separate weights) and a per-ear output layer, all
   modulated by that ear's per-token conditioning; the output layer uses it too (``final_cond="local"``,
   MMAudio's bug #55 fixed) or MMAudio's global condition (``"global"``, as the released weights).

A freshly built network outputs exactly zero (DiT zero-init of every adaLN and of the output convs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spatialgen.models.visaudio.blocks import BranchBlock, FinalLayer, JointBlock
from spatialgen.models.visaudio.conditioning import Conditions, SpacetimeConditioning
from spatialgen.models.visaudio.config import ViSAudioConfig
from spatialgen.models.visaudio.latents import LatentNormalizer
from spatialgen.nn.adaln import AdaLN
from spatialgen.nn.mlp import ChannelLastConv1d, SwiGLU
from spatialgen.nn.rope import rope_angles

__all__ = ["EarBranch", "ViSAudioNet"]


class EarBranch(nn.Module):
    """One ear's single-modal stack and output layer."""

    def __init__(self, config: ViSAudioConfig) -> None:
        super().__init__()
        kw = {"mlp_ratio": config.mlp_ratio, "mlp_multiple_of": config.mlp_multiple_of}
        self.blocks = nn.ModuleList(
            BranchBlock(config.hidden_dim, config.num_heads, **kw) for _ in range(config.branch_depth)
        )
        self.final = FinalLayer(config.hidden_dim, config.latent_dim)

    def forward(self, x: Tensor, c: Tensor, angles: Tensor, final_c: Tensor | None = None) -> Tensor:
        """``[B, N, D]`` tokens under per-token ``c [B, N, D]`` -> ``[B, N, latent_dim]``; the output layer
        uses ``final_c`` when given (MMAudio's global condition) and ``c`` otherwise."""
        for block in self.blocks:
            x = block(x, c, angles)
        return self.final(x, c if final_c is None else final_c)


class ViSAudioNet(nn.Module):
    """Dual-branch MM-DiT velocity network with the conditional spacetime module.

    Args:
        config: sizes and rates (see :class:`ViSAudioConfig`; ``visaudio_config("S_16k")`` etc.).

    Typical use::

        cond = net.prepare_conditions(clip, sync, pe, latent_len=x.shape[-1])
        v = net(x, t, cond)
    """

    def __init__(self, config: ViSAudioConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.hidden_dim, config.mlp_multiple_of
        self.conditioning = SpacetimeConditioning(config)
        self.audio_conv = ChannelLastConv1d(config.latent_dim, d, 7)
        self.audio_act = nn.SELU() if config.input_act == "selu" else nn.SiLU()
        self.audio_mlp = SwiGLU(d, 4 * d, 7, k)
        self.joint_blocks = nn.ModuleList(
            JointBlock(
                d,
                config.num_heads,
                last=i == config.joint_depth - 1,
                text=config.text_len > 0,
                ear_attention=config.ear_attention,
                mlp_ratio=config.mlp_ratio,
                mlp_multiple_of=k,
            )
            for i in range(config.joint_depth)
        )
        self.branches = nn.ModuleList(EarBranch(config) for _ in range(2))  # 0: left, 1: right
        self.normalizer = LatentNormalizer(config.latent_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MMAudio/DiT init: Xavier-uniform Linears, N(0, 0.02) timestep MLP, zeroed adaLN and outputs."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for layer in (self.conditioning.t_embed.mlp[0], self.conditioning.t_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for m in self.modules():
            if isinstance(m, AdaLN):
                nn.init.zeros_(m.linear.weight)
                nn.init.zeros_(m.linear.bias)
            elif isinstance(m, FinalLayer):
                nn.init.zeros_(m.conv.weight)
                nn.init.zeros_(m.conv.bias)
        self.conditioning.reset_output()

    # ---------------------------------------------------------------- positions
    def rope_positions(self, latent_len: int, visual_len: int) -> tuple[Tensor, Tensor]:
        """RoPE positions (float64) of the audio tokens (``0..N-1``, shared by both ears) and of the visual
        tokens, placed on the audio-latent axis: visual token ``j`` sits at ``j * N / M`` (MMAudio's
        aligned RoPE; equal to ``j / clip_fps * latent_rate`` when both streams span the same duration)."""
        audio = torch.arange(latent_len, dtype=torch.float64)
        visual = torch.arange(visual_len, dtype=torch.float64) * (latent_len / max(visual_len, 1))
        return audio, visual

    # ---------------------------------------------------------------- conditioning
    def prepare_conditions(
        self,
        clip: Tensor | None,
        sync: Tensor | None,
        pe: Tensor | None,
        *,
        latent_len: int | None = None,
        drop: Tensor | None = None,
        drop_spatial: Tensor | None = None,
        batch_size: int | None = None,
        text: Tensor | None = None,
        drop_text: Tensor | None = None,
    ) -> Conditions:
        """Step-independent conditioning (see :meth:`SpacetimeConditioning.forward`).

        ``latent_len`` defaults to the config's duration at the latent rate. ``drop`` (``[B]`` bool)
        replaces the video conditions by the learnable null features (CFG); ``drop=torch.ones(B, dtype=bool)``
        gives the unconditional video conditioning; ``text`` (``[B, L, text_dim]`` prompt features, None:
        the empty prompt) and ``drop_text`` do the same for the text stream (MMAudio's null pass drops both).
        """
        n = self.config.latent_len() if latent_len is None else int(latent_len)
        return self.conditioning(
            clip,
            sync,
            pe,
            n,
            drop=drop,
            drop_spatial=drop_spatial,
            batch_size=batch_size,
            text=text,
            drop_text=drop_text,
        )

    # ---------------------------------------------------------------- velocity
    def forward(self, x: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """Velocity ``[B, 2, D, F]`` of latents ``x [B, 2, D, F]`` at times ``t [B]`` (or a scalar)."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != 2 or x.shape[2] != cfg.latent_dim:
            raise ValueError(
                f"x must be [batch, 2, {cfg.latent_dim}, frames] (left/right latents), got {tuple(x.shape)}"
            )
        b, _, _, n = x.shape
        if cond.latent_len != n or cond.batch_size != b:
            raise ValueError(
                f"conditions were prepared for batch {cond.batch_size} x {cond.latent_len} frames, "
                f"x has {b} x {n}; call prepare_conditions(..., latent_len={n}) for this batch"
            )
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        glob = (self.conditioning.t_embed(t) + cond.global_c)[:, None]  # [B, 1, D]
        c = glob[:, None] + cond.local_c  # [B, 2, N, D]
        audio_pos, visual_pos = self.rope_positions(n, cond.visual.shape[1])
        audio_ang = rope_angles(audio_pos.to(x.device), cfg.head_dim, cfg.rope_theta)
        visual_ang = rope_angles(visual_pos.to(x.device), cfg.head_dim, cfg.rope_theta)

        h = x.transpose(-1, -2).flatten(0, 1)  # [B*2, N, D_lat]
        h = self.audio_mlp(self.audio_act(self.audio_conv(h))).unflatten(0, (b, 2))
        visual, text, visual_c = cond.visual, cond.text, glob
        if cfg.ear_attention == "per_ear":  # one copy of the visual/text streams per ear, ears-minor
            visual, visual_c = visual.repeat_interleave(2, 0), visual_c.repeat_interleave(2, 0)
            text = None if text is None else text.repeat_interleave(2, 0)
        for block in self.joint_blocks:
            h, visual, text = block(h, visual, c, visual_c, audio_ang, visual_ang, text)
        final_c = glob if cfg.final_cond == "global" else None
        out = [branch(h[:, e], c[:, e], audio_ang, final_c) for e, branch in enumerate(self.branches)]
        return torch.stack(out, dim=1).transpose(-1, -2)
