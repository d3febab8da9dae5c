"""``ViSAudioFewStepModule``: distil a trained ViSAudio teacher into a 1–4-step student (rectified-flow reflow).

**Method: reflow distillation** (Liu, Gong & Liu, "Flow Straight and Fast", arXiv 2209.03003, §2.3 and
the k-step distillation of §2.3/Alg. 1; as used for one-step text-to-image by InstaFlow, arXiv 2309.06380).
For each training clip a fresh noise ``x0`` is pushed through the *teacher's* guided ODE (``teacher_steps``
Euler steps at the teacher's CFG scale) to its endpoint ``x1 = T(x0 | video)``. The student, a copy of the
teacher initialised from its weights, is trained with the ordinary flow-matching loss on the straight
line between the *coupled* pair: ``x_t = (1 - t) x0 + t x1``, target ``x1 - x0``. A student that fits
the target follows straight paths, so ``k`` Euler steps from ``x0`` land on ``x1`` for any ``k``; with
``time_sampling="grid"`` the loss is taken only at the times ``{0, 1/k, ..., (k-1)/k}`` the ``k``-step
sampler visits (for ``k = 1``: ``t = 0``, Liu et al.'s one-step distillation).

Why reflow rather than the alternatives:

- it needs **no architecture change**: the student is the teacher's network (same checkpoint format,
  export, pipeline and conditioning path, initialised from the teacher), whereas MeanFlow (arXiv
  2505.13447; video-to-audio: arXiv 2509.06389) and shortcut models (arXiv 2410.12557) add a second time
  input (the step size or end time) to the timestep embedding, and MeanFlow's target needs a
  Jacobian-vector product through the whole network;
- the teacher's **classifier-free guidance is baked into the targets**: ``x1`` comes from the guided
  teacher, so the student samples with ``cfg_scale = 1`` (one network evaluation per step instead of two),
  and the conditioning (CLIP / sync / PE roles, null features) is the teacher's, unchanged;
- the loss is the teacher's own (:func:`~spatialgen.models.visaudio.flow.flow_matching_loss`, per-ear MSE
  + the inter-ear difference term), so the side of the sound, which lives in ``L − R``, keeps the weight
  the teacher was trained with (``diff_weight``).

Cost: every training step runs the teacher's ODE on the batch (``teacher_steps`` x 2 evaluations with
CFG, no gradient); fine at the small sizes trained on CPU, and the pairs need no data beyond the videos
(the audio of a batch is not used by the distillation loss; validation still scores against it).

**Teacher**: a ViSAudio Lightning checkpoint (EMA weights when it holds them, as ``spatialgen export``) or
an export folder / Hub repo (``ViSAudioPipeline.from_pretrained``). It is rebuilt from that path whenever
the module is built (also when a student checkpoint is loaded), held frozen and left out of checkpoints.
The student's pipeline samples with ``student_steps`` Euler steps and ``cfg_scale = 1`` by default, so its
export (``spatialgen export``) generates as distilled. Validation (sampling metrics, data flow-matching
loss, ``val/visual_gain``) is :class:`~spatialgen.training.visaudio.ViSAudioModule`'s, plus
``val/distill_loss`` (the reflow loss at a fixed seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from spatialgen.errors import SpatialgenError
from spatialgen.models.pipeline import build_pipeline
from spatialgen.models.visaudio.conditioning import Conditions
from spatialgen.models.visaudio.flow import flow_matching_loss, generate, logit_normal_t
from spatialgen.models.visaudio.network import ViSAudioNet
from spatialgen.models.visaudio.pipeline import ROLES, ViSAudioPipeline
from spatialgen.training.base import SpatialAudioModule
from spatialgen.training.visaudio import ViSAudioModule

__all__ = ["TimeSampling", "ViSAudioFewStepModule", "load_teacher", "network_conditions", "reflow_times"]

TimeSampling = Literal["grid", "uniform", "logit_normal"]


def load_teacher(path: str | Path, *, use_ema: bool = True) -> ViSAudioPipeline:
    """The teacher pipeline of a ViSAudio Lightning checkpoint (``.ckpt`` file) or export folder / Hub repo."""
    from spatialgen.hub.export import pipeline_from_checkpoint

    p = Path(path)
    if p.is_file():
        model = pipeline_from_checkpoint(p, use_ema=use_ema)
        pipe = model.pipeline
        pipe.load_export_state_dict(model.state)
    elif p.is_dir() or _looks_like_hub_repo(str(path)):
        pipe = ViSAudioPipeline.from_pretrained(str(path))
    else:
        raise SpatialgenError(
            f"teacher {path}: no such checkpoint file or export folder; give a ViSAudio .ckpt or an export folder"
        )
    if not isinstance(pipe, ViSAudioPipeline):
        raise SpatialgenError(
            f"teacher {path} holds a {type(pipe).__name__}; the few-step student needs ViSAudio"
        )
    return pipe.eval()


def _looks_like_hub_repo(name: str) -> bool:
    """``owner/name`` (one slash, no local-path prefix, not an existing path): a Hugging Face Hub repo id."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def network_conditions(
    net: ViSAudioNet, features: Mapping[str, Tensor], latent_len: int, drop: Tensor | None = None
) -> Conditions:
    """Conditions from role ``features`` through ``net``'s own conditioning layers (teacher or student)."""
    dtype = next(net.parameters()).dtype
    clip, sync, pe = (features[r].to(dtype) for r in ROLES)
    return net.prepare_conditions(clip, sync, pe, latent_len=latent_len, drop=drop)


