"""Shared Metric machinery: per-clip means with float64 sums, and modules kept out of ``state_dict``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

__all__ = ["ClipMeanMetric", "attach_module"]


def attach_module(metric: nn.Module, name: str, module: nn.Module | None) -> None:
    """Store ``module`` on ``metric`` without registering it as a submodule.

    An embedder registered inside a Metric would land in every checkpoint / Hub export holding the
    metric (torchmetrics' ``Metric.state_dict`` includes submodules); this keeps ``metric.state_dict()``
    empty of it. Move it to
    the data's device explicitly (see :meth:`ClipMeanMetric.module_on`).
    """
    if module is not None:
        module.eval()
        module.requires_grad_(False)
    object.__setattr__(metric, name, module)


class ClipMeanMetric(Metric):
    """Mean of a per-clip score over every clip seen (DDP: float64 sums all-reduced).

    Subclasses implement :meth:`scores` (a batch -> ``[B]`` float64). NaN clips are counted: by default
    ``compute`` then warns and returns NaN (a constant map must never become a silent number);
    ``skip_nan=True`` averages the finite clips only (still warning).
    """

    is_differentiable = False
    full_state_update = False
    total: Tensor
    count: Tensor
    nan_count: Tensor

    def __init__(self, *, skip_nan: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.skip_nan = skip_nan
        for name in ("total", "count", "nan_count"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def scores(self, *args: Any, **kwargs: Any) -> Tensor:
        """Per-clip scores ``[B]`` of one batch (pure: no state change)."""
        raise TypeError(f"{type(self).__name__} must implement scores()")

    def accumulate(self, values: Tensor) -> None:
        """Add per-clip scores computed by :meth:`scores` (lets callers keep per-clip values)."""
        values = values.detach().to(self.total.device, torch.float64).reshape(-1)
        finite = ~values.isnan()
        self.total += values[finite].sum()
        self.count += finite.sum()
        self.nan_count += (~finite).sum()

    def update(self, *args: Any, scores: Tensor | None = None, **kwargs: Any) -> None:
        """Score a batch and accumulate it; ``update(scores=values)`` adds per-clip values already
        computed by :meth:`scores` (counted as an update, so ``compute`` does not warn)."""
        self.accumulate(self.scores(*args, **kwargs) if scores is None else scores)

    def compute(self) -> Tensor:
        """The mean over clips (float64)."""
        n_nan = int(self.nan_count)
        if self.count == 0 and n_nan == 0:
            raise ValueError(f"{type(self).__name__}: no clips were scored; call update() first")
        if n_nan:
            action = "ignored" if self.skip_nan else "the result is NaN (skip_nan=True averages the rest)"
            warnings.warn(
                f"{type(self).__name__}: {n_nan} clip(s) scored NaN; {action}", RuntimeWarning, stacklevel=2
            )
            if not self.skip_nan or self.count == 0:
                return torch.tensor(math.nan, dtype=torch.float64, device=self.total.device)
        return self.total / self.count

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot a value (or a sequence of values over steps) with torchmetrics' standard plot."""
        return self._plot(val, ax)
