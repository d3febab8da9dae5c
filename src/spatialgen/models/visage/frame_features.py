"""Per-frame encoder features of a whole video, computed once and shared by overlapping windows.

ViSAGe's visual encoder (CLIP ViT-B/32, or ``tiny``) encodes every frame on its own (its output rate is
its input rate), so the features of a frame do not depend on the window it is seen in: consecutive
windows of a long video, which overlap by ``overlap`` seconds, can share them. Frames are encoded in
fixed chunks of ``chunk`` frames aligned to the start of the video, so a frame's features are computed
the same way whichever windows are batched together (the batch size never changes the audio). Chunks
before the earliest frame still needed are dropped, which bounds the memory for long videos.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spatialgen.encoders import VisualEncoder

__all__ = ["FrameFeatures"]


class FrameFeatures:
    """Global features ``[D]`` and (optionally) patch tokens ``[N, D]`` of the frames of one video.

    Args:
        encoder: a per-frame encoder (``output_fps == fps``).
        video: uint8 frames ``[T, 3, H, W]`` at the encoder's rate.
        patch_tokens: also keep the patch tokens (for the energy map).
        chunk: frames encoded per encoder call.
    """

    def __init__(self, encoder: VisualEncoder, video: Tensor, *, patch_tokens: bool, chunk: int) -> None:
        if abs(float(encoder.output_fps) - float(encoder.fps)) > 1e-9:
            raise ValueError(f"encoder {encoder.name!r} is not per-frame; its features cannot be shared")
        self.encoder, self.video, self.patch_tokens, self.chunk = encoder, video, patch_tokens, int(chunk)
        self._chunks: dict[int, tuple[Tensor, Tensor | None]] = {}

    def _encode(self, k: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
        if k not in self._chunks:
            frames = self.video[k * self.chunk : (k + 1) * self.chunk][None].to(device)
            out = self.encoder(frames, patch_tokens=self.patch_tokens)
            patches = out.patch_tokens[0].clone() if self.patch_tokens else None
            self._chunks[k] = (out.global_features[0].clone(), patches)
        return self._chunks[k]

    def gather(self, index: Tensor, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """Features ``[B, S, D]`` (and patch tokens ``[B, S, N, D]``) of the frames ``index [B, S]``."""
        keep = int(index.min()) // self.chunk
        for k in [k for k in self._chunks if k < keep]:  # windows come in order: earlier chunks are done
            del self._chunks[k]
        flat = index.reshape(-1).tolist()
        parts = [self._encode(i // self.chunk, device) for i in flat]
        visual = torch.stack([p[0][i % self.chunk] for p, i in zip(parts, flat)]).reshape(*index.shape, -1)
        if not self.patch_tokens:
            return visual, None
        patches = torch.stack([p[1][i % self.chunk] for p, i in zip(parts, flat)])
        return visual, patches.reshape(*index.shape, *patches.shape[1:])
