"""Code patterns: how ``codes [B, C, Q, F]`` are laid out as a decoder sequence ``[B, L, K]``, and back.

All patterns here are *clocked delay patterns*: stream ``k = c * Q + q`` of frame ``t`` goes to row
``steps_per_frame * t + delay[k]``; every other slot holds PAD. Tokens in one row are predicted in
parallel (one head each) from the hidden state of the previous row, so the heads used at decoder step
``p`` are exactly the streams that have a token in row ``p`` (:meth:`CodePattern.schedule`).

- ``visage`` (jaeyeonkim99/visage ``preprocess_ambi.py``): 2 steps per frame; W coarse (delay 0), then W
  residual and Y/Z/X coarse (delay 1), then Y/Z/X residual (delay 2). ``L = 2F + 1`` for FOA. With one channel
  it is the mono stage-1 layout (W coarse at even rows, W residual at odd rows, ``L = 2F``).
- ``delay`` (MusicGen): 1 step per frame, codebook q delayed by q steps (all channels alike).
- ``flat``: one token per step, streams in order ``k = 0..K-1`` within a frame.

``build`` / ``revert`` are exact inverses; the training sequence, the labels and the generation
schedule all come from the same :class:`CodePattern`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "PATTERNS",
    "CodePattern",
    "create_pattern",
    "delay_pattern",
    "flat_pattern",
    "visage_pattern",
]


@dataclass(frozen=True)
class CodePattern:
    """A clocked delay pattern over ``num_channels * num_codebooks`` streams.

    Attributes:
        name: pattern name.
        num_channels, num_codebooks: C and Q of the codes.
        steps_per_frame: decoder rows per code frame.
        delays: per-stream row offset, length ``K = C * Q``.
    """

    name: str
    num_channels: int
    num_codebooks: int
    steps_per_frame: int
    delays: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.delays) != self.num_streams:
            raise ValueError(f"{self.name}: {len(self.delays)} delays for {self.num_streams} streams")
        if min(self.delays) < 0 or self.steps_per_frame < 1:
            raise ValueError(f"{self.name}: delays must be >= 0 and steps_per_frame >= 1")

    @property
    def num_streams(self) -> int:
        """K = C * Q."""
        return self.num_channels * self.num_codebooks

    @property
    def max_delay(self) -> int:
        """Largest delay (rows after the frame's first row)."""
        return max(self.delays)

    def sequence_length(self, num_frames: int) -> int:
        """Rows ``L`` of the sequence for ``num_frames`` frames (``2F + 1`` for ViSAGe FOA)."""
        if num_frames < 1:
            raise ValueError(f"{self.name}: num_frames must be >= 1, got {num_frames}")
        return self.steps_per_frame * (num_frames - 1) + self.max_delay + 1

    def num_frames(self, sequence_length: int) -> int:
        """Inverse of :meth:`sequence_length`; raises ValueError when no frame count gives that length."""
        span = sequence_length - self.max_delay - 1
        if span < 0 or span % self.steps_per_frame:
            raise ValueError(
                f"{self.name}: a sequence of {sequence_length} rows matches no whole number of frames "
                f"(lengths are {self.steps_per_frame}*(F-1)+{self.max_delay + 1})"
            )
        return span // self.steps_per_frame + 1

    def positions(self, num_frames: int, device: torch.device | str | None = None) -> Tensor:
        """Row of every (stream, frame): ``[K, F]`` int64, ``steps_per_frame * t + delay[k]``."""
        t = torch.arange(num_frames, device=device)
        delays = torch.tensor(self.delays, device=device)
        return self.steps_per_frame * t[None, :] + delays[:, None]

    def mask(self, num_frames: int, device: torch.device | str | None = None) -> Tensor:
        """``[L, K]`` bool: True where row ``p`` holds a token of stream ``k`` (same for every batch item)."""
        L, K = self.sequence_length(num_frames), self.num_streams
        m = torch.zeros(L, K, dtype=torch.bool, device=device)
        pos = self.positions(num_frames, device)
        m[pos, torch.arange(K, device=device)[:, None].expand_as(pos)] = True
        return m

    def schedule(self, num_frames: int) -> list[Tensor]:
        """Heads (stream indices, int64, ascending) predicted at each decoder step ``p = 0..L-1``."""
        m = self.mask(num_frames)
        return [row.nonzero().flatten() for row in m]

    def build(self, codes: Tensor, pad_token: int) -> tuple[Tensor, Tensor]:
        """Lay ``codes [B, C, Q, F]`` out as ``sequence [B, L, K]`` (PAD elsewhere) and its ``mask [L, K]``."""
        B, F = self._check_codes(codes)
        K = self.num_streams
        flat = codes.reshape(B, K, F)
        seq = codes.new_full((B, self.sequence_length(F), K), pad_token)
        pos = self.positions(F, codes.device)  # [K, F]
        stream = torch.arange(K, device=codes.device)[:, None].expand_as(pos)
        seq[:, pos, stream] = flat
        return seq, self.mask(F, codes.device)

    def revert(self, sequence: Tensor) -> Tensor:
        """Inverse of :meth:`build`: ``sequence [B, L, K]`` -> ``codes [B, C, Q, F]``."""
        if sequence.ndim != 3 or sequence.shape[-1] != self.num_streams:
            raise ValueError(
                f"{self.name}: sequence must be [batch, length, {self.num_streams}], got {tuple(sequence.shape)}"
            )
        F = self.num_frames(sequence.shape[1])
        pos = self.positions(F, sequence.device)
        stream = torch.arange(self.num_streams, device=sequence.device)[:, None].expand_as(pos)
        flat = sequence[:, pos, stream]  # [B, K, F]
        return flat.reshape(sequence.shape[0], self.num_channels, self.num_codebooks, F)

    def _check_codes(self, codes: Tensor) -> tuple[int, int]:
        C, Q = self.num_channels, self.num_codebooks
        if codes.ndim != 4 or codes.shape[1:3] != (C, Q):
            raise ValueError(
                f"{self.name}: codes must be [batch, {C} channels, {Q} codebooks, frames], got {tuple(codes.shape)}"
            )
        if codes.shape[-1] < 1:
            raise ValueError(f"{self.name}: codes have no frames")
        return codes.shape[0], codes.shape[-1]


def visage_pattern(num_channels: int, num_codebooks: int) -> CodePattern:
    """ViSAGe interleaving: W coarse at delay 0; W residual and other channels' coarse at 1; the rest at 2."""
    delays = []
    for c in range(num_channels):
        for q in range(num_codebooks):
            if c == 0:
                delays.append(0 if q == 0 else 1)
            else:
                delays.append(1 if q == 0 else 2)
    return CodePattern("visage", num_channels, num_codebooks, 2, tuple(delays))


def delay_pattern(num_channels: int, num_codebooks: int) -> CodePattern:
    """MusicGen delay pattern: codebook ``q`` of every channel is delayed by ``q`` steps."""
    delays = tuple(q for _ in range(num_channels) for q in range(num_codebooks))
    return CodePattern("delay", num_channels, num_codebooks, 1, delays)


def flat_pattern(num_channels: int, num_codebooks: int) -> CodePattern:
    """Fully serialised: one token per step, stream ``k`` at offset ``k`` within its frame."""
    k = num_channels * num_codebooks
    return CodePattern("flat", num_channels, num_codebooks, k, tuple(range(k)))


PATTERNS: dict[str, Callable[[int, int], CodePattern]] = {
    "visage": visage_pattern,
    "delay": delay_pattern,
    "flat": flat_pattern,
}


def create_pattern(name: str, num_channels: int, num_codebooks: int) -> CodePattern:
    """The pattern ``name`` (one of :data:`PATTERNS`) for ``C`` channels and ``Q`` codebooks."""
    if name not in PATTERNS:
        raise ValueError(f"unknown code pattern {name!r}; choose one of {sorted(PATTERNS)}")
    if num_channels < 1 or num_codebooks < 1:
        raise ValueError(f"num_channels and num_codebooks must be >= 1, got {num_channels}, {num_codebooks}")
    return PATTERNS[name](num_channels, num_codebooks)
