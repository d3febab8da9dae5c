"""Atomic checkpoint writes: a Lightning ``CheckpointIO`` plugin.

Lightning's ``TorchCheckpointIO`` opens the final path and streams into it, so a kill or a full disk
mid-write leaves a truncated ``last.ckpt``. :class:`AtomicCheckpointIO` writes to a temporary file in
the same folder, flushes and fsyncs it, then ``os.replace``-s it over the final name (atomic on POSIX
and Windows) and fsyncs the folder. Every checkpoint Lightning writes (``ModelCheckpoint`` periodic,
``last.ckpt``, ``OnExceptionCheckpoint``, ``trainer.save_checkpoint``, the pre-emption callback) goes
through the strategy's CheckpointIO, so all of them become atomic. Remote paths (``s3://`` etc.) fall
back to Lightning's writer: object stores publish an object only when its upload completes.

Use it in a recipe with ``trainer.plugins: [{class_path: spatialgen.training.AtomicCheckpointIO}]``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO


def _is_local(path: str | os.PathLike) -> bool:
    return "file" in get_filesystem(str(path)).protocol


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``.

    On any error (including KeyboardInterrupt) the temporary file is removed and ``path`` keeps its
    previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable across a power loss; not possible on every platform/filesystem.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (temp file + fsync + ``os.replace``)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (remote paths: Lightning's writer)."""
        if storage_options is not None:
            raise TypeError(
                f"AtomicCheckpointIO.save_checkpoint got storage_options={storage_options!r}, which it does "
                "not use; drop it or use a CheckpointIO that supports it."
            )
        if not _is_local(path):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)
