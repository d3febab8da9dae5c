"""A DataLoader whose position survives a restart, so a mid-epoch resume sees exactly the unseen batches.

What Lightning 2.6 restores on ``fit(ckpt_path=...)``: weights, optimizers, LR schedulers, precision
scaler, callback states and the fit-loop counters (epoch, global step, batch index in the epoch). It
restores the *data position* only for loaders that implement ``state_dict``/``load_state_dict``. A
plain ``DataLoader`` resumed mid-epoch starts the epoch's sample order from the beginning while the
loop continues from the saved batch index: samples of the first part of the epoch are seen twice, the
rest never (Lightning warns "resuming from a checkpoint that ended before the epoch ended"). And a
``shuffle=True`` loader outside DDP draws its order from the global RNG, which a restart re-seeds.

:class:`ResumableDataLoader` fixes both: its shuffle order is a function of ``(seed, epoch)`` only (the
same permutation DDP's ``DistributedSampler`` uses, so 1-process and N-process runs see the same
samples), and its state is ``{"epoch", "batches"}``: on resume it skips the already-consumed batches at
the index level (no sample is loaded for them). Under DDP Lightning swaps in its ``DistributedSampler``
(which it seeds and ``set_epoch``-s) and the skip applies per rank.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler


class _Skipped:
    """An index sampler without its first ``skip`` items."""

    def __init__(self, base: Iterable, skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


class ResumableDataLoader(DataLoader):
    """``torch.utils.data.DataLoader`` with a resumable position and an epoch-seeded shuffle.

    Args:
        dataset: a map-style dataset.
        *args, **kwargs: as for ``DataLoader``.
        seed: shuffle seed; epoch ``e`` uses the permutation ``torch.randperm(n, generator=seed + e)``.
    """

    def __init__(self, dataset: Dataset, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        # Own generators, seeded from (seed, epoch) at every iteration: one for the shuffle order, one
        # for the workers' base seed (the DataLoader draws it from `generator` before sampling starts).
        self._order_generator: torch.Generator | None = None
        if kwargs.get("shuffle") and kwargs.get("sampler") is None:
            self._order_generator = torch.Generator()
            kwargs["shuffle"] = False
            kwargs["sampler"] = RandomSampler(dataset, generator=self._order_generator)  # type: ignore[arg-type]
        self._own_generator = kwargs.get("generator") is None
        if self._own_generator:
            kwargs["generator"] = torch.Generator()
        super().__init__(dataset, *args, **kwargs)
        self.seed = seed
        self._epoch = 0  # epoch of the running (or last) iteration
        self._started = False  # whether an iteration has started since construction / restore
        self._yielded = 0
        self._skip = 0
        self._skip_now = 0

    @property
    def epoch(self) -> int:
        """The epoch of the current iteration: the sampler's when it has one (DDP), else counted here."""
        return int(getattr(self.sampler, "epoch", self._epoch))

    @property
    def _index_sampler(self) -> Any:
        base = super()._index_sampler
        return _Skipped(base, self._skip_now) if self._skip_now else base

    def __iter__(self) -> Iterator[Any]:
        # Lightning stops after len(loader) batches without exhausting the iterator, so a new
        # iteration (not the first, not right after a restore) is what starts the next epoch.
        if self._started:
            self._epoch += 1
        self._started = True
        if (
            self._order_generator is not None
            and getattr(self.sampler, "generator", None) is self._order_generator
        ):
            self._order_generator.manual_seed(self.seed + self.epoch)
        if self._own_generator and self.generator is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        self._skip_now, self._skip = self._skip, 0
        self._yielded = self._skip_now
        try:
            iterator = super().__iter__()
        finally:
            self._skip_now = 0
        return self._count(iterator)

    def _count(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": e, "batches": b}``: b batches of epoch e were handed out."""
        return {"epoch": self.epoch, "batches": self._yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Continue at the position of :meth:`state_dict` on the next iteration."""
        epoch, batches = int(state_dict["epoch"]), int(state_dict["batches"])
        if batches >= len(self):  # saved at the end of an epoch: the next iteration is a new epoch
            epoch, batches = epoch + 1, 0
        self._epoch, self._skip, self._started = epoch, batches, False
