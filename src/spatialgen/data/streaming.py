"""Streaming path for scale: WebDataset-style tar shards read through Hugging Face ``datasets``.

:func:`write_shards` packs items (raw media or cached features) into ``shard-00000.tar``, ... with
two members per clip, ``<key>.safetensors`` (the tensors) and ``<key>.json`` (everything else), the
WebDataset naming convention. :class:`ShardStream` streams them back as items: a
``datasets.IterableDataset`` over the shard list, split across nodes and DataLoader workers with
``datasets.distributed.split_dataset_by_node(rank * num_workers + worker, world_size * num_workers)``,
so every clip is read exactly once per epoch when the number of shards is a multiple of
``world_size × num_workers`` (otherwise ``datasets`` falls back to skipping examples).

A stream is resumable: ``state_dict``/``load_state_dict`` carry ``datasets``' own position (shard and
example index, per DataLoader worker), which :class:`~spatialgen.data.resumable.ResumableDataLoader`
(torchdata's ``StatefulDataLoader``) saves in the checkpoint and hands back to each worker. With a
shuffle buffer the position is exact but the buffer's content is not saved: ``datasets`` refills it on
resume, so the batches after a resume differ from an uninterrupted run's: no clip is read twice, and
the clips that were in the buffer are skipped for the rest of that epoch.

Why our own tar reader and not the ``datasets`` ``webdataset`` builder
(``load_dataset("webdataset", streaming=True)``): on the same shards it reads 2.9x slower
(``bench/bench_streaming.py``: 205 vs 586 clips/s, 211 MB of 8 s FOA clips, 2-core VM), and it parses
every ``.json`` into an Arrow struct whose schema it infers from the first examples, so keys that
only some clips have come back as ``None`` in all the others (the items change).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch.utils.data import IterableDataset
from tqdm.auto import tqdm

from spatialgen.data.clips import DatasetError
from spatialgen.data.features import unflatten_tensors
from spatialgen.io.audio import atomic_output

__all__ = ["ShardStream", "decode_sample", "encode_sample", "list_shards", "write_shards"]

_GROUPS = ("features", "patch_tokens")


def encode_sample(item: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(safetensors bytes, json bytes)`` of an item; tensors of ``features``/``patch_tokens`` are flattened."""
    tensors, rest = {}, {}
    for key, value in item.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.contiguous()
        elif key in _GROUPS:
            tensors.update({f"{key}.{name}": t.contiguous() for name, t in value.items()})
        else:
            rest[key] = value
    return save_tensors(tensors), json.dumps(rest).encode()


