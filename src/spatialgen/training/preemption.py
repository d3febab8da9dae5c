"""Pre-emption: on SIGTERM/SIGUSR1 save ``last.ckpt`` at the next safe point and exit cleanly.

Lightning alone handles SIGTERM by raising ``SIGTERMException`` (a ``SystemExit``) at the end of the
current batch, without a checkpoint, and saves on SIGUSR1 only for SLURM auto-requeue. This callback
works on any cluster: its handlers only set a flag (async-signal safe) and chain to the handlers that
were there before (Lightning's included). At the end of the training batch (after the optimizer step,
so weights, optimizer and loop counters agree) the flag is or-reduced across ranks, every rank joins
``trainer.save_checkpoint`` into the ``ModelCheckpoint`` folder as ``last.ckpt`` (found again by
``--ckpt_path last``), and the callback raises ``SIGTERMException``, which Lightning turns into a clean
shutdown with exit status 0. A signal arriving during validation is handled when Lightning raises its
own ``SIGTERMException``: the checkpoint is written from ``on_exception``.

Why a plain ``Callback`` and not Lightning's ``Checkpoint`` base (lightning 2.6,
``lightning/pytorch/trainer/connectors/callback_connector.py``): the Trainer counts every ``Checkpoint``
instance as a checkpointing callback, and the CLI adds this callback to every run. As a ``Checkpoint`` it
would (1) stop the Trainer from adding its default ``ModelCheckpoint`` to recipes that list none (no
periodic checkpoints any more), (2) make ``trainer.enable_checkpointing=false`` a ``MisconfigurationException``
at Trainer construction, and (3) become ``trainer.checkpoint_callback`` when listed before the
``ModelCheckpoint``, which breaks ``ckpt_path="best"`` (it has no ``best_model_path``). All three were
checked against lightning 2.6.6 and are pinned by ``tests/training/test_fault_tolerance.py``. The one
thing the base would give, running after the other callbacks, is done here by updating a listed
:class:`~spatialgen.training.ema.EMA` first (its update is idempotent per step).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from spatialgen.training.ema import EMA

log = logging.getLogger(__name__)


class PreemptionCheckpoint(Callback):
    """Save a checkpoint and stop when the process is asked to leave (SIGTERM, SIGUSR1, ...).

    Args:
        signals: signal names to handle.
        dirpath: folder for the checkpoint; default: the ModelCheckpoint's folder, else
            ``<default_root_dir>/checkpoints``.
        filename: checkpoint file name without ``.ckpt``.
    """

    def __init__(
        self, signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1"), dirpath: str | None = None,
        filename: str = "last",
    ) -> None:  # fmt: skip
        unknown = [s for s in signals if not isinstance(getattr(signal, s, None), signal.Signals)]
        if unknown:
            raise ValueError(f"PreemptionCheckpoint: unknown signal names {unknown}; use e.g. 'SIGTERM'.")
        self.signals = [getattr(signal, s) for s in signals]
        self.dirpath = dirpath
        self.filename = filename
        self.received: int | None = None
        self.saved_path: str | None = None
        self._previous: dict[int, Any] = {}

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        """Where the pre-emption checkpoint goes."""
        folder = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
        folder = folder or Path(trainer.default_root_dir) / "checkpoints"
        return Path(folder) / f"{self.filename}.ckpt"

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Install the handlers (after Lightning installed its own, which are chained)."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("PreemptionCheckpoint: not in the main thread, signal handlers not installed")
            return
        for sig in self.signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Give the signals back."""
        self._restore_handlers()

    def _save(self, trainer: pl.Trainer) -> None:
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = str(path)
        log.warning("pre-emption: saved %s at step %d", path, trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """At a step boundary: if any rank was signalled, all ranks save and stop."""
        local = self.received is not None or trainer.received_sigterm
        if not trainer.strategy.reduce_boolean_decision(local, all=False):
            return
        for callback in trainer.callbacks:  # an EMA listed after us must include this step (idempotent)
            if isinstance(callback, EMA):
                callback.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._save(trainer)
        raise SIGTERMException()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Lightning's own SIGTERM stop (e.g. during validation): save if not done yet."""
        try:
            if (
                isinstance(exception, SIGTERMException)
                and self.saved_path is None
                and trainer.state.fn == TrainerFn.FITTING
            ):
                self._save(trainer)
        finally:
            self._restore_handlers()
