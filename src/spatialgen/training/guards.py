"""Non-finite guard: skip an optimizer step whose loss or gradients are NaN/inf, count it, stop at a limit.

How it works (automatic *and* manual optimisation): every optimizer step, Lightning's precision plugin
runs ``on_before_optimizer_step`` after backward (and after gradient unscaling under fp16) and before
gradient clipping and ``optimizer.step()``. There the guard decides; to skip, it sets every gradient of
the optimizer to ``None``. PyTorch optimizers skip parameters without a gradient, so ``step()`` changes
neither the parameters nor the optimizer state (no Adam moment update, no weight decay). Lightning still
counts the step (``global_step`` and step-wise LR schedulers advance), the same as a GradScaler-skipped
step; the EMA callback sees :attr:`NonFiniteGuard.last_step_skipped` and does not update.

* Gradient accumulation: losses of all micro-batches since the last optimizer step are checked; one bad
  micro-batch poisons the accumulated gradient, so the whole step is skipped and counted once.
* DDP/FSDP: the decision is all-reduced (one scalar per optimizer step), so every rank skips together.
* fp16 with GradScaler: inf/NaN *gradients* are the scaler's normal overflow signal (it skips the step
  and lowers the scale); they are not counted here. A non-finite *loss* is counted in every precision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from spatialgen.errors import SpatialgenError

log = logging.getLogger(__name__)

BATCH_ID_KEY = "clip_id"


class NonFiniteTrainingError(SpatialgenError):
    """Training stopped because too many optimizer steps had a non-finite loss or gradient."""


def batch_ids(batch: Any, key: str = BATCH_ID_KEY) -> list[str]:
    """The ids of the samples in ``batch`` (``batch[key]`` of a mapping batch), or ``[]`` if it has none."""
    if not isinstance(batch, Mapping) or key not in batch:
        return []
    ids = batch[key]
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    if isinstance(ids, (str, bytes, int)):
        ids = [ids]
    return [str(i) for i in ids]


def grads_finite(params: Iterable[torch.nn.Parameter]) -> bool:
    """True when every existing gradient is finite (one fused norm per device/dtype, one host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads)
    return bool(torch.stack([n.float().to(norms[0].device) for n in norms]).isfinite().all())


class NonFiniteGuard:
    """Counts and skips optimizer steps with a non-finite loss or gradient.

    Args:
        max_bad_steps: how many bad steps a run may skip; the next one stops training with
            :class:`NonFiniteTrainingError` (the count is saved in checkpoints). 0 stops at the first.
        id_key: batch key holding the sample ids that are reported for a bad step.
    """

    def __init__(self, max_bad_steps: int = 10, id_key: str = BATCH_ID_KEY) -> None:
        if max_bad_steps < 0:
            raise ValueError(f"max_bad_steps must be >= 0, got {max_bad_steps}")
        self.max_bad_steps = max_bad_steps
        self.id_key = id_key
        self.bad_steps = 0
        self.last_step_skipped = False
        self.last_bad_ids: list[str] = []
        self._window_ids: list[str] = []
        self._window_bad_ids: list[str] = []
        self._window_bad_loss = False

    def observe(self, loss: torch.Tensor, batch: Any) -> None:
        """Record one (micro-)batch loss; called from ``training_step`` before backward."""
        ids = batch_ids(batch, self.id_key)
        self._window_ids += ids
        if not bool(torch.isfinite(loss.detach()).all()):
            self._window_bad_loss = True
            self._window_bad_ids += ids or ["<batch without ids>"]

    def check_step(self, optimizer: torch.optim.Optimizer, trainer: Any, step: int) -> bool:
        """Decide whether this optimizer step may run; on a bad step drop the gradients and count it.

        Returns True when the step is good. Raises :class:`NonFiniteTrainingError` past the limit.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
        bad_grad = scaler is None and not grads_finite(params)
        local_bad = self._window_bad_loss or bad_grad
        device = params[0].device if params else torch.device("cpu")
        flag = torch.tensor(float(local_bad), device=device)
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None and getattr(trainer, "world_size", 1) > 1:
            flag = strategy.reduce(flag, reduce_op="sum")
        bad = bool(flag.item() > 0)
        if bad:
            ids = self._window_bad_ids if self._window_bad_loss else self._window_ids
            reason = "loss" if self._window_bad_loss else ("gradient" if bad_grad else "on another rank")
            for p in params:
                p.grad = None
            self.bad_steps += 1
            self.last_bad_ids = list(ids)
            rank = getattr(trainer, "global_rank", 0)
            log.warning(
                "rank %d: skipped optimizer step %d (non-finite %s, %d/%d); batch ids: %s",
                rank, step, reason, self.bad_steps, self.max_bad_steps, ids or "-",
            )  # fmt: skip
        self.last_step_skipped = bad
        self._window_ids, self._window_bad_ids, self._window_bad_loss = [], [], False
        if bad and self.bad_steps > self.max_bad_steps:
            raise NonFiniteTrainingError(
                f"training stopped: {self.bad_steps} optimizer steps had a non-finite loss or gradient "
                f"(max_bad_steps={self.max_bad_steps}); last batch ids: {self.last_bad_ids or '-'}. "
                "Check the data and lower the learning rate, or raise max_bad_steps."
            )
        return not bad

    def state_dict(self) -> dict[str, Any]:
        """The counter, for checkpoints."""
        return {"bad_steps": self.bad_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counter from :meth:`state_dict`."""
        self.bad_steps = int(state.get("bad_steps", 0))
