"""Output buffers for the long-signal DSP paths: large CPU outputs backed by transparent huge pages.

Writing a fresh 46 MB tensor (60 s of 48 kHz FOA, float32) costs one page fault per 4 KiB page
(~11 k faults), which on a typical Linux host (``transparent_hugepage=madvise``) makes ``torch.empty``
plus one pass 2-3x slower than the arithmetic. NumPy marks allocations of 4 MiB and more with
``madvise(MADV_HUGEPAGE)`` (``indicate_hugepages`` in the multiarray ``alloc.c`` of numpy/numpy), so
the same pass through a NumPy-allocated buffer runs at memory speed; PyTorch does so only when ``THP_MEM_ALLOC_ENABLE=1`` is
set before its first allocation (``c10/core/alloc_cpu.cpp`` in pytorch/pytorch), which a library cannot
arrange. :func:`empty` therefore lets NumPy allocate large CPU buffers and wraps them with
``torch.from_numpy`` (zero copy); the result is an ordinary tensor except that it cannot be resized.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["empty"]

_HUGE_BYTES = 1 << 22  # NumPy's huge-page threshold (4 MiB)
_NUMPY_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.complex64: np.complex64,
    torch.complex128: np.complex128,
}


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """An uninitialised tensor; large CPU ones are NumPy-allocated (huge pages, see the module docstring)."""
    device = torch.device(device)
    np_dtype = _NUMPY_DTYPES.get(dtype)
    numel = 1
    for size in shape:
        numel *= int(size)
    if device.type != "cpu" or np_dtype is None or numel * np.dtype(np_dtype).itemsize < _HUGE_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.empty(tuple(int(s) for s in shape), dtype=np_dtype))
