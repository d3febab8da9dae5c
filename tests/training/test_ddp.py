"""2-process DDP on CPU (gloo): same samples per epoch, same synced metrics and weights as 1 process."""

from __future__ import annotations

from collections import Counter
from functools import partial

import lightning.pytorch as pl
import pytest
import torch

from tests.training.helpers import trainer
from tests.training.toy import ToyDataModule, ToyModule, read_records


def _flat(lists) -> list:
    return [x for items in lists for x in items]


def _fit(tmp_path, devices: int, batch_size: int) -> tuple[ToyModule, pl.Trainer]:
    tmp_path.mkdir()
    pl.seed_everything(11, workers=True)
    model = ToyModule(optimizer=partial(torch.optim.SGD, lr=0.1), record_dir=str(tmp_path))
    options = {"strategy": "ddp_spawn", "devices": 2} if devices == 2 else {}
    t = trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0, **options)
    t.fit(model, ToyDataModule(n_train=24, n_val=8, batch_size=batch_size, seed=11))
    return model, t


@pytest.mark.slow  # spawns two interpreters: ~25 s on a loaded 2-core machine
def test_ddp_two_processes_match_single_process(tmp_path):
    single, t1 = _fit(tmp_path / "one", devices=1, batch_size=4)
    ddp, t2 = _fit(tmp_path / "two", devices=2, batch_size=2)  # same global batch of 4
    one = read_records(tmp_path / "one")
    ranks = [read_records(tmp_path / "two", r) for r in (0, 1)]
    for epoch in (0, 1):
        ids_one = _flat(r["ids"] for r in one if r["epoch"] == epoch)
        ids_ddp = _flat(r["ids"] for rank in ranks for r in rank if r["epoch"] == epoch)
        assert Counter(ids_ddp) == Counter(ids_one)  # no sample twice, none dropped
        assert len(ids_one) == 24 and len(set(ids_one)) == 24
        assert not set(_flat(r["ids"] for r in ranks[0] if r["epoch"] == epoch)) & set(
            _flat(r["ids"] for r in ranks[1] if r["epoch"] == epoch)
        )
    # each global step sees the same 4 samples, so the averaged gradients and weights agree
    for step in range(len(one)):
        assert sorted(ranks[0][step]["ids"] + ranks[1][step]["ids"]) == sorted(one[step]["ids"])
    # (ddp_spawn hands rank 0's weights and metrics back to this process, not its step counter)
    assert t1.global_step == 12 and ranks[0][-1]["step"] == ranks[1][-1]["step"] == 12
    for a, b in zip(single.network.parameters(), ddp.network.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # validation loss synced across ranks equals the single-process one
    torch.testing.assert_close(
        t2.callback_metrics["val/loss"], t1.callback_metrics["val/loss"], rtol=1e-5, atol=1e-6
    )
