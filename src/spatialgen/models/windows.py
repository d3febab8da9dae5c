"""Windows of a long video, their seeds, their frames and the crossfade that joins their audio.

A model generates ``clip_seconds`` of audio per pass. A longer video is cut into windows starting every
``clip_seconds − overlap`` seconds, the last one aligned to the end of the video; a video no longer than
one window is one window whose frames are padded by repeating the last frame. Consecutive windows are
joined with an equal-power (sine/cosine) crossfade over their overlap, which keeps the level constant
for independently generated windows (the long-form scheme of audiocraft's ``MusicGen.generate`` with a
crossfade instead of a continuation prompt, since both models here generate each window from video).

Seeds: window ``i`` of a video draws its random numbers from its own generator seeded with
:func:`window_seed` ``(seed, i)``, so the audio of a window never depends on which other windows share
its batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["crossfade_concat", "plan_windows", "resample_frames", "row_seeds", "window_frames", "window_seed"]


def plan_windows(duration: float, window: float, overlap: float) -> list[float]:
    """Start times (s) of the generation windows covering ``[0, duration]``; see the module docstring."""
    if duration <= 0:
        raise ValueError(f"video duration must be > 0, got {duration}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, clip length {window} s), got {overlap}")
    if duration <= window:
        return [0.0]
    hop = window - overlap
    starts = [0.0]
    while starts[-1] + window < duration - 1e-9:
        starts.append(min(starts[-1] + hop, duration - window))
    return starts


def crossfade_concat(chunks: Sequence[Tensor], starts: Sequence[int], total: int) -> Tensor:
    """Join ``[C, L_i]`` chunks placed at sample offsets ``starts`` into ``[C, total]`` samples.

    Where two chunks overlap, the earlier one fades out with ``cos`` and the later one fades in with
    ``sin`` (equal power). Chunks must be sorted, cover ``[0, total)`` and each start inside the previous.
    """
    out = chunks[0][:, :total].clone()
    for chunk, start in zip(chunks[1:], starts[1:]):
        end_prev = out.shape[-1]
        if start > end_prev:
            raise ValueError(f"windows leave a gap: previous ends at {end_prev}, next starts at {start}")
        overlap = min(end_prev - start, chunk.shape[-1])
        if overlap > 0:
            x = (torch.arange(overlap, dtype=chunk.dtype, device=chunk.device) + 0.5) / overlap
            fade_in, fade_out = torch.sin(0.5 * math.pi * x), torch.cos(0.5 * math.pi * x)
            out[:, start:end_prev] = out[:, start:end_prev] * fade_out + chunk[:, :overlap] * fade_in
        out = torch.cat([out, chunk[:, overlap:]], dim=-1)[:, :total]
    if out.shape[-1] != total:
        raise ValueError(f"windows cover {out.shape[-1]} samples, expected {total}")
    return out


def window_seed(seed: int, index: int) -> int:
    """Seed of window (or batch row) ``index`` under the user's ``seed``: a 63-bit hash of the pair.

    NumPy's ``SeedSequence`` mixes the pair, so neighbouring seeds or windows give unrelated streams.
    """
    if index < 0:
        raise ValueError(f"window index must be >= 0, got {index}")
    state = np.random.SeedSequence([int(seed) & (2**64 - 1), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def row_seeds(seed: int | Sequence[int] | None, batch: int) -> list[int] | None:
    """One seed per batch row: None stays None, an int gives ``window_seed(seed, row)``, a list is checked."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return [window_seed(int(seed), i) for i in range(batch)]
    seeds = [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"seed has {len(seeds)} entries for a batch of {batch}; give one per row or an int")
    return seeds


def window_frames(
    frames: Mapping[str, Tensor], rates: Mapping[str, float], start: float, seconds: float
) -> dict[str, Tensor]:
    """The frames ``[round(seconds · fps), 3, H, W]`` of the window at ``start`` from whole videos per encoder.

    Frame ``k`` of a video at ``fps`` shows time ``(k + ½) / fps``; the window takes frames from
    ``round(start · fps)`` on, and frames past the video's end repeat its last frame (short videos).
    """
    out = {}
    for name, fps in rates.items():
        video = frames[name]
        if video.ndim != 4 or video.shape[0] < 1:
            raise ValueError(f"frames[{name!r}] must be a video [T>=1, 3, H, W], got {tuple(video.shape)}")
        need = max(1, round(seconds * fps))
        first = min(round(start * fps), video.shape[0] - 1)
        index = torch.arange(first, first + need).clamp_max(video.shape[0] - 1)
        out[name] = video.index_select(0, index.to(video.device))
    return out


def resample_frames(video: Tensor, src_fps: float, dst_fps: float) -> Tensor:
    """Frames ``[B, T, 3, H, W]`` at ``src_fps`` -> the nearest earlier-or-equal frames at ``dst_fps``.

    Frame ``k`` shows time ``(k + ½) / fps`` (the data convention); output frame ``j`` takes the source
    frame covering ``(j + ½) / dst_fps``. The output spans the same duration (``⌊T · dst / src⌋`` frames).
    """
    if math.isclose(src_fps, dst_fps, rel_tol=1e-9):
        return video
    t = video.shape[1]
    n = math.floor(t / src_fps * dst_fps + 1e-6)
    if n < 1:
        raise ValueError(f"{t} frames at {src_fps:g} fps are too few to resample to {dst_fps:g} fps")
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / dst_fps
    index = (centres * src_fps).floor().long().clamp(0, t - 1).to(video.device)
    return video.index_select(1, index)
