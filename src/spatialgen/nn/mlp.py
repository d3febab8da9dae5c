"""Feed-forward layers: channel-last Conv1d and SwiGLU MLPs (token-wise or temporal-conv, as in MMAudio)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ChannelLastConv1d", "SwiGLU", "swiglu_hidden_dim", "token_linear"]


class ChannelLastConv1d(nn.Conv1d):
    """``nn.Conv1d`` over ``[B, N, C]`` token sequences ('same' padding for odd kernels)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, bias: bool = True) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        super().__init__(in_dim, out_dim, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, in_dim] -> [B, N, out_dim]``."""
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def token_linear(in_dim: int, out_dim: int, kernel_size: int = 1, bias: bool = True) -> nn.Module:
    """A Linear for ``kernel_size == 1`` (token-wise), else a channel-last temporal Conv1d."""
    if kernel_size == 1:
        return nn.Linear(in_dim, out_dim, bias=bias)
    return ChannelLastConv1d(in_dim, out_dim, kernel_size, bias=bias)


def swiglu_hidden_dim(hidden: int, multiple_of: int = 256) -> int:
    """SwiGLU width for a nominal ``hidden`` width: ``int(2 * hidden / 3)`` rounded up to ``multiple_of``.

    Keeps the parameter count of a plain ``hidden``-wide MLP (1280 for D=448, ratio 4; 2560 for D=896).
    """
    if hidden <= 0 or multiple_of <= 0:
        raise ValueError(f"hidden and multiple_of must be positive, got {hidden}, {multiple_of}")
    h = int(2 * hidden / 3)
    return multiple_of * -(-h // multiple_of)


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)`` without biases; token-wise (kernel 1) or temporal conv (kernel > 1).

    Args:
        dim: input/output width.
        hidden: nominal hidden width (see :func:`swiglu_hidden_dim`).
        kernel_size: 1 for Linear layers, odd > 1 for channel-last Conv1d layers.
        multiple_of: hidden-width rounding.
    """

    def __init__(self, dim: int, hidden: int, kernel_size: int = 1, multiple_of: int = 256) -> None:
        super().__init__()
        width = swiglu_hidden_dim(hidden, multiple_of)
        self.w1 = token_linear(dim, width, kernel_size, bias=False)
        self.w2 = token_linear(width, dim, kernel_size, bias=False)
        self.w3 = token_linear(dim, width, kernel_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, dim] -> [B, N, dim]`` (or ``[B, dim]`` for kernel 1)."""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))
