"""EMA against a hand-computed average, atomic checkpoint writes, resumable data position."""

from __future__ import annotations

import os
from functools import partial

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data.distributed import DistributedSampler

from spatialgen.training import EMA, AtomicCheckpointIO, ResumableDataLoader, ema_state_dict_from_checkpoint
from tests.training.helpers import trainer
from tests.training.toy import ToyDataModule, ToyDataset, ToyModule

SGD = partial(torch.optim.SGD, lr=0.1, momentum=0.9)


class AfterStep(Callback):
    """Network trainable weights (numpy, float64) at fit start and after every batch."""

    def __init__(self) -> None:
        self.weights: list[dict[str, np.ndarray]] = []

    def _grab(self, pl_module):
        named = pl_module.network.named_parameters()
        self.weights.append({n: p.detach().double().numpy().copy() for n, p in named if p.requires_grad})

    def on_fit_start(self, trainer, pl_module):
        self._grab(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._grab(pl_module)


def test_ema_matches_hand_computed_and_round_trips(tmp_path):
    pl.seed_everything(0, workers=True)
    decay, warmup = 0.8, 3
    ema = EMA(decay=decay, warmup_steps=warmup, use_for_validation=True)
    record = AfterStep()
    model = ToyModule(optimizer=SGD)
    t = trainer(tmp_path, max_steps=8, callbacks=[record, ema], limit_val_batches=1, val_check_interval=3)
    t.fit(model, ToyDataModule())
    # reference, written from the formula
    ref = dict(record.weights[0])
    for n, weights in enumerate(record.weights[1:]):
        d = min(decay, (1 + n) / (warmup + n))
        ref = {k: d * ref[k] + (1 - d) * weights[k] for k in ref}
    assert ema.num_updates == 8
    assert ema.names == ["0.weight", "0.bias", "2.weight", "2.bias"]  # not the frozen `gain`
    for name, value in zip(ema.names, ema.ema):
        np.testing.assert_allclose(value.double().numpy(), ref[name], rtol=1e-6, atol=1e-7)
        assert not np.allclose(value.numpy(), record.weights[-1][name])  # it is an average, not a copy
    # after validation swaps, the network holds the raw weights again
    for name, p in model.network.named_parameters():
        if p.requires_grad:
            np.testing.assert_array_equal(p.detach().double().numpy(), record.weights[-1][name])
    # round trip through a checkpoint: raw weights in state_dict, EMA in the callback state
    t.save_checkpoint(tmp_path / "ema.ckpt")
    ckpt = torch.load(tmp_path / "ema.ckpt", weights_only=False)
    np.testing.assert_array_equal(
        ckpt["state_dict"]["network.0.weight"].double().numpy(), record.weights[-1]["0.weight"]
    )
    exported = ema_state_dict_from_checkpoint(ckpt)
    assert set(exported) == set(model.network.state_dict())
    torch.testing.assert_close(exported["2.bias"], ema.ema[3], rtol=0, atol=0)
    fresh = EMA(decay=decay, warmup_steps=warmup)
    fresh.load_state_dict(ckpt["callbacks"]["EMA"])
    fresh.on_fit_start(t, ToyModule())
    assert fresh.num_updates == 8
    for a, b in zip(fresh.ema, ema.ema):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


def test_ema_state_mismatch_is_a_clear_error(tmp_path):
    ema = EMA()
    ema.load_state_dict({"ema": {"nope": torch.zeros(1)}, "num_updates": 1})
    t = trainer(tmp_path, max_steps=1)
    with pytest.raises(ValueError, match="does not match the network"):
        ema.on_fit_start(t, ToyModule())


def _partial_then_fail(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("disk full")


@pytest.mark.parametrize("durable", [True, False])
def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch, durable):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO(durable=durable)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    io.save_checkpoint({"global_step": 1, "w": torch.arange(4.0)}, path)
    assert len(synced) == (2 if durable else 0)  # the file, then its folder (the rename)
    monkeypatch.setattr(torch, "save", _partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 1 and torch.equal(loaded["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left behind


def _position(state: dict) -> tuple[int, int]:
    return state["epoch"], state["batches"]


def test_resumable_loader_order_and_position():
    ds = ToyDataset(10)
    loader = ResumableDataLoader(ds, batch_size=3, shuffle=True, seed=5)
    epoch0 = [b["clip_id"] for b in loader]
    epoch1 = [b["clip_id"] for b in loader]
    # epoch e is the DistributedSampler permutation with seed + e, whatever the global RNG does
    for e, got in enumerate([epoch0, epoch1]):
        sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5)
        sampler.set_epoch(e)
        assert [i for batch in got for i in batch] == [f"clip{i:03d}" for i in sampler]
    assert epoch0 != epoch1
    # stop after 2 batches of epoch 2, restore into a fresh loader: it yields exactly the rest
    torch.manual_seed(123)
    it = iter(loader)
    seen = [next(it)["clip_id"], next(it)["clip_id"]]
    state = loader.state_dict()
    assert _position(state) == (2, 2)
    rest_expected = [b["clip_id"] for b in it]
    resumed = ResumableDataLoader(ds, batch_size=3, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    rest = [b["clip_id"] for b in resumed]
    assert rest == rest_expected and len(seen) + len(rest) == 4
    assert sorted(i for batch in seen + rest for i in batch) == sorted(f"clip{i:03d}" for i in range(10))
    assert _position(resumed.state_dict()) == (2, 4)
    # an end-of-epoch state resumes with the next epoch, in full, and a new order
    again = ResumableDataLoader(ds, batch_size=3, shuffle=True, seed=5)
    again.load_state_dict(resumed.state_dict())
    epoch3 = [b["clip_id"] for b in again]
    assert len(epoch3) == 4 and _position(again.state_dict()) == (3, 4)
    # Lightning stops after len(loader) batches without exhausting the iterator: still a new epoch
    it = iter(again)
    partial_epoch = [next(it)["clip_id"] for _ in range(4)]
    assert _position(again.state_dict()) == (4, 4) and partial_epoch != epoch3


def test_resumable_loader_under_lightning_ddp_sampler():
    # What the Trainer does under DDP (its private helpers, called directly: no process group needed):
    # rebuild the loader with a DistributedSampler, which lands in torchdata's batch sampler.
    from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DataLoader

    ds = ToyDataset(12)
    with _replace_dunder_methods(DataLoader, "dataset"):
        loader = ResumableDataLoader(ds, batch_size=2, shuffle=True, seed=5)

    def on_rank(rank: int) -> ResumableDataLoader:
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=5)
        return _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)

    seen = []
    for rank in range(2):
        ddp = on_rank(rank)
        _set_sampler_epoch(ddp, 1)
        epoch = [b["clip_id"] for b in ddp]
        order = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=5)
        order.set_epoch(1)
        indices = list(order)
        assert epoch == [[f"clip{i:03d}" for i in indices[j : j + 2]] for j in range(0, 6, 2)]
        seen += [clip for batch in epoch for clip in batch]
        it = iter(ddp)
        first = next(it)["clip_id"]
        state = ddp.state_dict()
        assert _position(state) == (1, 1)  # the epoch is the DistributedSampler's
        resumed = on_rank(rank)
        resumed.load_state_dict(state)
        assert resumed.epoch == 1
        assert [first] + [b["clip_id"] for b in resumed] == epoch
    assert sorted(seen) == [f"clip{i:03d}" for i in range(12)]


def test_resumable_loader_state_without_sampler_state(caplog):
    ds = ToyDataset(10)
    loader = ResumableDataLoader(ds, batch_size=3, shuffle=True, seed=5)
    loader.load_state_dict({"epoch": 1, "batches": 4})  # an epoch's end, in the pre-torchdata format
    assert _position(loader.state_dict()) == (2, 0) and not caplog.records
    loader = ResumableDataLoader(ds, batch_size=3, shuffle=True, seed=5)
    loader.load_state_dict({"epoch": 1, "batches": 2})  # mid-epoch: the position cannot be restored
    assert "restarts from its first batch" in caplog.text and _position(loader.state_dict()) == (1, 0)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5)
    sampler.set_epoch(1)
    assert [i for b in loader for i in b["clip_id"]] == [f"clip{i:03d}" for i in sampler]
