"""Exponential moving average of the *trainable* network only.

Lightning's ``EMAWeightAveraging`` deep-copies the whole LightningModule (frozen encoders and codec
included; a weight-normed DAC cannot even be deep-copied: descript/descript-audio-codec ``dac/nn/layers.py``
wraps its convolutions in ``torch.nn.utils.weight_norm``). This callback
keeps one flat list of EMA tensors for the parameters of ``pl_module.<attribute>`` that require grad,
updated in place with ``torch._foreach_lerp_`` (one fused kernel per device/dtype). Buffers of the
network (e.g. norm statistics) are copied, not averaged. The EMA lives in the checkpoint under the
callback's state (``checkpoint["callbacks"]["EMA"]``), so ``state_dict`` keeps the raw weights and
resume restores both; :func:`ema_state_dict_from_checkpoint` reads the EMA weights for export.
Sharded strategies (FSDP) are not supported: parameters there are local shards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import FSDPStrategy


def _named_trainable(network: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in network.named_parameters() if p.requires_grad}


class EMA(Callback):
    """EMA of ``pl_module.<attribute>``'s trainable parameters, optionally used for validation.

    With ``n`` the number of EMA updates done so far, update ``n`` uses the decay
    ``d_n = min(decay, (1 + n) / (warmup_steps + n))`` when ``warmup_steps > 0`` (the TensorFlow
    ``num_updates`` warm-up: early updates follow the fast-moving weights), else ``d_n = decay``, and sets
    ``ema <- d_n * ema + (1 - d_n) * param``. The EMA starts as a copy of the weights at fit start.

    Args:
        decay: EMA decay per update, in [0, 1).
        warmup_steps: decay warm-up length in updates; 0 disables it.
        update_every_n_steps: update after every n-th optimizer step.
        start_step: first global step that updates the EMA (before it, the EMA copies the weights).
        use_for_validation: swap the EMA weights in during validation epochs.
        attribute: the LightningModule attribute holding the trainable network.
    """

    def __init__(
        self,
        decay: float = 0.999,
        warmup_steps: int = 0,
        update_every_n_steps: int = 1,
        start_step: int = 0,
        use_for_validation: bool = True,
        attribute: str = "network",
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if warmup_steps < 0 or start_step < 0:
            raise ValueError(
                f"EMA warmup_steps and start_step must be >= 0, got {warmup_steps}, {start_step}"
            )
        if update_every_n_steps < 1:
            raise ValueError(f"EMA update_every_n_steps must be >= 1, got {update_every_n_steps}")
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.update_every_n_steps = update_every_n_steps
        self.start_step = start_step
        self.use_for_validation = use_for_validation
        self.attribute = attribute
        self.num_updates = 0
        self.names: list[str] = []
        self.ema: list[torch.Tensor] = []
        self._params: list[torch.nn.Parameter] = []
        self._backup: list[torch.Tensor] | None = None
        self._pending: dict[str, Any] | None = None
        self._last_step = -1

    def _network(self, pl_module: pl.LightningModule) -> torch.nn.Module:
        network = getattr(pl_module, self.attribute, None)
        if not isinstance(network, torch.nn.Module):
            raise ValueError(
                f"EMA(attribute={self.attribute!r}): {type(pl_module).__name__} has no nn.Module attribute "
                f"{self.attribute!r}; set EMA's attribute to the module holding the trainable network."
            )
        return network

    def current_decay(self) -> float:
        """The decay the next update will use."""
        if self.warmup_steps == 0:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (self.warmup_steps + self.num_updates))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Build the EMA copy on the parameters' device (after the strategy moved the model)."""
        if isinstance(trainer.strategy, FSDPStrategy):
            raise ValueError(
                "EMA does not support sharded strategies (FSDP); use DDP or drop the EMA callback."
            )
        named = _named_trainable(self._network(pl_module))
        self.names, self._params = list(named), list(named.values())
        self.ema = [p.detach().clone() for p in self._params]
        self._last_step = trainer.global_step
        if self._pending is not None:
            self._load_tensors(self._pending)
            self._pending = None

    @torch.no_grad()
    def update(self) -> None:
        """One EMA step towards the current parameters."""
        if not self.ema:
            return
        weight = 1.0 - self.current_decay()
        params = [p.detach() for p in self._params]
        torch._foreach_lerp_(self.ema, params, weight)
        self.num_updates += 1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Update after each optimizer step that ran (skipped non-finite steps leave the EMA as is)."""
        step = trainer.global_step
        if step == self._last_step:  # accumulating: no optimizer step on this batch
            return
        self._last_step = step
        guard = getattr(pl_module, "guard", None)
        if guard is not None and guard.last_step_skipped:
            return
        if step < self.start_step:
            with torch.no_grad():
                torch._foreach_copy_(self.ema, [p.detach() for p in self._params])
            return
        if step % self.update_every_n_steps == 0:
            self.update()

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the network's weights and the EMA weights (call twice to undo)."""
        for p, e in zip(self._params, self.ema):
            tmp = p.detach().clone()
            p.copy_(e)
            e.copy_(tmp)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Validate with the EMA weights."""
        if self.use_for_validation and self.ema and self._backup is None:
            self.swap()
            self._backup = self.ema  # marks "swapped": self.ema holds the raw weights now

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put the raw weights back."""
        if self._backup is not None:
            self.swap()
            self._backup = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Never leave the EMA weights swapped in (an on-exception checkpoint follows)."""
        self.on_validation_epoch_end(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """EMA tensors by parameter name, update count and settings."""
        ema = self.ema
        if self._backup is not None:  # saved mid-validation: the network holds the EMA weights
            ema = [p.detach() for p in self._params]
        return {
            "ema": {n: e.detach().clone() for n, e in zip(self.names, ema)},
            "num_updates": self.num_updates,
            "decay": self.decay,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; tensors are applied at fit start if the EMA is not built yet."""
        self.num_updates = int(state_dict["num_updates"])
        if self.ema:
            self._load_tensors(state_dict["ema"])
        else:
            self._pending = dict(state_dict["ema"])

    @torch.no_grad()
    def _load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        if set(tensors) != set(self.names):
            missing, extra = sorted(set(self.names) - set(tensors)), sorted(set(tensors) - set(self.names))
            raise ValueError(
                f"EMA checkpoint state does not match the network: missing {missing[:5]}, unexpected "
                f"{extra[:5]}; resume with the same model configuration or drop the EMA state."
            )
        for name, e in zip(self.names, self.ema):
            e.copy_(tensors[name])


def ema_state_dict_from_checkpoint(checkpoint: Mapping[str, Any], attribute: str = "network") -> dict:
    """The network's ``state_dict`` with EMA weights, from a loaded Lightning checkpoint dict.

    Keys are relative to the network (``pl_module.<attribute>``); parameters without an EMA (frozen
    ones) and buffers come from the checkpoint's ``state_dict``.
    """
    states = [v for k, v in checkpoint.get("callbacks", {}).items() if k.split("{")[0] == "EMA"]
    if not states:
        raise ValueError("checkpoint has no EMA state: it was trained without the EMA callback.")
    prefix = f"{attribute}."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    weights.update(states[0]["ema"])
    return weights
