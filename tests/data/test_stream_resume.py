"""Resumable shard streams: ShardStream + ResumableDataLoader (torchdata StatefulDataLoader) mid-epoch resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spatialgen.data.resumable import ResumableDataLoader
from spatialgen.data.streaming import ShardStream, write_shards

N_CLIPS = 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream") / "shards"
    items = [{"clip_id": f"clip{i:02d}", "audio": torch.full((1, 4), float(i))} for i in range(N_CLIPS)]
    write_shards(items, root, clips_per_shard=4, progress=False)
    return root


def _loader(shards: Path, workers: int, buffer: int = 0) -> ResumableDataLoader:
    stream = ShardStream(shards, shuffle_buffer=buffer, seed=3)
    return ResumableDataLoader(stream, batch_size=2, num_workers=workers)


def _ids(batches) -> list[list[str]]:
    return [list(b["clip_id"]) for b in batches]


def _flat(batches: list[list[str]]) -> list[str]:
    return [clip for batch in batches for clip in batch]


def _take(loader: ResumableDataLoader, n: int) -> list[list[str]]:
    it = iter(loader)
    return [list(next(it)["clip_id"]) for _ in range(n)]


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resume_mid_epoch_gives_the_same_next_batches(shards: Path, workers: int) -> None:
    reference = _loader(shards, workers)
    epoch0, epoch1 = _ids(reference), _ids(reference)
    assert len(epoch0) == N_CLIPS // 2 and sorted(_flat(epoch0)) == [f"clip{i:02d}" for i in range(N_CLIPS)]

    first = _loader(shards, workers)
    assert _take(first, 3) == epoch0[:3]
    state = first.state_dict()
    assert (state["epoch"], state["batches"]) == (0, 3)

    # resume, read two more, save again, resume again: the position keeps advancing across resumes
    second = _loader(shards, workers)
    second.load_state_dict(state)
    assert _take(second, 2) == epoch0[3:5]
    third = _loader(shards, workers)
    third.load_state_dict(second.state_dict())
    assert _ids(third) == epoch0[5:]
    assert _ids(third) == epoch1  # and the next epoch is whole


def test_stream_reshuffles_each_epoch_and_resumes_without_repeats(shards: Path) -> None:
    reference = _loader(shards, 2, buffer=4)
    epoch0, epoch1 = _ids(reference), _ids(reference)
    everything = [f"clip{i:02d}" for i in range(N_CLIPS)]
    assert sorted(_flat(epoch0)) == sorted(_flat(epoch1)) == everything and epoch0 != epoch1

    first = _loader(shards, 2, buffer=4)
    seen = _take(first, 3)
    assert seen == epoch0[:3]
    resumed = _loader(shards, 2, buffer=4)
    resumed.load_state_dict(first.state_dict())
    rest = _flat(_ids(resumed))
    # datasets does not save the shuffle buffer: the clips that were in it are skipped, none repeats
    assert not set(rest) & set(_flat(seen)) and len(set(rest)) == len(rest) and set(rest) < set(everything)
    assert _ids(resumed) == epoch1


def test_stream_state_at_the_end_of_an_epoch_resumes_with_the_next(shards: Path) -> None:
    reference = _loader(shards, 0)
    epoch0, epoch1 = _ids(reference), _ids(reference)
    state = reference.state_dict()  # after epoch 1 ran out
    assert (state["epoch"], state["batches"]) == (1, len(epoch1))
    resumed = _loader(shards, 0)
    resumed.load_state_dict(state)
    assert resumed.state_dict()["epoch"] == 2 and _ids(resumed) == epoch0  # unshuffled: same order
