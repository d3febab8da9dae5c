"""Few-step ViSAudio (reflow distillation) and the bf16 / compile sampling options, at tiny size on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spatialgen.cli import main
from spatialgen.errors import SpatialgenError
from spatialgen.models.visaudio.fast_sampling import fast_generate
from spatialgen.models.visaudio.flow import generate
from spatialgen.training.visaudio_fewstep import ViSAudioFewStepModule, load_teacher, reflow_times

from .test_visaudio_module import batch, module, randomize_output_, visaudio_synthetic_root  # noqa: F401

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
N_LAT = 32  # latent frames of the toy problems (conditions are interpolated to any length); keeps tests fast


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> str:
    """A toy teacher export: the tiny test network with perturbed zero-init layers and normaliser."""
    torch.manual_seed(0)
    m = randomize_output_(module(cfg_scale=2.0, diff_weight=0.5))
    with torch.no_grad():
        m.network.normalizer.mean.normal_(0, 0.1)
        m.network.normalizer.std.uniform_(0.5, 1.5)
    out = tmp_path_factory.mktemp("teacher") / "visaudio"
    m.export_pipeline().save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def feats(batch):  # noqa: F811
    return module(cfg_scale=2.0).batch_features(batch)


def student(teacher_dir: str, **kw) -> ViSAudioFewStepModule:
    return ViSAudioFewStepModule(teacher=teacher_dir, **{"teacher_steps": 4, **kw})


def test_student_starts_as_the_teacher_and_samples_without_cfg(teacher_dir):
    s = student(teacher_dir, student_steps=2)
    teacher = load_teacher(teacher_dir)
    ref = teacher.network.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in s.network.state_dict().items())
    assert s.pipeline.sampling == {"cfg_scale": 1.0, "steps": 2, "method": "euler"}
    assert s.teacher_cfg_scale == 2.0  # the teacher's stored guidance
    assert not any(p.requires_grad for p in s.teacher.parameters())
    assert {id(p) for p in s.trainable_parameters()}.isdisjoint({id(p) for p in s.teacher.parameters()})


@pytest.mark.parametrize("k", [1, 2, 4])
def test_grid_times_are_the_student_steps(k):
    t = reflow_times(400, "grid", k, generator=torch.Generator().manual_seed(0))
    assert set((t * k).round().long().tolist()) == set(range(k))
    assert torch.allclose(t * k, (t * k).round())
    u = reflow_times(400, "uniform", k, generator=torch.Generator().manual_seed(0))
    assert float(u.min()) >= 0 and float(u.max()) < 1 and len(set(u.tolist())) == 400


@pytest.mark.parametrize("k", [1, 3])
def test_distill_loss_equals_an_independent_recomputation(teacher_dir, feats, k):
    s = student(teacher_dir, student_steps=k, teacher_steps=3)
    with torch.no_grad():  # make the student differ from the teacher
        for p in s.network.parameters():
            p.add_(0.01 * torch.randn_like(p))
    n_lat = N_LAT
    loss, logs = s.distill_loss(feats, n_lat, generator=torch.Generator().manual_seed(7))

    # independent: the same draws (noise, then the grid index), the guided teacher's Euler ODE written out
    g = torch.Generator().manual_seed(7)
    b, d = feats["clip"].shape[0], s.network.config.latent_dim
    x0 = torch.randn((b, 2, d, n_lat), generator=g)
    t = torch.randint(0, k, (b,), generator=g).double().div(k).float()
    tn = s.teacher
    role = lambda net, drop=None: net.prepare_conditions(  # noqa: E731
        feats["clip"], feats["sync"], feats["pe"], latent_len=n_lat, drop=drop
    )
    c, u = role(tn), role(tn, torch.ones(b, dtype=torch.bool))
    x, w = x0.clone(), 2.0
    with torch.no_grad():
        for i in range(3):
            ti = torch.full((b,), i / 3)
            x = x + (w * tn(x, ti, c) + (1 - w) * tn(x, ti, u)) / 3
    tb = t.view(-1, 1, 1, 1)
    v = s.network((1 - tb) * x0 + tb * x, t, role(s.network))
    target = x - x0
    per_ear = (v - target).pow(2).mean(dim=(0, 2, 3))
    diff = ((v[:, 0] - v[:, 1]) - (target[:, 0] - target[:, 1])).pow(2).mean()
    assert s.diff_weight == 0.0  # an export folder stores no diff_weight
    expect = per_ear.sum() + s.diff_weight * diff
    torch.testing.assert_close(loss, expect, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack([logs["loss_left"], logs["loss_right"]]), per_ear.detach())
    s2 = student(teacher_dir, student_steps=k, teacher_steps=3, diff_weight=2.0)
    s2.network.load_state_dict(s.network.state_dict())
    loss2, _ = s2.distill_loss(feats, n_lat, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loss2, per_ear.sum() + 2.0 * diff, rtol=1e-5, atol=1e-6)


def _sample_error(s: ViSAudioFewStepModule, feats, k: int, seeds: range) -> float:
    """Mean squared distance of the student's k-step samples to the guided teacher's from the same noise."""
    n_lat = N_LAT
    errs = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn((feats["clip"].shape[0], 2, s.network.config.latent_dim, n_lat), generator=g)
        target = s.teacher_targets(feats, x0)
        cond = s.pipeline.conditions(feats, n_lat)
        got = generate(s.network, cond, cfg_scale=1.0, steps=k, noise=x0, denormalize=False)
        errs.append(float((got - target).pow(2).mean()))
    return sum(errs) / len(errs)


@pytest.mark.parametrize("k", [1, 2])
def test_a_few_training_steps_bring_the_student_closer_to_the_teacher(teacher_dir, feats, k):
    torch.manual_seed(0)
    s = student(teacher_dir, student_steps=k, teacher_steps=4)
    before = _sample_error(s, feats, k, range(100, 103))
    opt = torch.optim.Adam(s.trainable_parameters(), lr=1e-4)
    for step in range(30):
        loss, _ = s.distill_loss(feats, N_LAT, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _sample_error(s, feats, k, range(100, 103))  # held-out noise
    assert after < 0.95 * before, (before, after)


def test_option_errors_name_the_argument(teacher_dir, tmp_path):
    with pytest.raises(ValueError, match="student_steps"):
        student(teacher_dir, student_steps=0)
    with pytest.raises(ValueError, match="time_sampling"):
        student(teacher_dir, time_sampling="cosine")
    with pytest.raises(ValueError, match="teacher_method"):
        student(teacher_dir, teacher_method="rk4")
    with pytest.raises(ValueError, match="diff_weight"):
        student(teacher_dir, diff_weight=-1.0)
    with pytest.raises(SpatialgenError, match="no such checkpoint file or export folder"):
        load_teacher(tmp_path / "missing.ckpt")


def test_recipe_fast_dev_run_and_checkpoint_teacher(teacher_dir, visaudio_synthetic_root, tmp_path):  # noqa: F811
    """The recipe with a teacher export; its checkpoint reloads, and serves as a teacher checkpoint."""
    common = [f"--data.init_args.root={visaudio_synthetic_root}", "--data.init_args.clip_seconds=1.0",
              "--data.init_args.sample_rate=8000", "--data.init_args.batch_size=2",
              "--model.init_args.teacher_steps=2", "--model.init_args.sample_every_n_epochs=1",
              "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    args = ["fit", "--config", str(RECIPES / "visaudio_fewstep_synthetic.yaml"), f"--model.init_args.teacher={teacher_dir}",
            "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
            f"--trainer.callbacks=[{{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {{dirpath: {tmp_path}/ck, save_last: true}}}}]",
            *common]  # fmt: skip
    assert main(args) == 0
    ckpt = tmp_path / "ck" / "last.ckpt"
    # a student checkpoint rebuilds from its teacher path and loads (sampling: the recipe's student_steps)
    s = ViSAudioFewStepModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    assert s.pipeline.sampling == {"cfg_scale": 1.0, "steps": 4, "method": "euler"}
    # a checkpoint as teacher (here the student's own: a second reflow round), with its trained weights
    again = load_teacher(ckpt)
    assert again.sampling["steps"] == 4
    ref = s.network.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in again.network.state_dict().items())
    fast = ["fit", "--config", str(RECIPES / "visaudio_fewstep_synthetic.yaml"), "--config",
            str(RECIPES / "debug" / "fast_dev_run.yaml"), f"--model.init_args.teacher={teacher_dir}", "--trainer.callbacks=[]",
            *common]  # fmt: skip
    assert main(fast) == 0


# ------------------------------------------------------------------ bf16 autocast / torch.compile sampling
def _prepared(teacher_dir: str, feats):
    pipe = load_teacher(teacher_dir)
    n_lat = 2 * N_LAT
    cond = pipe.conditions(feats, n_lat)
    uncond = pipe.conditions(feats, n_lat, drop=torch.ones(cond.batch_size, dtype=torch.bool))
    return pipe.network, cond, uncond


def test_fast_generate_defaults_equal_flow_generate(teacher_dir, feats):
    net, cond, uncond = _prepared(teacher_dir, feats)
    ref = generate(net, cond, uncond=uncond, cfg_scale=2.0, steps=5, seed=3)
    got = fast_generate(net, cond, uncond=uncond, cfg_scale=2.0, steps=5, seed=3)
    assert torch.equal(got, ref)


def test_bf16_autocast_agrees_with_float32(teacher_dir, feats):
    """bf16 (8-bit mantissa) in the network only, float32 ODE state: within 3 % relative L2 after 10 steps."""
    net, cond, uncond = _prepared(teacher_dir, feats)
    ref = fast_generate(net, cond, uncond=uncond, cfg_scale=2.0, steps=10, seed=3, denormalize=False)
    got = fast_generate(
        net, cond, uncond=uncond, cfg_scale=2.0, steps=10, seed=3, denormalize=False, autocast=torch.bfloat16
    )
    assert got.dtype == torch.float32
    rel = float((got - ref).norm() / ref.norm())
    assert 0 < rel < 0.03, rel  # > 0: bf16 really ran


def test_sampling_option_errors(teacher_dir, feats):
    net, cond, _ = _prepared(teacher_dir, feats)
    with pytest.raises(ValueError, match="float16 needs a GPU"):
        fast_generate(net, cond, cfg_scale=1.0, steps=1, autocast=torch.float16)
    with pytest.raises(ValueError, match="autocast must be"):
        fast_generate(net, cond, cfg_scale=1.0, steps=1, autocast=torch.float64)
    with pytest.raises(ValueError, match="noise must have shape"):
        fast_generate(net, cond, cfg_scale=1.0, steps=1, noise=torch.zeros(1, 2, 3, 4))


@pytest.mark.slow
def test_compiled_sampling_agrees_with_eager(teacher_dir, feats):
    """torch.compile (inductor, CPU): float32 reassociation only, 1e-4 relative L2 after 10 steps."""
    net, cond, uncond = _prepared(teacher_dir, feats)
    ref = fast_generate(net, cond, uncond=uncond, cfg_scale=2.0, steps=10, seed=3, denormalize=False)
    got = fast_generate(
        net, cond, uncond=uncond, cfg_scale=2.0, steps=10, seed=3, denormalize=False, compile=True
    )
    assert float((got - ref).norm() / ref.norm()) < 1e-4
