"""Audio-visual scores from encoder outputs (hkchengrex/av-benchmark ``av_bench/evaluate.py``).

- ImageBind score: per clip ``cos(v_i, a_i)`` of the video and audio embeddings (reported ×100).
- DeSync: Synchformer's offset head gives logits over ``linspace(-2, 2, 21)`` s for each window; the
  predicted offset is the grid value at the argmax and DeSync is the mean ``|offset|`` (seconds) over
  windows (av-benchmark uses the first and last 14 segments of 8 s clips) and clips.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DESYNC_GRID", "desync", "imagebind_score"]

DESYNC_GRID = (-2.0, 2.0, 21)  # linspace arguments of Synchformer's offset classes (0.2 s steps)


def imagebind_score(audio_embeddings: Tensor, video_embeddings: Tensor) -> Tensor:
    """Per-clip cosine similarity ``[N]`` of ``[N, D]`` audio and video embeddings (float64)."""
    if audio_embeddings.shape != video_embeddings.shape or audio_embeddings.ndim != 2:
        raise ValueError(
            f"audio {tuple(audio_embeddings.shape)} and video {tuple(video_embeddings.shape)} embeddings "
            "must both be [N, D] (one per clip, same space)"
        )
    return torch.cosine_similarity(
        audio_embeddings.to(torch.float64), video_embeddings.to(torch.float64), dim=-1
    )


def desync(offset_logits: Tensor, grid: Tensor | None = None) -> Tensor:
    """Per-clip DeSync ``[N]``: mean over windows of ``|grid[argmax logits]|``, logits ``[N, W, K]``.

    ``grid`` defaults to ``linspace(-2, 2, 21)`` seconds and must have ``K`` entries.
    """
    if offset_logits.ndim != 3:
        raise ValueError(f"offset_logits must be [clips, windows, classes], got {tuple(offset_logits.shape)}")
    if grid is None:
        grid = torch.linspace(*DESYNC_GRID, dtype=torch.float64, device=offset_logits.device)
    if grid.numel() != offset_logits.shape[-1]:
        raise ValueError(
            f"grid has {grid.numel()} offsets but the logits have {offset_logits.shape[-1]} classes"
        )
    return grid.to(torch.float64)[offset_logits.argmax(-1)].abs().mean(-1)
