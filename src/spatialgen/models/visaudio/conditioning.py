"""The conditional spacetime module: video features -> per-ear, per-latent-frame adaLN conditioning.

Per ear ``b`` and latent frame ``n`` (ViSAudio, arXiv 2512.03036, on MMAudio's ``preprocess_conditions``)::

    c_b[n] = t_emb(t) + MLP(P_c(mean clip) + P_t(mean text)) + Up_sync(P_sync(sync + pos))[n]
             + Up_pe(Pool(PE + E_b))[n]

- semantic: CLIP frames projected to the width (they are also the visual tokens of the joint
  attention) and mean-pooled into the global vector;
- text: CLIP text-token features (MMAudio: all 77 hidden states of the DFN5B text tower) projected to
  the width, a stream of the joint attention and mean-pooled into the global vector like the CLIP
  frames; without a prompt the frozen empty-prompt features ``empty_text`` stand in (MMAudio's
  ``empty_string_feat``). With ``text_len = 0`` there is no text stream and a learnable
  ``global_bias`` takes its place in the global vector;
- sync: Synchformer tokens projected as in MMAudio, then resampled to the latent frames by a fixed
  matrix. ``sync_align="time"`` maps every token to its true tubelet (overlapping segments jump back in
  time: segment i covers frames [8i, 8i + 16)), averages the tokens that saw the same frames and
  interpolates linearly in time;
- spatial: Perception Encoder patch tokens plus a learnable per-ear, per-patch embedding ``E_b``,
  attention-pooled over the patch grid with a shared query. The pooling ignores patch order, so the ear
  identity and the left/right layout enter only through ``E_b``: mirroring the image together with
  ``E_l``/``E_r`` maps one ear's conditioning onto the other's exactly. The pooling is computed in the
  patch-feature space (LayerNorm statistics of ``PE + E_b`` from those of ``PE`` and ``E_b``, the key
  projection folded into the query, the value projection applied after pooling, a few frames at a
  time), so neither the per-ear ``[B, 2, T, P, Dp]`` tokens nor per-patch keys/values are materialised;
- learnable null features (CLIP, sync, PE) replace dropped conditions for classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spatialgen.models.visaudio.config import ViSAudioConfig
from spatialgen.nn.mlp import ChannelLastConv1d, SwiGLU

__all__ = [
    "Conditions",
    "SpacetimeConditioning",
    "TimestepEmbedding",
    "flip_patches",
    "linear_time_matrix",
    "sync_alignment_matrix",
]


@dataclass
class Conditions:
    """Step-independent conditioning, computed once per sample and reused at every ODE step.

    Attributes:
        visual: ``[B, M, D]`` projected CLIP tokens (visual stream of the joint blocks).
        global_c: ``[B, D]`` global (semantic) conditioning, without the timestep.
        local_c: ``[B, 2, N, D]`` per-ear, per-latent-frame conditioning (sync + spatial).
        text: ``[B, L, D]`` projected text tokens (text stream of the joint blocks), None without one.
    """

    visual: Tensor
    global_c: Tensor
    local_c: Tensor
    text: Tensor | None = None

    @property
    def batch_size(self) -> int:
        """B."""
        return self.visual.shape[0]

    @property
    def latent_len(self) -> int:
        """N, the latent frames these conditions were prepared for."""
        return self.local_c.shape[2]

    def cat(self, other: Conditions) -> Conditions:
        """Batch-concatenate (e.g. conditional + unconditional for one CFG forward)."""
        if (self.text is None) != (other.text is None):
            raise ValueError("cannot concatenate conditions with and without a text stream")
        return Conditions(*(torch.cat((a, b)) for a, b in zip(self.tensors(), other.tensors(), strict=True)))

    def tensors(self) -> tuple[Tensor, ...]:
        """``(visual, global_c, local_c)`` and ``text`` when there is a text stream."""
        base = (self.visual, self.global_c, self.local_c)
        return base if self.text is None else (*base, self.text)


def flip_patches(patches: Tensor, grid: tuple[int, int]) -> Tensor:
    """Mirror patch tokens ``[..., rows * cols, C]`` (row-major) left-right."""
    rows, cols = grid
    return patches.unflatten(-2, (rows, cols)).flip(-2).flatten(-3, -2)


def linear_time_matrix(src_times: Tensor, dst_times: Tensor) -> Tensor:
    """``[N_dst, N_src]`` weights interpolating a series sampled at sorted ``src_times`` linearly at
    ``dst_times`` (held constant beyond the ends). Rows sum to 1."""
    src, dst = src_times.to(torch.float64), dst_times.to(torch.float64).clamp(src_times[0], src_times[-1])
    w = torch.zeros(len(dst), len(src), dtype=torch.float64, device=src.device)
    if len(src) == 1:
        return w.add_(1.0)
    hi = torch.searchsorted(src, dst, right=True).clamp(1, len(src) - 1)
    lo = hi - 1
    frac = ((dst - src[lo]) / (src[hi] - src[lo])).clamp(0.0, 1.0)
    rows = torch.arange(len(dst), device=src.device)
    w[rows, lo] += 1 - frac
    w[rows, hi] += frac
    return w


def sync_alignment_matrix(num_tokens: int, latent_len: int, config: ViSAudioConfig) -> Tensor:
    """``[latent_len, num_tokens]`` float64 map from Synchformer tokens to audio latent frames.

    ``"time"``: token ``j`` of segment ``i`` covers video frames ``stride*i + fpt*j ... + fpt - 1``;
    tokens covering the same frames are averaged into one tubelet series, which is interpolated linearly
    at the latent frame centres. ``"index"``: MMAudio's nearest-exact resize of the raw token order.
    """
    per_seg = config.sync_tokens_per_segment
    if num_tokens <= 0 or num_tokens % per_seg:
        raise ValueError(
            f"sync features must hold whole segments of {per_seg} tokens, got {num_tokens} tokens"
        )
    if config.sync_align == "index":
        src = ((torch.arange(latent_len, dtype=torch.float64) + 0.5) * num_tokens / latent_len).floor().long()
        return torch.nn.functional.one_hot(src.clamp(max=num_tokens - 1), num_tokens).to(torch.float64)
    fpt = config.sync_segment // per_seg  # video frames per token
    seg, tok = (
        torch.arange(num_tokens).div(per_seg, rounding_mode="floor"),
        torch.arange(num_tokens) % per_seg,
    )
    tubelet = (config.sync_stride * seg + fpt * tok) // fpt
    n_tubelets = int(tubelet.max()) + 1
    average = torch.zeros(n_tubelets, num_tokens, dtype=torch.float64)
    average[tubelet, torch.arange(num_tokens)] = 1.0
    average /= average.sum(dim=1, keepdim=True)
    tubelet_times = (torch.arange(n_tubelets, dtype=torch.float64) * fpt + fpt / 2) / config.sync_fps
    latent_times = (torch.arange(latent_len, dtype=torch.float64) + 0.5) / config.latent_rate
    return linear_time_matrix(tubelet_times, latent_times) @ average


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of ``t`` (cos then sin) followed by ``Linear -> SiLU -> Linear``.

    Frequencies are ``(10000 / max_period) * 10000 ** (-2i / freq_dim)`` (MMAudio v1: max_period 10000;
    v2: max_period 1, which spreads them over 1..1e4 rad for t in [0, 1]).
    """

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        if freq_dim % 2:
            raise ValueError(f"freq_dim must be even, got {freq_dim}")
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        freqs = (10000.0 / max_period) * 10000.0 ** (
            -torch.arange(0, freq_dim, 2, dtype=torch.float64) / freq_dim
        )
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        """``t [B]`` in [0, 1] -> ``[B, dim]``."""
        args = t.to(torch.float64)[:, None] * self.freqs
        emb = torch.cat((torch.cos(args), torch.sin(args)), dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class SpacetimeConditioning(nn.Module):
    """Turns CLIP, Synchformer and Perception Encoder features into :class:`Conditions`.

    Args:
        config: the network config (widths, rates, patch grid).
    """

    #: Perception Encoder frames pooled at a time (bounds the temporaries; the result does not depend on it).
    pe_chunk_frames: int = 8

    def __init__(self, config: ViSAudioConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.hidden_dim, config.mlp_multiple_of
        act = nn.SELU if config.input_act == "selu" else nn.SiLU
        self.clip_proj = nn.Linear(config.clip_dim, d)
        self.clip_act = nn.SiLU() if config.input_act == "silu" else nn.Identity()
        self.clip_mlp = SwiGLU(d, 4 * d, 3, k)
        self.sync_pos = nn.Parameter(torch.zeros(config.sync_tokens_per_segment, config.sync_dim))
        self.sync_conv = ChannelLastConv1d(config.sync_dim, d, 7)
        self.sync_act = act()
        self.sync_mlp = SwiGLU(d, 4 * d, 3, k)
        self.clip_cond_proj = nn.Linear(d, d)
        if config.text_len:
            self.text_proj = nn.Linear(config.text_dim, d)
            self.text_act = nn.SiLU() if config.input_act == "silu" else nn.Identity()
            self.text_mlp = SwiGLU(d, 4 * d, 1, k)
            self.text_cond_proj = nn.Linear(d, d)
            # Frozen empty-prompt features (MMAudio: the CLIP text tower's output for "", set on conversion
            # or from the text encoder; zeros for a network trained from scratch without prompts).
            self.register_buffer("empty_text", torch.zeros(config.text_len, config.text_dim))
        else:
            # Constant in the global vector in place of the text condition.
            self.global_bias = nn.Parameter(torch.zeros(d))
        self.global_mlp = SwiGLU(d, 4 * d, 1, k)
        self.t_embed = TimestepEmbedding(d, config.time_freq_dim, config.time_max_period)
        # E_l = ear_embed[0], E_r = ear_embed[1]: one embedding per ear and patch position.
        self.ear_embed = nn.Parameter(0.02 * torch.randn(2, config.pe_tokens, config.pe_dim))
        self.pe_norm = nn.LayerNorm(config.pe_dim)
        self.pe_key = nn.Linear(config.pe_dim, d)
        self.pe_value = nn.Linear(config.pe_dim, d)
        self.pe_query = nn.Parameter(0.02 * torch.randn(d))
        self.pe_out = nn.Linear(d, d)
        self.empty_clip = nn.Parameter(torch.zeros(config.clip_dim))
        self.empty_sync = nn.Parameter(torch.zeros(config.sync_dim))
        self.empty_pe = nn.Parameter(torch.zeros(config.pe_dim))

    def reset_output(self) -> None:
        """Zero the spatial output projection, so a fresh spatial path adds nothing (MMAudio-equivalent)."""
        nn.init.zeros_(self.pe_out.weight)
        nn.init.zeros_(self.pe_out.bias)

    # ---------------------------------------------------------------- pieces
    def _null(self, x: Tensor | None, empty: Tensor, shape: tuple[int, ...], drop: Tensor | None) -> Tensor:
        """``x`` with the samples in ``drop`` (or all samples when ``x`` is None) replaced by ``empty``."""
        if x is None:
            return empty.expand(*shape, empty.shape[-1])
        if x.shape[-1] != empty.shape[-1]:
            raise ValueError(f"feature width {x.shape[-1]} does not match the config ({empty.shape[-1]})")
        if drop is None:
            return x
        mask = drop.to(torch.bool).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(mask, empty.to(x.dtype), x)

    def spatial(self, pe: Tensor, latent_len: int) -> Tensor:
        """Per-ear spatial conditioning ``[B, 2, latent_len, D]`` from patch tokens ``pe [B, T, P, Dp]``.

        Per ear ``e``, frame and head ``h``: ``softmax_p(k_h(LN(pe_p + E_e,p)) . q_h / sqrt(Dh))``-weighted
        sum of ``v_h(LN(pe_p + E_e,p))``, then ``pe_out``. Evaluated without the per-ear token tensor:
        LayerNorm statistics come from the centred ``pe``, the centred ``E_e`` and their dot product; the
        key projection is folded into the query (per-patch constants cancel in the softmax); the pooled
        LayerNorm output is formed in the ``Dp`` space and projected by ``v_h`` afterwards.
        """
        frames, patches = pe.shape[1:3]
        if patches != self.config.pe_tokens:
            raise ValueError(
                f"pe patch tokens: got {patches} per frame, config pe_grid {self.config.pe_grid} needs "
                f"{self.config.pe_tokens}; set pe_grid to the encoder's patch grid"
            )
        # Frames are independent: chunking bounds every temporary to a few frames' worth.
        step = self.pe_chunk_frames
        pooled = torch.cat([self._pool_frames(pe[:, i : i + step]) for i in range(0, frames, step)], dim=2)
        frame_times = (torch.arange(frames, dtype=torch.float64) + 0.5) / self.config.pe_fps
        latent_times = (torch.arange(latent_len, dtype=torch.float64) + 0.5) / self.config.latent_rate
        up = linear_time_matrix(frame_times, latent_times).to(pooled)
        return torch.einsum("nt,betd->bend", up, pooled)

    def _pool_frames(self, pe: Tensor) -> Tensor:
        """Attention-pooled, projected spatial vectors ``[B, 2, t, D]`` of frames ``pe [B, t, P, Dp]``."""
        heads, d = self.config.num_heads, self.config.hidden_dim
        ln, dt = self.pe_norm, pe.dtype
        g, beta = ln.weight.to(dt), ln.bias.to(dt)
        ear = self.ear_embed.to(dt)  # [2, P, Dp]
        pc = pe - pe.mean(-1, keepdim=True)  # centred patch features, shared by both ears
        ec = ear - ear.mean(-1, keepdim=True)
        var = (
            pc.pow(2).mean(-1)[:, None]  # [B, 1, t, P]
            + ec.pow(2).mean(-1)[None, :, None]  # [1, 2, 1, P]
            + 2 * torch.einsum("btpc,epc->betp", pc, ec) / pe.shape[-1]
        )
        inv_sigma = torch.rsqrt(var + ln.eps)  # [B, 2, t, P]
        # key_h . q_h = LN(x) . (W_k,h^T q_h) + const: fold the query into the key weights, [Dp, H].
        wk = self.pe_key.weight.to(dt).unflatten(0, (heads, -1))  # [H, Dh, Dp]
        a = torch.einsum("hdc,hd->ch", wk, self.pe_query.to(dt).unflatten(-1, (heads, -1))) * g[:, None]
        logits = (pc @ a)[:, None] + (ec @ a)[None, :, None]  # [B, 2, t, P, H]
        weights = torch.softmax(logits * inv_sigma[..., None] / math.sqrt(d // heads), dim=-2)
        wn = weights * inv_sigma[..., None]  # weights on the un-normalised (centred) tokens
        pooled = torch.einsum("betph,btpc->bethc", wn, pc) + torch.einsum("betph,epc->bethc", wn, ec)
        pooled = pooled * g + beta  # sum_p w_p LN(x_p), [B, 2, t, H, Dp] (weights sum to 1)
        wv = self.pe_value.weight.to(dt).unflatten(0, (heads, -1))  # [H, Dh, Dp]
        values = torch.einsum("bethc,hdc->bethd", pooled, wv).flatten(-2) + self.pe_value.bias.to(dt)
        return self.pe_out(values)

    def text_tokens(self, text: Tensor | None, batch: int, drop: Tensor | None) -> Tensor:
        """Projected text tokens ``[B, L, D]``; None or dropped samples use the empty-prompt features."""
        if text is not None and (text.ndim != 3 or text.shape[0] != batch or text.shape[1] < 1):
            raise ValueError(
                f"text features must be [batch={batch}, tokens, {self.config.text_dim}], got "
                f"{tuple(text.shape)}"
            )
        if text is not None and drop is not None and text.shape[1] != self.empty_text.shape[0]:
            raise ValueError(
                f"text features have {text.shape[1]} tokens but the empty prompt has "
                f"{self.empty_text.shape[0]}; dropping text needs equal lengths (set text_len)"
            )
        empty = self.empty_text
        text = empty.expand(batch, *empty.shape) if text is None else self._null(text, empty, (), drop)
        return self.text_mlp(self.text_act(self.text_proj(text)))

    def sync(self, sync: Tensor, latent_len: int) -> Tensor:
        """Sync conditioning ``[B, latent_len, D]`` from Synchformer tokens ``[B, S * per_segment, Ds]``."""
        n = sync.shape[1]
        per_seg = self.config.sync_tokens_per_segment
        if n % per_seg:
            raise ValueError(f"sync features: {n} tokens is not a whole number of {per_seg}-token segments")
        x = (sync.unflatten(1, (n // per_seg, per_seg)) + self.sync_pos.to(sync.dtype)).flatten(1, 2)
        x = self.sync_mlp(self.sync_act(self.sync_conv(x)))
        return torch.einsum("nm,bmd->bnd", sync_alignment_matrix(n, latent_len, self.config).to(x), x)

    # ---------------------------------------------------------------- all together
    def forward(
        self,
        clip: Tensor | None,
        sync: Tensor | None,
        pe: Tensor | None,
        latent_len: int,
        *,
        drop: Tensor | None = None,
        drop_spatial: Tensor | None = None,
        batch_size: int | None = None,
        text: Tensor | None = None,
        drop_text: Tensor | None = None,
    ) -> Conditions:
        """Prepare the conditioning for ``latent_len`` audio latent frames.

        Args:
            clip: ``[B, Tc, clip_dim]`` CLIP frame features (None: null for every sample).
            sync: ``[B, Ns, sync_dim]`` Synchformer tokens, Ns a multiple of ``sync_tokens_per_segment``.
            pe: ``[B, Tp, rows * cols, pe_dim]`` Perception Encoder patch tokens (row-major grid).
            latent_len: N, audio latent frames.
            drop: ``[B]`` bool, samples whose video conditions (all three) are replaced by the null
                features (CFG dropout / unconditional pass).
            drop_spatial: ``[B]`` bool, extra independent dropout of the spatial (PE) condition only.
            batch_size: needed only when all features are None.
            text: ``[B, L, text_dim]`` text-token features of the prompt (None: the empty prompt).
            drop_text: ``[B]`` bool, samples whose text is replaced by the empty prompt (CFG; MMAudio drops
                text independently of the video in training and together with it for the null pass).
        """
        if text is not None and not self.config.text_len:
            raise ValueError("this network has no text stream (text_len=0); pass text=None")
        given = [x for x in (clip, sync, pe, text) if x is not None]
        b = given[0].shape[0] if given else batch_size
        if b is None:
            raise ValueError("pass batch_size when clip, sync, pe and text are all None")
        if any(x.shape[0] != b for x in given):
            raise ValueError(f"clip/sync/pe/text batch sizes differ: {[x.shape[0] for x in given]}")
        cfg = self.config
        duration = latent_len / cfg.latent_rate
        drop_pe = drop if drop_spatial is None else (drop_spatial if drop is None else drop | drop_spatial)
        clip = self._null(clip, self.empty_clip, (b, max(1, cfg.clip_len(duration))), drop)
        sync = self._null(
            sync, self.empty_sync, (b, max(cfg.sync_tokens_per_segment, cfg.sync_len(duration))), drop
        )
        pe = self._null(pe, self.empty_pe, (b, max(1, cfg.pe_len(duration)), cfg.pe_tokens), drop_pe)
        visual = self.clip_mlp(self.clip_act(self.clip_proj(clip)))
        semantic = self.clip_cond_proj(visual.mean(dim=1))
        tokens = None
        if cfg.text_len:
            tokens = self.text_tokens(text, b, drop_text)
            semantic = semantic + self.text_cond_proj(tokens.mean(dim=1))
        else:
            semantic = semantic + self.global_bias
        global_c = self.global_mlp(semantic)
        local_c = self.sync(sync, latent_len)[:, None] + self.spatial(pe, latent_len)
        return Conditions(visual=visual, global_c=global_c, local_c=local_c, text=tokens)
