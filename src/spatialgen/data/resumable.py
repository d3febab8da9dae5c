"""A DataLoader whose position survives a restart, so a mid-epoch resume sees exactly the unseen batches.

What Lightning 2.6 restores on ``fit(ckpt_path=...)``: weights, optimizers, LR schedulers, precision
scaler, callback states and the fit-loop counters (epoch, global step, batch index in the epoch). It
restores the *data position* only for loaders that implement ``state_dict``/``load_state_dict``. A
plain ``DataLoader`` resumed mid-epoch starts the epoch's sample order from the beginning while the
loop continues from the saved batch index: samples of the first part of the epoch are seen twice, the
rest never (Lightning warns "resuming from a checkpoint that ended before the epoch ended"). And a
``shuffle=True`` loader outside DDP draws its order from the global RNG, which a restart re-seeds.

:class:`ResumableDataLoader` is torchdata's ``StatefulDataLoader`` (pytorch/data,
``torchdata/stateful_dataloader/stateful_dataloader.py``), which saves the sampler position and, for
iterable datasets that have ``state_dict``/``load_state_dict`` (such as
:class:`~spatialgen.data.streaming.ShardStream`), each worker's dataset state, plus what it does not do:

- the shuffle order is a function of ``(seed, epoch)`` only: epoch ``e`` is
  ``torch.randperm(n, generator=seed + e)``, the permutation DDP's ``DistributedSampler`` uses, so
  1-process and N-process runs see the same samples, whatever the global RNG does;
- it counts epochs (Lightning stops after ``len(loader)`` batches without exhausting the iterator, so
  every new iteration but the first after construction or a restore starts the next epoch) and calls the
  dataset's ``set_epoch`` (streams reshuffle per epoch; Lightning only reaches samplers);
- a state saved at the end of an epoch resumes with the next epoch in full (torchdata's would resume
  with an empty one).

The state is ``{"epoch", "batches", "loader"}`` (``loader``: torchdata's own state). Under DDP Lightning
swaps in its ``DistributedSampler`` (which it seeds and ``set_epoch``-s); torchdata then fast-forwards
the index sampler, so no sample is loaded for the skipped batches.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler

__all__ = ["ResumableDataLoader"]

log = logging.getLogger(__name__)

_FINISHED = "_iterator_finished"  # key of torchdata's state: the iterator ran out (end of an epoch)


class ResumableDataLoader(StatefulDataLoader):
    """``StatefulDataLoader`` with an epoch-seeded shuffle, epoch counting and end-of-epoch resume.

    Args:
        dataset: a map-style dataset, or an iterable one (``shuffle`` must then be off; a
            ``state_dict``/``load_state_dict`` pair on it makes its position resumable).
        *args, **kwargs: as for ``torch.utils.data.DataLoader`` (and ``snapshot_every_n_steps``).
        seed: shuffle seed; epoch ``e`` uses the permutation ``torch.randperm(n, generator=seed + e)``.
    """

    def __init__(self, dataset: Dataset, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        # Own generators, seeded from (seed, epoch) at every new epoch: one for the shuffle order, one
        # for the workers' base seed (the DataLoader draws it from `generator` before sampling starts).
        self._order_generator: torch.Generator | None = None
        if kwargs.get("shuffle") and kwargs.get("sampler") is None:
            self._order_generator = torch.Generator()
            kwargs["shuffle"] = False
            kwargs["sampler"] = RandomSampler(dataset, generator=self._order_generator)  # type: ignore[arg-type]
        self._own_generator = kwargs.get("generator") is None
        if self._own_generator:
            kwargs["generator"] = torch.Generator()
        with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital, deprecated by torch
            warnings.filterwarnings("ignore", message=".*set_vital.*", category=UserWarning)
            super().__init__(dataset, *args, **kwargs)
        self.seed = seed
        self._epoch = 0  # epoch of the running (or last) iteration
        self._started = False  # whether an iteration has started since construction / restore
        self._restored: dict[str, Any] | None = None  # loaded state, until the next iteration starts

    def _epoch_sampler(self) -> Any:
        """The sampler that has an epoch (DDP's ``DistributedSampler``), or None. Lightning injects it into
        the batch sampler (torchdata's ``BatchSampler`` is not PyTorch's class, so Lightning treats it as a
        custom one), so it is looked for there too."""
        for sampler in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
            if callable(getattr(sampler, "set_epoch", None)) and hasattr(sampler, "epoch"):
                return sampler
        return None

    @property
    def epoch(self) -> int:
        """The epoch of the current iteration: the sampler's when it has one (DDP), else counted here."""
        sampler = self._epoch_sampler()
        return int(sampler.epoch) if sampler is not None else self._epoch

    def __iter__(self) -> Iterator[Any]:
        resuming = self.next_iter_state is not None
        if self._started and not resuming:
            self._epoch += 1
        self._started, self._restored = True, None
        if (
            self._order_generator is not None
            and getattr(self.sampler, "generator", None) is self._order_generator
        ):
            self._order_generator.manual_seed(self.seed + self.epoch)  # a restore then sets the saved state
        if self._own_generator and self.generator is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        if callable(getattr(self.dataset, "set_epoch", None)):
            self.dataset.set_epoch(self.epoch)  # type: ignore[attr-defined]
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch": e, "batches": b, "loader": torchdata's state}``: b batches of epoch e were handed out."""
        if self._restored is not None:  # not iterated since the restore: the restored position
            return dict(self._restored)
        if self._iterator is None:  # (torchdata would build an iterator here, before our seeding)
            return {"epoch": self.epoch, "batches": 0, "loader": {}}
        return {"epoch": self.epoch, "batches": self._iterator._num_yielded, "loader": super().state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue at the position of :meth:`state_dict` on the next iteration."""
        epoch, batches = int(state_dict["epoch"]), int(state_dict["batches"])
        loader = dict(state_dict.get("loader") or {})
        sized = not isinstance(self.dataset, IterableDataset)
        if loader.get(_FINISHED) or (sized and batches >= len(self)):
            epoch, batches, loader = epoch + 1, 0, {}  # saved at the end of an epoch: start the next one
        elif batches and not loader:
            log.warning(
                "ResumableDataLoader: the checkpoint's data position has no sampler state (written before "
                "the torchdata loader); epoch %d restarts from its first batch",
                epoch,
            )
            batches = 0
        self._epoch, self._started = epoch, False
        sampler = self._epoch_sampler()
        if sampler is not None:
            sampler.set_epoch(epoch)
        super().load_state_dict(loader)
        self._restored = {"epoch": epoch, "batches": batches, "loader": loader}
