"""Image encoders built from timm towers: OpenAI CLIP ViT-B/32, DFN5B CLIP ViT-H/14, Perception Encoder.

Each registry entry pins a timm ``arch.tag`` (an untagged name silently picks the first tag, e.g.
laion400m for the quickgelu B/32) and the preprocessing of the project that uses the features:

* ``clip_vit_b32``: ViSAGe. OpenAI weights with the native QuickGELU; 4 fps; shorter side to 224 and
  centre crop; features are the 512-d *projected, un-normalised* image embeddings; patch tokens are the
  raw last-block tokens before ``ln_post`` (CLS dropped, 7x7 grid) that ViSAGe's energy map uses.
* ``clip_vit_h14_384``: MMAudio. ``apple/DFN5B-CLIP-ViT-H-14-384`` = timm
  ``vit_huge_patch14_clip_quickgelu_378.dfn5b``; 8 fps; frames squashed to 384x384 (no crop) like
  MMAudio; the tower's stride-14 patch conv only sees the top-left 378x378 of a 384 input in open_clip,
  so we crop exactly that; features are 1024-d projected and L2-normalised.
* ``pe_spatial`` (and size variants): Perception Encoder spatial (timm ``Eva``); patch tokens are the
  final, normalised tokens; the global feature is timm's pooled output.
"""

from __future__ import annotations

from functools import partial

import timm
import torch.nn.functional as F
from torch import Tensor

from spatialgen.encoders.base import ResizeMode, VisualEncoder
from spatialgen.encoders.registry import register_encoder
from spatialgen.errors import SpatialgenError

__all__ = ["TimmImageEncoder"]


class TimmImageEncoder(VisualEncoder):
    """A per-frame encoder wrapping a timm ViT/Eva tower.

    Args:
        arch: timm ``arch.tag`` (pinned tag).
        name: registry name.
        fps: frame rate the features are extracted at.
        input_size: ``(H, W)`` frames are resized to.
        resize_mode: ``"shorter_crop"`` or ``"squash"``.
        model_size: size the tower runs at; a smaller size takes the top-left crop of ``input_size``
            (reproduces open_clip's truncating patch conv for 384 inputs to a 378 tower).
        normalize_global: L2-normalise the global embedding.
        patch_norm: patch tokens after the final norm (True) or the raw last-block output (False).
        pretrained: load the published weights of ``arch``.
        **kwargs: :class:`VisualEncoder` options (frozen, chunk_size, patch_tokens).
    """

    def __init__(
        self,
        arch: str,
        *,
        name: str,
        fps: float,
        input_size: tuple[int, int] | None = None,
        resize_mode: ResizeMode = "shorter_crop",
        model_size: tuple[int, int] | None = None,
        normalize_global: bool = False,
        patch_norm: bool = True,
        pretrained: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        cfg = timm.get_pretrained_cfg(arch)
        if cfg is None:
            raise SpatialgenError(f"timm has no pretrained config {arch!r}; pin an existing 'arch.tag'")
        self.arch = arch
        self.name = name
        self.fps = self.output_fps = float(fps)
        native = tuple(cfg.input_size[-2:])
        self.model_size = tuple(model_size or native)
        self.input_size = tuple(input_size or self.model_size)
        if any(m > i for m, i in zip(self.model_size, self.input_size)):
            raise ValueError(f"model_size {self.model_size} must not exceed input_size {self.input_size}")
        self.resize_mode = resize_mode
        self.mean, self.std = tuple(cfg.mean), tuple(cfg.std)
        self.normalize_global = normalize_global
        self.patch_norm = patch_norm
        self.model = _create_timm(arch, pretrained=pretrained, img_size=self.model_size)
        # the head is the CLIP projection when present, else pooled features pass through unchanged
        self.embed_dim = int(self.model.num_classes or self.model.head_hidden_size)
        self.patch_dim = int(self.model.embed_dim)
        self.patch_grid = tuple(int(s) for s in self.model.patch_embed.grid_size)
        self._finish_init()

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accept timm's own layout (``model.safetensors`` from the Hub) or this encoder's."""
        if any(k.startswith("model.") for k in state_dict):
            return state_dict
        return {f"model.{k}": v for k, v in state_dict.items()}

    def encode_chunk(self, x: Tensor, patch_tokens: bool) -> tuple[Tensor, Tensor | None]:
        b, t = x.shape[:2]
        mh, mw = self.model_size
        images = x.flatten(0, 1)[..., :mh, :mw]
        # intermediates come back without prefix tokens; `final` is the normed full sequence
        final, inter = self.model.forward_intermediates(images, indices=1, norm=False, output_fmt="NLC")
        g = self.model.forward_head(final)
        if self.normalize_global:
            g = F.normalize(g, dim=-1)
        g = g.reshape(b, t, -1)
        if not patch_tokens:
            return g, None
        prefix = self.model.num_prefix_tokens
        p = final[:, prefix:] if self.patch_norm else inter[0]
        return g, p.reshape(b, t, *p.shape[1:])


def _create_timm(arch: str, *, pretrained: bool, img_size: tuple[int, int]):
    """Build ``arch``; with ``pretrained`` resolve its Hub file first so offline failures are clear."""
    if not pretrained:
        return timm.create_model(arch, pretrained=False, img_size=img_size)
    from huggingface_hub import constants

    from spatialgen.weights import WeightsNotFoundError, resolve_weights

    cfg = timm.get_pretrained_cfg(arch)
    try:
        file = resolve_weights(f"hf://{cfg.hf_hub_id}/model.safetensors", what=f"timm weights for {arch}")
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"{exc}; Hub cache searched: {constants.HF_HUB_CACHE} (set HF_HUB_CACHE or HF_HOME to use another)"
        ) from None
    # timm still applies its checkpoint filter (e.g. position-embedding resampling) to the local file.
    return timm.create_model(
        arch, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, img_size=img_size
    )


def _entry(name: str, arch: str, **options):
    def factory(pretrained: bool = False, **kwargs) -> TimmImageEncoder:
        return TimmImageEncoder(arch, name=name, pretrained=pretrained, **{**options, **kwargs})

    factory.__doc__ = f"{name}: timm {arch}"
    register_encoder(name, factory)


_entry(
    "clip_vit_b32",
    "vit_base_patch32_clip_quickgelu_224.openai",
    fps=4.0,
    resize_mode="shorter_crop",
    patch_norm=False,
)
_entry(
    "clip_vit_h14_384",
    "vit_huge_patch14_clip_quickgelu_378.dfn5b",
    fps=8.0,
    input_size=(384, 384),
    resize_mode="squash",
    normalize_global=True,
    patch_norm=False,
)
_pe = partial(_entry, fps=8.0, resize_mode="shorter_crop", patch_norm=True, patch_tokens=True)
_pe("pe_spatial", "vit_pe_spatial_large_patch14_448.fb")
_pe("pe_spatial_base", "vit_pe_spatial_base_patch16_512.fb")
_pe("pe_spatial_gigantic", "vit_pe_spatial_gigantic_patch14_448.fb")