def reflow_times(
    batch: int,
    sampling: TimeSampling,
    student_steps: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Training times ``[batch]``: the ``k``-step Euler grid ``i / k``, ``U[0, 1)`` or logit-normal."""
    if sampling == "grid":
        i = torch.randint(0, student_steps, (batch,), generator=generator)
        return (i.to(torch.float64) / student_steps).to(device=device, dtype=dtype)
    if sampling == "uniform":
        return torch.rand(batch, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return logit_normal_t(batch, generator=generator, device=device, dtype=dtype)


class ViSAudioFewStepModule(ViSAudioModule):
    """Reflow distillation of a ViSAudio teacher into a few-step student (see the module docstring).

    Args:
        teacher: ViSAudio Lightning checkpoint (``.ckpt``) or export folder / Hub repo of the teacher.
        teacher_ema: take the checkpoint's EMA weights when it has them.
        student_steps: Euler steps the student samples with (1–4 sensible); the ``grid`` training times.
        teacher_steps, teacher_cfg_scale, teacher_method: the teacher ODE making the targets (defaults:
            25 Euler steps, the teacher's stored ``cfg_scale``).
        time_sampling: ``grid`` (the student's step times), ``uniform`` or ``logit_normal``.
        diff_weight: weight of the inter-ear difference term (None: the teacher checkpoint's, else 0).
        ear_weights: per-ear loss weights.
        sample_every_n_epochs, sample_batches, sample_seed, predict_with_ema: as in ViSAudioModule (sampling
            uses the student's ``student_steps`` Euler steps without CFG).
        optimizer, lr_scheduler, lr_interval, compile, max_bad_steps: see :class:`SpatialAudioModule`.
    """

    def __init__(
        self,
        teacher: str,
        teacher_ema: bool = True,
        student_steps: int = 1,
        teacher_steps: int = 25,
        teacher_cfg_scale: float | None = None,
        teacher_method: Literal["euler", "heun", "midpoint"] = "euler",
        time_sampling: TimeSampling = "grid",
        diff_weight: float | None = None,
        ear_weights: tuple[float, float] = (1.0, 1.0),
        sample_every_n_epochs: int = 1,
        sample_batches: int = 1,
        sample_seed: int = 0,
        predict_with_ema: bool = True,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        SpatialAudioModule.__init__(
            self,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_interval=lr_interval,
            compile=compile,
            max_bad_steps=max_bad_steps,
        )
        if not 1 <= student_steps <= 64 or teacher_steps < 1:
            raise ValueError(
                f"student_steps must be in [1, 64] and teacher_steps >= 1, got {student_steps}, {teacher_steps}"
            )
        if time_sampling not in ("grid", "uniform", "logit_normal"):
            raise ValueError(
                f"time_sampling must be 'grid', 'uniform' or 'logit_normal', got {time_sampling!r}"
            )
        if teacher_method not in ("euler", "heun", "midpoint"):
            raise ValueError(f"teacher_method must be 'euler', 'heun' or 'midpoint', got {teacher_method!r}")
        if sample_every_n_epochs < 0 or sample_batches < 0:
            raise ValueError("sample_every_n_epochs and sample_batches must be >= 0")
        if len(ear_weights) != 2 or min(ear_weights) < 0:
            raise ValueError(f"ear_weights must be two non-negative numbers (left, right), got {ear_weights}")
        if diff_weight is not None and diff_weight < 0:
            raise ValueError(f"diff_weight must be >= 0, got {diff_weight}")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        teacher_pipe = load_teacher(teacher, use_ema=teacher_ema)
        config = teacher_pipe.pipeline_config()
        config["sampling"] = {"cfg_scale": 1.0, "steps": int(student_steps), "method": "euler"}
        student = build_pipeline(config)
        student.load_export_state_dict(teacher_pipe.export_state_dict())
        self.attach_pipeline(student)
        self.teacher = self.register_frozen("teacher", teacher_pipe.network)
        self.student_steps, self.teacher_steps = int(student_steps), int(teacher_steps)
        self.teacher_cfg_scale = float(
            teacher_pipe.sampling["cfg_scale"] if teacher_cfg_scale is None else teacher_cfg_scale
        )
        self.teacher_method = teacher_method
        self.time_sampling: TimeSampling = time_sampling
        # the attributes ViSAudioModule's validation / predict code reads
        self.init_mmaudio = None
        self.label_prompts = False  # prompts come with the batch (text_features), as the teacher saw them
        self.cfg_dropout, self.spatial_dropout = 0.0, 0.0
        self.ear_weights = (float(ear_weights[0]), float(ear_weights[1]))
        self.diff_weight = float(diff_weight if diff_weight is not None else _teacher_diff_weight(teacher))
        self.t_mean, self.t_std = 0.0, 1.0
        self.normalizer_batches = 0  # the normaliser is the teacher's
        self._init_validation(
            student.sample_rate, sample_every_n_epochs, sample_batches, sample_seed, predict_with_ema
        )

    # ------------------------------------------------------------------ targets and loss
    def batch_latent_len(self, batch: Mapping[str, Any]) -> int:
        """Latent frames of the batch's clips (from cached latents, audio or video length)."""
        pipe = self.pipeline
        if "latents" in batch:
            return int(batch["latents"].shape[-1])
        if "audio" in batch:
            return pipe.codec.num_frames(int(batch["audio"].shape[-1]))
        if "video" in batch:
            return pipe.latent_len(batch["video"].shape[1] / float(batch["video_fps"]))
        raise ValueError("ViSAudio batches need 'audio', 'latents' or 'video' to know the clip length")

    @torch.no_grad()
    def teacher_targets(self, features: Mapping[str, Tensor], noise: Tensor) -> Tensor:
        """The guided teacher's ODE endpoint ``x1`` (normalised latents) from ``noise`` ``[B, 2, D, F]``."""
        latent_len = noise.shape[-1]
        cond = network_conditions(self.teacher, features, latent_len)
        uncond = None
        if self.teacher_cfg_scale != 1.0:
            drop = torch.ones(noise.shape[0], dtype=torch.bool, device=noise.device)
            uncond = network_conditions(self.teacher, features, latent_len, drop=drop)
        return generate(
            self.teacher,
            cond,
            uncond=uncond,
            cfg_scale=self.teacher_cfg_scale,
            steps=self.teacher_steps,
            method=self.teacher_method,
            noise=noise,
            denormalize=False,
        )

    def distill_loss(
        self, features: Mapping[str, Tensor], latent_len: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Reflow loss: flow matching of the student on (noise, teacher endpoint) pairs at :func:`reflow_times`."""
        net = self.network
        param = next(net.parameters())
        b = next(iter(features.values())).shape[0]
        shape = (b, 2, net.config.latent_dim, latent_len)
        noise = torch.randn(shape, generator=generator, dtype=param.dtype).to(param.device)
        x1 = self.teacher_targets(features, noise)
        t = reflow_times(
            b,
            self.time_sampling,
            self.student_steps,
            generator=generator,
            device=param.device,
            dtype=param.dtype,
        )
        cond = network_conditions(net, features, latent_len)
        loss, per_ear = flow_matching_loss(
            net, x1, cond, t=t, noise=noise, ear_weights=self.ear_weights, diff_weight=self.diff_weight
        )
        return loss, {"loss_left": per_ear[0].detach(), "loss_right": per_ear[1].detach()}

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """The reflow distillation loss of a batch (its videos/features only; the audio is not needed)."""
        return self.distill_loss(self.batch_features(batch), self.batch_latent_len(batch))

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """ViSAudioModule's validation (data loss, visual gain, sampling) plus ``val/distill_loss`` at a fixed seed."""
        out = super().validation_step(batch, batch_idx)
        gen = torch.Generator().manual_seed(self.sample_seed + batch_idx)
        feats = self.batch_features(batch)
        loss, _ = self.distill_loss(feats, self.batch_latent_len(batch), generator=gen)
        size = next(iter(feats.values())).shape[0]
        self.log("val/distill_loss", loss, sync_dist=True, batch_size=size)
        return out


def _teacher_diff_weight(teacher: str) -> float:
    """The ``diff_weight`` hyperparameter of a teacher checkpoint (0 for export folders or when absent)."""
    p = Path(teacher)
    if not p.is_file():
        return 0.0
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    return float((ckpt.get("hyper_parameters") or {}).get("diff_weight", 0.0) or 0.0)
