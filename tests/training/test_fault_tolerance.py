"""Kill -9 and resume, SIGTERM pre-emption: subprocesses running `python -m spatialgen fit` on the toy recipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.toy import read_records

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 16  # 2.7 epochs of 6 batches; checkpoints every 4 steps fall mid-epoch


def _config(run: Path, max_steps: int, step_sleep: float) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    config = {
        "seed_everything": 7,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": max_steps,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(run),
            "limit_val_batches": 1,
            "plugins": [{"class_path": "spatialgen.training.AtomicCheckpointIO"}],
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(run / "ckpt"), "every_n_train_steps": 4, "save_last": True},
                },
                {"class_path": "spatialgen.training.EMA", "init_args": {"decay": 0.9}},
                {"class_path": "spatialgen.training.PreemptionCheckpoint"},
            ],
        },
        "model": {
            "class_path": "tests.training.toy.ToyModule",
            "init_args": {
                "record_dir": str(run),
                "step_sleep": step_sleep,
                "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1, "momentum": 0.9}},
                "lr_scheduler": {
                    "class_path": "torch.optim.lr_scheduler.StepLR",
                    "init_args": {"step_size": 5},
                },
            },
        },
        "data": {"class_path": "tests.training.toy.ToyDataModule", "init_args": {"seed": 7}},
    }
    path = run / "recipe.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _start(config: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "spatialgen", "fit", "--config", str(config), *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = run / "rank0.jsonl"
        if path.exists() and any(r["step"] >= step for r in read_records(run)):
            return
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"run did not reach step {step} in {timeout} s")


def _finish(proc: subprocess.Popen, timeout: float = 90.0) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.slow  # three subprocess runs: ~60 s on a loaded 2-core machine
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    reference = _start(_config(tmp_path / "ref", MAX_STEPS, 0.0))
    killed_run = tmp_path / "killed"
    killed = _start(_config(killed_run, MAX_STEPS, 0.15))
    _wait_for_step(killed, killed_run, 10)  # last periodic checkpoint: step 8, mid-epoch 1
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    rc, out = _finish(reference)
    assert rc == 0, out[-3000:]
    last = killed_run / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 8
    killed_records = read_records(killed_run)
    (killed_run / "rank0.jsonl").rename(killed_run / "before_kill.jsonl")
    rc, out = _finish(_start(_config(killed_run, MAX_STEPS, 0.0), "--ckpt_path", str(last)))
    assert rc == 0, out[-3000:]

    ref = read_records(tmp_path / "ref")
    resumed = read_records(killed_run)
    assert [r["step"] for r in ref] == list(range(1, MAX_STEPS + 1))
    assert [r["step"] for r in resumed] == list(range(9, MAX_STEPS + 1))
    # same data (mid-epoch position restored) and same losses, bit for bit on CPU
    assert [(r["ids"], r["loss"]) for r in resumed] == [(r["ids"], r["loss"]) for r in ref[8:]]
    assert [(r["ids"], r["loss"]) for r in killed_records] == [
        (r["ids"], r["loss"]) for r in ref[: len(killed_records)]
    ]
    a = torch.load(tmp_path / "ref" / "ckpt" / "last.ckpt", weights_only=False)
    b = torch.load(last, weights_only=False)
    assert a["global_step"] == b["global_step"] == MAX_STEPS and a["epoch"] == b["epoch"]
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=0, atol=0)
    for key, value in a["callbacks"]["EMA"]["ema"].items():
        torch.testing.assert_close(value, b["callbacks"]["EMA"]["ema"][key], rtol=0, atol=0)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for i in opt_a:
        torch.testing.assert_close(opt_a[i]["momentum_buffer"], opt_b[i]["momentum_buffer"], rtol=0, atol=0)


def test_sigterm_saves_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "term"
    proc = _start(_config(run, 1000, 0.15))
    _wait_for_step(proc, run, 2)
    proc.send_signal(signal.SIGTERM)
    rc, out = _finish(proc)
    assert rc == 0, out[-3000:]
    steps = [r["step"] for r in read_records(run)]
    ckpt = torch.load(run / "ckpt" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == steps[-1] >= 2  # saved at the step boundary where it stopped
    assert "pre-emption: saved" in out
    assert not list((run / "ckpt").glob(".*tmp"))


def test_preemption_callback_keeps_lightning_checkpoint_defaults(tmp_path):
    # PreemptionCheckpoint is deliberately not a lightning Checkpoint (see its module docstring)
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    from spatialgen.training import PreemptionCheckpoint

    kwargs = {"logger": False, "enable_progress_bar": False, "default_root_dir": str(tmp_path)}
    t = Trainer(callbacks=[PreemptionCheckpoint()], **kwargs)
    assert isinstance(t.checkpoint_callback, ModelCheckpoint)  # Lightning still adds its default one
    t = Trainer(callbacks=[PreemptionCheckpoint(), ModelCheckpoint(dirpath=tmp_path / "c")], **kwargs)
    assert t.checkpoint_callback.dirpath == str(tmp_path / "c")
    assert PreemptionCheckpoint().checkpoint_path(t) == tmp_path / "c" / "last.ckpt"
    t = Trainer(callbacks=[PreemptionCheckpoint()], enable_checkpointing=False, **kwargs)
    assert t.checkpoint_callback is None
    assert PreemptionCheckpoint().checkpoint_path(t) == tmp_path / "checkpoints" / "last.ckpt"
