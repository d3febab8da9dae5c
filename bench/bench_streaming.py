"""Tar-shard read speed: ShardStream's own tar reader vs the ``datasets`` ``webdataset`` builder.

Both read the same synthetic shards through ``datasets`` (``IterableDataset.from_generator`` over our
tar reader, vs ``load_dataset("webdataset", streaming=True)``) and decode every clip with
``decode_sample``; one process, no DataLoader workers. Variants interleaved, medians of ``REPEATS``.

Run: ``.venv/bin/python bench/bench_streaming.py`` -> ``bench/results/streaming.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import torch
from common import write_results

from spatialgen.data.streaming import _iter_shards, decode_sample, write_shards

N_CLIPS, CLIPS_PER_SHARD, REPEATS = 96, 16, 5


def _ours(paths: list[str]) -> int:
    ds = datasets.IterableDataset.from_generator(_iter_shards, gen_kwargs={"paths": paths})
    return sum(1 for e in ds if decode_sample(e["safetensors"], e["json"]))


def _webdataset(paths: list[str]) -> int:
    ds = datasets.load_dataset("webdataset", data_files={"train": paths}, split="train", streaming=True)
    # the builder parses .json into an Arrow struct; decode_sample takes the bytes back
    return sum(1 for e in ds if decode_sample(e["safetensors"], json.dumps(e["json"]).encode()))


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    items = [
        {
            "clip_id": f"clip{i:03d}",
            "audio": torch.randn(4, 8 * 16000, generator=gen),  # 8 s FOA at 16 kHz
            "features": {"clip": torch.randn(64, 1024, generator=gen)},
            "labels": ["speech", str(i)],
        }
        for i in range(N_CLIPS)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(p) for p in write_shards(items, Path(tmp), CLIPS_PER_SHARD, progress=False)]
        size_mb = sum(Path(p).stat().st_size for p in paths) / 2**20
        variants = {"shardstream_tar_reader": _ours, "datasets_webdataset_builder": _webdataset}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(REPEATS):
            for name, read in variants.items():
                start = time.perf_counter()
                assert read(paths) == N_CLIPS
                times[name].append(time.perf_counter() - start)
    results = [
        {
            "name": k,
            "median_s": round(statistics.median(v), 3),
            "clips_per_s": round(N_CLIPS / statistics.median(v), 1),
            "mb_per_s": round(size_mb / statistics.median(v), 1),
        }
        for k, v in times.items()
    ]
    write_results(
        "streaming", results, n_clips=N_CLIPS, shards=len(paths), shard_mb=round(size_mb, 1), repeats=REPEATS
    )


if __name__ == "__main__":
    main()
