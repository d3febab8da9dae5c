"""Synchformer's visual branch (MotionFormer, divided space-time ViT) as MMAudio uses it.

Architecture (ViT-B/16 video transformer, ``divided_224_16x4``), per 16-frame segment at 25 fps, 224²:

1. Tubelet embedding: Conv3d with kernel = stride = (2, 16, 16) -> ``F = 8`` temporal slots x
   ``N = 14·14`` patches, token order (t, h, w); a CLS token is prepended.
2. Position: patch (t, n) gets ``pos_embed[1 + n] + time_embed[t]``; CLS gets ``pos_embed[0]``.
3. ``depth`` divided blocks (pre-LN, eps 1e-6):
   ``x += time_attn(LN(x))``: each patch attends to the same patch position across the F slots;
   ``x += space_attn(LN(x))``: each patch attends to the N patches of its slot. In both, the patch
   groups also see the CLS key/value, and the CLS query attends to every token.
   ``x += MLP(LN(x))`` (GELU, ratio 4).
4. Drop CLS, final LN; per temporal slot a pre-LN transformer-encoder layer over ``[cls_pool; N patches]``
   (12 heads, GELU MLP ratio 4, eps 1e-6) whose CLS output is the slot's token -> ``[F, D]`` per segment.

Segments are 16 frames with stride 8 (``S = (T - 16) // 8 + 1``), giving ``S·8`` tokens of 768-d in
MMAudio's order (segment-major). Token (s, j) covers frames ``8s + 2j`` and ``8s + 2j + 1``; successive
segments overlap by 0.32 s, so the sequence is *not* monotonic in time (see :meth:`token_times`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn

from spatialgen.encoders.base import VisualEncoder
from spatialgen.encoders.registry import register_encoder

__all__ = ["SYNCHFORMER_URL", "SynchformerConfig", "SynchformerEncoder", "SynchformerVisual"]

#: The released Synchformer (AudioSet) state dict that MMAudio loads (only ``vfeat_extractor.*`` is used).
SYNCHFORMER_URL = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth"


@dataclass(frozen=True)
class SynchformerConfig:
    """Sizes of the visual branch; the defaults are the released model's."""

    img_size: int = 224
    patch_size: int = 16
    tubelet: int = 2  # frames per temporal patch
    segment_frames: int = 16
    segment_stride: int = 8
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.segment_frames % self.tubelet or self.img_size % self.patch_size or self.dim % self.heads:
            raise ValueError(
                f"invalid SynchformerConfig {self}: segment_frames must be a multiple of tubelet, img_size of "
                "patch_size and dim of heads"
            )

    @property
    def slots(self) -> int:
        """Temporal tokens per segment."""
        return self.segment_frames // self.tubelet

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.img_size // self.patch_size


class _DividedAttention(nn.Module):
    """Attention within time groups or space groups; CLS is a shared key/value and a global query.

    (TimeSformer's divided attention: no timm layer does the grouping with a shared CLS key.)"""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, slots: int, over_time: bool) -> Tensor:
        b, length, d = x.shape
        h, n = self.heads, (length - 1) // slots
        q, k, v = self.qkv(x).reshape(b, length, 3, h, d // h).permute(2, 0, 3, 1, 4)  # [b, h, L, dh]
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)

        def groups(t: Tensor) -> Tensor:  # [b, h, groups, members, dh]
            g = t[:, :, 1:].reshape(b, h, slots, n, -1)
            return g.transpose(2, 3) if over_time else g

        qg, kg, vg = groups(q), groups(k), groups(v)
        shape = (-1, -1, qg.shape[2], -1, -1)
        kg = torch.cat([k[:, :, None, :1].expand(shape), kg], dim=3)
        vg = torch.cat([v[:, :, None, :1].expand(shape), vg], dim=3)
        out = F.scaled_dot_product_attention(qg, kg, vg)
        if over_time:
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, slots * n, -1)], dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, length, d))


class _DividedBlock(nn.Module):
    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.norm_time = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.time_attn = _DividedAttention(cfg.dim, cfg.heads)
        self.norm_space = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.space_attn = _DividedAttention(cfg.dim, cfg.heads)
        self.norm_mlp = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))  # fc1 -> GELU -> fc2

    def forward(self, x: Tensor, slots: int) -> Tensor:
        x = x + self.time_attn(self.norm_time(x), slots, over_time=True)
        x = x + self.space_attn(self.norm_space(x), slots, over_time=False)
        return x + self.mlp(self.norm_mlp(x))


