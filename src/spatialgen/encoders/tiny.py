"""A small, trainable, randomly initialised CNN encoder for tests, debug recipes and the CPU demo."""

from __future__ import annotations

from torch import Tensor, nn

from spatialgen.encoders.base import VisualEncoder
from spatialgen.encoders.registry import register_encoder
from spatialgen.errors import SpatialgenError

__all__ = ["TinyEncoder"]


class TinyEncoder(VisualEncoder):
    """Three stride-2 conv layers; patch tokens are the final feature map, the global feature its mean.

    Args:
        embed_dim: width of the global feature and the patch tokens.
        input_size: ``(H, W)``, each a multiple of 8; patch grid is ``(H/8, W/8)``.
        fps: frame rate it expects.
        **kwargs: :class:`VisualEncoder` options; ``frozen`` defaults to False (it is meant to train).
    """

    name = "tiny"

    def __init__(
        self,
        embed_dim: int = 32,
        input_size: tuple[int, int] = (64, 64),
        fps: float = 8.0,
        *,
        frozen: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(frozen=frozen, **kwargs)
        if input_size[0] % 8 or input_size[1] % 8:
            raise ValueError(f"input_size must be multiples of 8, got {input_size}")
        self.input_size = tuple(input_size)
        self.fps = self.output_fps = float(fps)
        self.embed_dim = self.patch_dim = int(embed_dim)
        self.patch_grid = (input_size[0] // 8, input_size[1] // 8)
        width = max(8, embed_dim // 2)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, embed_dim, 3, stride=2, padding=1),
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, embed_dim)
        self._finish_init()

    def encode_chunk(self, x: Tensor, patch_tokens: bool) -> tuple[Tensor, Tensor | None]:
        b, t = x.shape[:2]
        tokens = self.norm(self.features(x.flatten(0, 1)).flatten(2).transpose(1, 2))  # [bt, N, D]
        g = self.head(tokens.mean(dim=1)).reshape(b, t, -1)
        return g, (tokens.reshape(b, t, *tokens.shape[1:]) if patch_tokens else None)


@register_encoder("tiny")
def _tiny(pretrained: bool = False, **kwargs) -> TinyEncoder:
    """Tiny CNN encoder (random init only)."""
    if pretrained:
        raise SpatialgenError(
            "encoder 'tiny' has no published weights: use pretrained=False or pretrained=<path to a saved state dict>"
        )
    return TinyEncoder(**kwargs)
