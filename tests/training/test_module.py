"""SpatialAudioModule base: frozen parts, optimizer injection, non-finite guard, seeding, compile."""

from __future__ import annotations

import logging
from functools import partial
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from spatialgen.training import NonFiniteGuard, NonFiniteTrainingError
from tests.training.helpers import trainer
from tests.training.toy import ToyDataModule, ToyModule, read_records


class Snapshots(Callback):
    """Network parameters and optimizer state around every training batch."""

    def __init__(self) -> None:
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []
        self.momentum_before: list[torch.Tensor | None] = []
        self.momentum_after: list[torch.Tensor | None] = []

    @staticmethod
    def _flat(pl_module: pl.LightningModule) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in pl_module.network.parameters()]).clone()

    @staticmethod
    def _momentum(trainer: pl.Trainer) -> torch.Tensor | None:
        state = trainer.optimizers[0].state
        bufs = [s["momentum_buffer"].reshape(-1) for s in state.values() if "momentum_buffer" in s]
        return torch.cat(bufs).clone() if bufs else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before.append(self._flat(pl_module))
        self.momentum_before.append(self._momentum(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after.append(self._flat(pl_module))
        self.momentum_after.append(self._momentum(trainer))


SGD = partial(torch.optim.SGD, lr=0.1, momentum=0.9)


def test_frozen_parts_out_of_optimizer_grads_and_checkpoint(tmp_path):
    pl.seed_everything(0, workers=True)
    model = ToyModule(optimizer=SGD)
    t = trainer(tmp_path, max_steps=2)
    t.fit(model, ToyDataModule())
    opt_params = {id(p) for g in t.optimizers[0].param_groups for p in g["params"]}
    frozen = list(model.frozen.parameters())
    assert frozen and not opt_params & {id(p) for p in frozen}
    assert id(model.network.gain) not in opt_params
    assert opt_params == {id(p) for p in model.network.parameters() if p.requires_grad}
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    model.train()
    assert model.network.training and not model.frozen["encoder"].training
    # frozen weights are left out of the checkpoint and taken as they are on load (strict)
    t.save_checkpoint(tmp_path / "a.ckpt")
    ckpt = torch.load(tmp_path / "a.ckpt", weights_only=False)
    assert not [k for k in ckpt["state_dict"] if k.startswith("frozen.")]
    assert "network.0.weight" in ckpt["state_dict"]
    other = ToyModule()
    other.load_state_dict(ckpt["state_dict"])
    torch.testing.assert_close(other.network[0].weight, model.network[0].weight, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match=r"network\.2\.bias"):
        other.load_state_dict({k: v for k, v in ckpt["state_dict"].items() if k != "network.2.bias"})


def test_param_groups_with_frozen_parameters_are_refused():
    model = ToyModule()
    model.param_groups = lambda: [{"params": list(model.frozen.parameters())}]
    with pytest.raises(ValueError, match="frozen parameters"):
        model.configure_optimizers()


def test_optimizer_and_scheduler_injection():
    model = ToyModule(
        optimizer=partial(torch.optim.SGD, lr=0.5),
        lr_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=3),
        lr_interval="epoch",
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD) and config["optimizer"].defaults["lr"] == 0.5
    assert config["optimizer"].defaults["weight_decay"] == 0  # no AdamW default leaking in
    assert config["lr_scheduler"]["interval"] == "epoch"
    default = ToyModule().configure_optimizers()
    assert isinstance(default, torch.optim.AdamW) and default.defaults["lr"] == 1e-4
    with pytest.raises(ValueError, match="lr_interval"):
        ToyModule(lr_interval="batch")


@pytest.mark.parametrize("accumulate", [1, 2])
def test_nan_batch_is_skipped_and_reported(tmp_path, caplog, accumulate):
    pl.seed_everything(0, workers=True)
    model = ToyModule(optimizer=SGD)
    snaps = Snapshots()
    # one epoch: 6 batches of 4, so clip 5 is seen once
    t = trainer(tmp_path, max_steps=6 // accumulate, callbacks=[snaps], accumulate_grad_batches=accumulate)
    with caplog.at_level(logging.WARNING, logger="spatialgen.training.guards"):
        t.fit(model, ToyDataModule(nan_ids=(5,)))
    assert model.guard.bad_steps == 1
    assert t.global_step == 6 // accumulate  # a skipped step still counts as a step
    assert float(t.callback_metrics["train/bad_steps"]) == 1.0
    assert "clip005" in caplog.text and "non-finite loss" in caplog.text
    # the ids of the whole micro-batch whose loss was NaN (a batch-mean loss cannot tell which sample)
    assert "clip005" in model.guard.last_bad_ids and len(model.guard.last_bad_ids) == 4
    # exactly the optimizer steps in which clip 5 took part left parameters and momentum untouched
    unchanged = [i for i, (b, a) in enumerate(zip(snaps.before, snaps.after)) if torch.equal(b, a)]
    steps_at_batch_end = [i for i in range(len(snaps.after)) if (i + 1) % accumulate == 0]
    assert len([i for i in unchanged if i in steps_at_batch_end]) == 1
    i = next(i for i in unchanged if i in steps_at_batch_end)
    assert snaps.momentum_after[i] is None or torch.equal(snaps.momentum_before[i], snaps.momentum_after[i])
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_too_many_bad_steps_stop_with_clear_error(tmp_path):
    pl.seed_everything(0, workers=True)
    model = ToyModule(optimizer=SGD, max_bad_steps=1)
    t = trainer(tmp_path, max_steps=20)
    with pytest.raises(NonFiniteTrainingError) as err:
        t.fit(model, ToyDataModule(nan_ids=tuple(range(0, 24, 2))))
    message = str(err.value)
    assert "\n" not in message and "max_bad_steps=1" in message and "clip0" in message
    assert model.guard.bad_steps == 2


def _fake_trainer(scaler=None):
    return SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler), world_size=1, global_rank=0)


