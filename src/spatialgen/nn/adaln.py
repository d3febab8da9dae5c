"""Adaptive layer norm (adaLN, DiT): a conditioning vector regresses shift/scale/gate per channel.

The conditioning may be per sample ``[B, 1, D]`` / ``[B, D]`` or per token ``[B, N, D]``; in the latter
case each token gets its own modulation (MMAudio's frame-aligned sync conditioning).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["AdaLN", "modulate"]


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x * (1 + scale) + shift`` (scale 0 is the identity, so zero-initialised adaLN starts neutral)."""
    return x * (1 + scale) + shift


class AdaLN(nn.Module):
    """``SiLU -> Linear(dim, chunks * dim)`` split into ``chunks`` modulation tensors.

    The linear layer starts at zero, so every gate is 0 and every shift/scale neutral at initialisation
    (a freshly built DiT block is the identity).

    Args:
        dim: width of the conditioning and of the modulated features.
        chunks: number of modulation tensors returned (2: shift/scale; 6: two shift/scale/gate triples).
    """

    def __init__(self, dim: int, chunks: int) -> None:
        super().__init__()
        if dim <= 0 or chunks <= 0:
            raise ValueError(f"dim and chunks must be positive, got {dim}, {chunks}")
        self.chunks = int(chunks)
        self.act = nn.SiLU()
        self.linear = nn.Linear(dim, chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        """Modulation tensors, each shaped like ``c`` (``[B, D]`` or ``[B, N, D]``)."""
        return self.linear(self.act(c)).chunk(self.chunks, dim=-1)