class _SpatialPool(nn.Module):
    """Pre-LN encoder layer over ``[cls; patches]`` of one slot, returning the CLS output only."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))  # fc1 -> GELU -> fc2
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        m, n, d = tokens.shape
        h = self.heads
        cls = self.cls_token.expand(m, 1, d)
        x = torch.cat([cls, tokens], dim=1)
        q, k, v = self.qkv(self.norm1(x)).reshape(m, n + 1, 3, h, d // h).permute(2, 0, 3, 1, 4)
        # only the CLS row is used downstream and residuals are per token, so query CLS alone
        att = F.scaled_dot_product_attention(q[:, :, :1], k, v).transpose(1, 2).reshape(m, 1, d)
        y = cls + self.proj(att)
        y = y + self.mlp(self.norm2(y))
        return y[:, 0]


class SynchformerVisual(nn.Module):
    """The segment encoder: ``[n, 3, segment_frames, H, W]`` -> slot tokens ``[n, F, D]``, patches ``[n, F, N, D]``."""

    def __init__(self, cfg: SynchformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.patch_embed = nn.Conv3d(3, cfg.dim, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid**2, cfg.dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.slots, cfg.dim))
        self.blocks = nn.ModuleList(_DividedBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.spatial_pool = _SpatialPool(cfg)
        for param in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(param, std=0.02)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02)
                nn.init.zeros_(mod.bias)

    def forward(self, segments: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        n = segments.shape[0]
        x = self.patch_embed(segments).flatten(2).transpose(1, 2)  # [n, F*N, D], order (t, h, w)
        patches = cfg.grid**2
        pos = self.pos_embed[:, 1:].repeat(1, cfg.slots, 1) + self.time_embed.repeat_interleave(patches, 1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)
        x = torch.cat([cls, x + pos], dim=1)
        for block in self.blocks:
            x = block(x, cfg.slots)
        tokens = self.norm(x[:, 1:]).reshape(n, cfg.slots, patches, cfg.dim)
        pooled = self.spatial_pool(tokens.flatten(0, 1)).reshape(n, cfg.slots, cfg.dim)
        return pooled, tokens


class SynchformerEncoder(VisualEncoder):
    """Synchformer visual features at 25 fps: ``[B, S·8, 768]`` tokens in MMAudio's layout.

    ``chunk_size`` counts segments. Loads the released checkpoint (``pretrained=True`` or a path to
    ``synchformer_state_dict.pth``), converting its key layout.
    """

    name = "synchformer"
    fps = 25.0
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    resize_mode = "shorter_crop"

    def __init__(
        self, config: SynchformerConfig | None = None, *, pretrained: bool = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        cfg = config or SynchformerConfig()
        self.config = cfg
        self.input_size = (cfg.img_size, cfg.img_size)
        self.embed_dim = self.patch_dim = cfg.dim
        self.patch_grid = (cfg.grid, cfg.grid)
        # tokens per stride: 8 slot tokens per 8-frame hop -> 25 tokens/s nominal (MMAudio calls it "24 fps")
        self.output_fps = self.fps * cfg.slots / cfg.segment_stride
        # resolve the file before building, so a missing download fails fast
        weights = _resolve_synchformer() if pretrained else None
        self.net = SynchformerVisual(cfg)
        if weights is not None:
            self.load_weights(weights)
        self._finish_init()

    def num_units(self, num_frames: int) -> int:
        cfg = self.config
        return max(0, (num_frames - cfg.segment_frames) // cfg.segment_stride + 1)

    def unit_span(self, start: int, stop: int) -> tuple[int, int]:
        cfg = self.config
        return start * cfg.segment_stride, (stop - 1) * cfg.segment_stride + cfg.segment_frames

    def encode_chunk(self, x: Tensor, patch_tokens: bool) -> tuple[Tensor, Tensor | None]:
        cfg = self.config
        b = x.shape[0]
        segs = x.unfold(1, cfg.segment_frames, cfg.segment_stride)  # [B, S, 3, H, W, seg]
        s = segs.shape[1]
        segs = segs.permute(0, 1, 2, 5, 3, 4).flatten(0, 1)  # [B*S, 3, seg, H, W]
        pooled, tokens = self.net(segs)
        g = pooled.reshape(b, s * cfg.slots, cfg.dim)
        return g, (tokens.reshape(b, s * cfg.slots, *tokens.shape[2:]) if patch_tokens else None)

    def token_times(self, num_frames: int) -> Tensor:
        """Mean timestamp (s, frame i at i/fps) of the frames behind each output token; non-monotonic."""
        cfg = self.config
        seg = torch.arange(self.num_units(num_frames), dtype=torch.float64)[:, None] * cfg.segment_stride
        slot = torch.arange(cfg.slots, dtype=torch.float64)[None] * cfg.tubelet + (cfg.tubelet - 1) / 2
        return (seg + slot).flatten() / self.fps

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accept the released Synchformer checkpoint (converted) or this encoder's own layout."""
        from spatialgen.encoders.synchformer_convert import convert_synchformer_state_dict, is_official_layout

        if is_official_layout(state_dict):
            return {f"net.{k}": v for k, v in convert_synchformer_state_dict(state_dict).items()}
        if any(k.startswith("net.") for k in state_dict):
            return state_dict
        return {f"net.{k}": v for k, v in state_dict.items()}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", config={asdict(self.config)}"


def _resolve_synchformer() -> Path:
    from spatialgen.weights import WeightsNotFoundError, resolve_weights

    try:
        return resolve_weights(SYNCHFORMER_URL, what="Synchformer weights")
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"encoder 'synchformer': {exc} (SPATIALGEN_CACHE sets the folder), or pass pretrained=<path>"
        ) from None


@register_encoder("synchformer")
def _synchformer(
    pretrained: bool = False,
    *,
    frozen: bool = True,
    chunk_size: int = 32,
    patch_tokens: bool = False,
    **config,
) -> SynchformerEncoder:
    """Synchformer visual branch; extra keyword arguments are :class:`SynchformerConfig` fields."""
    return SynchformerEncoder(
        SynchformerConfig(**config),
        pretrained=pretrained,
        frozen=frozen,
        chunk_size=chunk_size,
        patch_tokens=patch_tokens,
    )
