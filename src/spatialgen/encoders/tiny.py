"""A small, trainable, randomly initialised CNN encoder for tests, debug recipes and the CPU demo."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spatialgen.encoders.base import VisualEncoder
from spatialgen.encoders.registry import register_encoder
from spatialgen.errors import SpatialgenError

__all__ = ["TinyEncoder"]


class TinyEncoder(VisualEncoder):
    """Three stride-2 conv layers; patch tokens are the final feature map (layer-normed).

    The global feature is ``head([mean of the tokens, keypoints])``. ``keypoints`` are the spatial
    soft-argmax of every feature channel (Levine et al. 2016, "End-to-end training of deep visuomotor
    policies"): the softmax-weighted mean ``(x, y)`` image position of each channel's response. Mean
    pooling alone throws away *where* things are, and where the sounding object is, is exactly what
    spatial audio needs: with keypoints, a linear read-out of the global feature can say "the red object
    is on the left". (Trained on the synthetic clips by :mod:`spatialgen.training.visual_direction`,
    the held-out direction error is a few degrees; a randomly initialised one localises nothing.)

    Args:
        embed_dim: width of the global feature and the patch tokens.
        input_size: ``(H, W)``, each a multiple of 8; patch grid is ``(H/8, W/8)``.
        fps: frame rate it expects.
        keypoints: append the spatial soft-argmax keypoints to the pooled feature (False: mean only).
        **kwargs: :class:`VisualEncoder` options; ``frozen`` defaults to False (it is meant to train).
    """

    name = "tiny"

    def __init__(
        self,
        embed_dim: int = 32,
        input_size: tuple[int, int] = (64, 64),
        fps: float = 8.0,
        keypoints: bool = True,
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
        self.keypoints = bool(keypoints)
        self.head = nn.Linear(embed_dim * (3 if self.keypoints else 1), embed_dim)
        rows, cols = self.patch_grid
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, rows), torch.linspace(-1, 1, cols), indexing="ij")
        # (x, y) of every patch centre in [-1, 1], row-major like the tokens; x grows to the right
        self.register_buffer("patch_xy", torch.stack((xs, ys), -1).reshape(rows * cols, 2), persistent=False)
        self._finish_init()

    def encode_chunk(self, x: Tensor, patch_tokens: bool) -> tuple[Tensor, Tensor | None]:
        b, t = x.shape[:2]
        maps = self.features(x.flatten(0, 1)).flatten(2)  # [bt, D, N]
        tokens = self.norm(maps.transpose(1, 2))  # [bt, N, D]
        pooled = tokens.mean(dim=1)
        if self.keypoints:  # [bt, D, 2]: expected patch position under each channel's softmax
            where = maps.softmax(dim=-1) @ self.patch_xy.to(maps.dtype)
            pooled = torch.cat((pooled, where.flatten(1)), dim=-1)
        g = self.head(pooled).reshape(b, t, -1)
        return g, (tokens.reshape(b, t, *tokens.shape[1:]) if patch_tokens else None)


@register_encoder("tiny")
def _tiny(pretrained: bool = False, **kwargs) -> TinyEncoder:
    """Tiny CNN encoder (random init only)."""
    if pretrained:
        raise SpatialgenError(
            "encoder 'tiny' has no published weights: use pretrained=False or pretrained=<path to a saved state dict>"
        )
    return TinyEncoder(**kwargs)
