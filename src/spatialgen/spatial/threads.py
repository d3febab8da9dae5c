"""Intra-op thread count for the chunked long-signal loops (``threads=`` of rotate / render functions).

The long-signal paths (:func:`spatialgen.spatial.foa.rotate` trajectories, overlap-add rendering)
issue thousands of small cache-sized ops (the static rotation one memory-bound BLAS product). With ``N > 1`` torch threads every op is a fork-join, and
when other processes hold the cores each join waits for a descheduled thread: on the shared 2-core
development machine two threads made a 60 s render 13x and a trajectory rotation 20x slower than one
(bench/bench_dsp.py ``--threads 2``). Ops this small gain little from threads even on an idle machine,
so those loops run on ``threads=1`` by default. The count is set for the duration of the call and
restored afterwards (``torch.set_num_threads`` is process-wide for MKL, so a concurrent torch call in
another Python thread sees it too); ``threads=None`` keeps torch's current setting untouched.
Results do not depend on the count (tests/spatial/test_convolve.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["check_threads", "intra_op_threads"]


def check_threads(threads: object) -> int | None:
    """``threads`` as a positive int or ``None``, else a one-line ``ValueError``."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a positive integer or None (torch's setting), got {threads!r}")
    return threads


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: unchanged), then restore."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