def decode_sample(tensor_bytes: bytes, json_bytes: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_sample`."""
    return unflatten_tensors(json.loads(json_bytes), load_tensors(tensor_bytes))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    dataset: Sequence[dict[str, Any]],
    out: str | os.PathLike[str],
    clips_per_shard: int = 100,
    progress: bool = True,
) -> list[Path]:
    """Write ``dataset``'s items into tar shards in ``out``; returns the shard paths."""
    if clips_per_shard < 1:
        raise ValueError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    paths = []
    for s, first in enumerate(tqdm(range(0, n, clips_per_shard), desc="shards", disable=not progress)):
        path = root / f"shard-{s:05d}.tar"
        with atomic_output(path) as tmp, tarfile.open(tmp, "w") as tar:
            for i in range(first, min(n, first + clips_per_shard)):
                item = dataset[i]
                key = str(item["clip_id"]).replace(".", "_").replace("/", "_")
                tensors, meta = encode_sample(item)
                _add(tar, f"{key}.safetensors", tensors)
                _add(tar, f"{key}.json", meta)
        paths.append(path)
    return paths


def list_shards(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Sorted ``*.tar`` shard paths of a folder, or the given list checked for existence."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        paths = sorted(str(p) for p in Path(source).glob("*.tar"))
    else:
        paths = [str(source)] if isinstance(source, (str, os.PathLike)) else [str(p) for p in source]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing or not paths:
        raise DatasetError(f"{source}: no tar shards found" + (f" (missing {missing[0]})" if missing else ""))
    return paths


def _iter_shards(paths: list[str]) -> Iterator[dict[str, Any]]:
    """Generator for ``datasets``: one example per clip, raw bytes (decoded later, in the worker)."""
    for path in paths:
        pending: dict[str, dict[str, bytes]] = {}
        with tarfile.open(path, "r") as tar:
            for member in tar:
                key, _, ext = member.name.rpartition(".")
                data = tar.extractfile(member).read()
                pending.setdefault(key, {})[ext] = data
                if len(pending[key]) == 2:
                    parts = pending.pop(key)
                    yield {
                        "__key__": key,
                        "__url__": path,
                        "safetensors": parts["safetensors"],
                        "json": parts["json"],
                    }


class ShardStream(IterableDataset):
    """Items streamed from tar shards, split per node (``rank``/``world_size``) and per worker.

    Args:
        shards: a folder of ``*.tar`` shards or a list of shard paths.
        rank, world_size: this process's place among all training processes (the DataModule sets
            them from the trainer in ``setup``); default single process.
        shuffle_buffer: > 0 shuffles shards and examples in a buffer of this many (``set_epoch`` reseeds).
        seed: shuffle seed.
        transform: optional callable applied to each decoded item (e.g. augmentation).
    """

    def __init__(
        self,
        shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 0,
        seed: int = 0,
        transform: Any = None,
    ) -> None:
        self.shards = list_shards(shards)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle_buffer, self.seed, self.epoch = int(shuffle_buffer), int(seed), 0
        self.transform = transform
        self._hf: Any = None  # the datasets.IterableDataset being iterated (its state is the position)
        self._resume: dict[str, Any] | None = None  # a loaded position, applied by the next iteration

    @property
    def num_shards(self) -> int:
        """Number of tar shards."""
        return len(self.shards)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (call before iterating, in every process)."""
        self.epoch = int(epoch)

    def hf_dataset(self) -> Any:
        """This reader's ``datasets.IterableDataset``: split over ``world_size`` × DataLoader workers.

        The split is done here, once, over the combined (rank, worker) index, and :meth:`__iter__` reads
        it with ``.iter()``, which does not split again by worker. (Iterating the dataset directly inside
        a DataLoader worker lets ``datasets`` 5.2 split it by worker itself, and then restoring a state
        into a shuffled dataset fails: ``IterableDataset._iter_pytorch`` loads the worker's state into the
        unsplit dataset first, whose per-shard lists are longer -> ``IndexError``.)
        """
        import datasets
        from datasets.distributed import split_dataset_by_node

        ds = datasets.IterableDataset.from_generator(_iter_shards, gen_kwargs={"paths": self.shards})
        if self.shuffle_buffer > 0:
            ds = ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        readers = self.world_size * workers
        if readers > 1:
            ds = split_dataset_by_node(ds, rank=self.rank * workers + worker_id, world_size=readers)
        if self.shuffle_buffer > 0:
            ds.set_epoch(self.epoch)  # after the split: split_dataset_by_node does not carry the epoch
        return ds

    def state_dict(self) -> dict[str, Any]:
        """Position of this process's (or DataLoader worker's) iteration: epoch and ``datasets``' state."""
        position = self._hf.state_dict() if self._hf is not None else self._resume
        return {"epoch": self.epoch, "position": position}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue at the position of :meth:`state_dict` on the next iteration."""
        self.epoch, self._resume, self._hf = int(state_dict["epoch"]), state_dict["position"], None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_hf": None}  # DataLoader workers get a copy: they build their own

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ds = self.hf_dataset()
        if self._resume is not None:
            ds.load_state_dict(self._resume)
            self._resume = None
        self._hf = ds
        for batch in ds.iter(batch_size=1):  # one example at a time, so the state is that of the last one
            example = {key: value[0] for key, value in batch.items()}
            item = decode_sample(example["safetensors"], example["json"])
            yield self.transform(item) if self.transform is not None else item