def test_guard_nonfinite_gradient_and_grad_scaler():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=1.0)
    guard = NonFiniteGuard(max_bad_steps=5)
    guard.observe(torch.tensor(1.0), {"clip_id": ["a", "b"]})
    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    assert guard.check_step(opt, _fake_trainer(), step=0) is False
    assert p.grad is None and guard.bad_steps == 1 and guard.last_bad_ids == ["a", "b"]
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))
    # under fp16 the GradScaler owns inf gradients: not counted
    guard.observe(torch.tensor(1.0), {})
    p.grad = torch.tensor([float("inf"), 0.0, 0.0])
    assert guard.check_step(opt, _fake_trainer(scaler=object()), step=1) is True
    assert guard.bad_steps == 1
    # ... but a non-finite loss is
    guard.observe(torch.tensor(float("nan")), {"clip_id": torch.tensor([7])})
    assert guard.check_step(opt, _fake_trainer(scaler=object()), step=2) is False
    assert guard.bad_steps == 2 and guard.last_bad_ids == ["7"]
    # finite loss and gradient: step runs, gradient kept
    guard.observe(torch.tensor(0.5), {})
    p.grad = torch.ones(3)
    assert guard.check_step(opt, _fake_trainer(), step=3) is True and p.grad is not None
    with pytest.raises(ValueError, match="max_bad_steps"):
        NonFiniteGuard(max_bad_steps=-1)


def _first_losses(tmp_path, seed: int, n: int = 5) -> list[float]:
    tmp_path.mkdir()
    pl.seed_everything(seed, workers=True)
    model = ToyModule(optimizer=SGD, record_dir=str(tmp_path))
    trainer(tmp_path, max_steps=n).fit(model, ToyDataModule(seed=seed))
    return [r["loss"] for r in read_records(tmp_path)]


def test_same_seed_same_losses(tmp_path):
    a = _first_losses(tmp_path / "a", seed=3)
    b = _first_losses(tmp_path / "b", seed=3)
    c = _first_losses(tmp_path / "c", seed=4)
    assert len(a) == 5 and a == b
    assert a != c


def test_compile_option_compiles_network_in_place():
    model = ToyModule(compile=True)
    names = [n for n, _ in model.network.named_parameters()]
    model.setup("fit")
    assert model.network._compiled_call_impl is not None
    assert [n for n, _ in model.network.named_parameters()] == names
    assert ToyModule().network._compiled_call_impl is None
