"""``SpatialAudioModule``: the LightningModule base shared by the ViSAGe and ViSAudio training modules.

A module owns one :class:`~spatialgen.models.pipeline.GenerationPipeline` (:meth:`attach_pipeline`): its
``network`` is the one trainable ``nn.Module``, every other part of the pipeline (visual encoders,
audio codec) is registered frozen. The pipeline does all inference (visual encoding, generation,
long videos); the module keeps the loss (``compute_loss(batch) -> (loss, logs)``), CFG dropout and
logging. The base provides:

* **Prediction** (:meth:`predict_step`): each video of a ``PredictVideos`` batch through
  ``pipeline.generate_long``, the same call ``spatialgen generate`` makes, so both give the same audio
  for the same weights, frames and seed; :class:`~spatialgen.training.writer.PredictionWriter` writes it.
* **Export** (:meth:`export_pipeline`): a standalone copy of the pipeline with this module's weights.

* **Frozen parts out of DDP sync and optimizer state.** ``register_frozen`` calls
  ``requires_grad_(False)`` and keeps the part in eval mode (``train()`` does not flip it). DDP only
  registers parameters that require grad in its gradient reducer, and the optimizer is built from
  ``self.network``'s trainable parameters only (:meth:`param_groups`). Frozen weights are also left
  out of checkpoints (they come from their registries) and are filled back in on load.
* **Optimizer and LR scheduler from YAML** (LightningCLI dependency injection: Lightning's docs,
  "LightningCLI: optimizers and learning-rate schedulers", callable type hints): ``model.init_args.optimizer: {class_path: torch.optim.AdamW, init_args: {lr: ...}}``.
  The defaults are ``None`` and resolved here (AdamW lr 1e-4, wd 0.01; no scheduler), because a class
  default would leak its init_args into a different class chosen in YAML (jsonargparse#460).
* **Non-finite guard** (:mod:`spatialgen.training.guards`), automatic optimisation; a subclass that
  switches to manual optimisation keeps the guard as long as it steps through ``self.optimizers()``
  (Lightning runs ``on_before_optimizer_step`` there too) and passes its loss to ``self.guard.observe``.
* ``compile=True`` compiles ``self.network`` in place (``nn.Module.compile``), so parameter names and
  checkpoints are unchanged.

Seeding: LightningCLI calls ``seed_everything(seed_everything, workers=True)`` from the recipe's
top-level ``seed_everything:`` key (set it to an int for reproducible runs); scripts call
``lightning.seed_everything(seed, workers=True)`` before building the model. Per-worker seeds are then
derived from the global seed, the rank and the worker id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from spatialgen.models.pipeline import GenerationPipeline, build_pipeline
from spatialgen.models.windows import resample_frames
from spatialgen.training.guards import NonFiniteGuard

FROZEN_PREFIX = "frozen."
#: checkpoint entry naming the module class (``package.module.Class``)
MODULE_CLASS_KEY = "spatialgen_module_class"


def _batch_size(batch: Any) -> int | None:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
    return None


class SpatialAudioModule(pl.LightningModule):
    """Base LightningModule: one trainable ``network``, frozen parts, injected optimizer, guards.

    Args:
        optimizer: optimizer factory ``params -> Optimizer`` (YAML ``class_path``); default AdamW
            (lr 1e-4, weight decay 0.01).
        lr_scheduler: scheduler factory ``optimizer -> LRScheduler``; default none.
        lr_interval: step the scheduler every optimizer ``step`` or every ``epoch``.
        compile: compile the network with ``torch.compile`` (in place) at setup.
        max_bad_steps: optimizer steps with a non-finite loss/gradient that may be skipped before
            training stops with a clear error.
    """

    network: nn.Module
    pipeline: GenerationPipeline
    #: seed of validation and predict sampling (subclasses set it from their ``sample_seed`` argument)
    sample_seed: int = 0

    def __init__(
        self,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__()
        if lr_interval not in ("step", "epoch"):
            raise ValueError(f"lr_interval must be 'step' or 'epoch', got {lr_interval!r}")
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_interval = lr_interval
        self.compile_network = compile
        self.frozen = nn.ModuleDict()
        self.guard = NonFiniteGuard(max_bad_steps)
        self._compiled = False

    # ---- structure -----------------------------------------------------------------------------
    def attach_pipeline(self, pipeline: GenerationPipeline) -> GenerationPipeline:
        """Own ``pipeline``: its ``network`` becomes the trainable ``self.network``, its other parts frozen.

        The pipeline itself is not a registered submodule (its parts are), so every weight appears once
        in ``state_dict`` while the pipeline's methods use the same objects.
        """
        self.__dict__["pipeline"] = pipeline
        self.network = pipeline.network
        for name, part in pipeline.named_children():
            if name != "network":
                self.register_frozen(name, part)
        return pipeline

    def register_frozen(self, name: str, module: nn.Module) -> nn.Module:
        """Hold ``module`` as a frozen part: no gradients, eval mode, not optimized, not checkpointed."""
        module.requires_grad_(False).eval()
        self.frozen[name] = module
        return module

    def train(self, mode: bool = True) -> SpatialAudioModule:
        """Set train/eval mode; frozen parts always stay in eval mode (dropout off, norms fixed)."""
        super().train(mode)
        self.frozen.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The network's parameters that require grad."""
        return [p for p in self.network.parameters() if p.requires_grad]

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups; override for per-group settings (e.g. no weight decay on norms)."""
        return [{"params": self.trainable_parameters()}]

    # ---- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """Build the injected optimizer on :meth:`param_groups` (+ the scheduler, if any)."""
        groups = self.param_groups()
        frozen_ids = {id(p) for p in self.frozen.parameters()}
        if any(id(p) in frozen_ids or not p.requires_grad for g in groups for p in g["params"]):
            raise ValueError(
                f"{type(self).__name__}.param_groups() returned frozen parameters; build groups from "
                "self.network's trainable parameters only."
            )
        if self.optimizer_factory is None:
            optimizer = torch.optim.AdamW(groups, lr=1e-4, weight_decay=0.01)
        else:
            optimizer = self.optimizer_factory(groups)
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_interval},
        }

    def setup(self, stage: str) -> None:
        """Compile the network once when asked to."""
        if self.compile_network and not self._compiled:
            self.network.compile()
            self._compiled = True

    # ---- steps ---------------------------------------------------------------------------------
    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar training loss of ``batch`` and extra values to log; subclasses implement this."""
        raise TypeError(f"{type(self).__name__} must implement compute_loss(batch) -> (loss, logs)")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Loss of one (micro-)batch; the guard records whether it is finite and the batch ids."""
        loss, logs = self.compute_loss(batch)
        self.guard.observe(loss, batch)
        size = _batch_size(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for key, value in logs.items():
            self.log(f"train/{key}", value, batch_size=size)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Validation loss, averaged over the epoch and synced across ranks."""
        loss, logs = self.compute_loss(batch)
        self.log_validation_loss(loss, logs, _batch_size(batch))
        return loss

    def log_validation_loss(
        self, loss: torch.Tensor, logs: dict[str, torch.Tensor], size: int | None
    ) -> None:
        """Log ``val/loss`` and ``val/<key>`` of ``logs`` (epoch means over ``size``-clip batches, synced)."""
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        for key, value in logs.items():
            self.log(f"val/{key}", value, sync_dist=True, batch_size=size)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (drop all gradients of) a step with a non-finite loss or gradient; count and log it."""
        self.guard.check_step(optimizer, self.trainer, self.trainer.global_step)
        self.log("train/bad_steps", float(self.guard.bad_steps), on_step=True, on_epoch=False)

    # ---- inference -----------------------------------------------------------------------------
    def sampling_options(self) -> dict[str, Any]:
        """Model-specific sampling options passed to the pipeline in validation and predict."""
        return {}

    def prediction_camera(self, batch: Mapping[str, Any], index: int) -> Tensor | None:
        """Camera direction ``[2]`` of clip ``index`` for models that take one (None: the model's default)."""
        return None

    @torch.no_grad()
    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        """Audio for whole videos (``PredictVideos`` batches): each through ``pipeline.generate_long``.

        Each video (its real frames, ``video_mask``) is resampled to every encoder's rate (nearest
        frame; unchanged when the data ``fps`` is the encoder's) and generated with ``sample_seed``.
        Returns ``{"clip_id", "audio" [B, C, T] (cpu, zero-padded), "lengths", "sample_rate"}``.
        """
        if "video" not in batch:
            raise ValueError("predict batches need 'video' (PredictVideos / data.predict_files)")
        pipe = self.pipeline
        video, fps = batch["video"], float(batch["video_fps"])
        B, T = video.shape[:2]
        mask = batch.get("video_mask")
        real = [int(n) for n in mask.sum(-1).tolist()] if mask is not None else [T] * B
        pieces = []
        for i in range(B):
            clip = video[i : i + 1, : max(1, real[i])]
            frames = {}
            for name, rate in pipe.frame_rates.items():
                enough = math.floor(clip.shape[1] / fps * rate + 1e-6) >= 1
                frames[name] = (resample_frames(clip, fps, rate) if enough else clip[:, :1])[0]
            pieces.append(
                pipe.generate_long(
                    frames,
                    duration=max(1, real[i]) / fps,
                    camera_direction=self.prediction_camera(batch, i),
                    seed=self.sample_seed,
                    **self.sampling_options(),
                )
            )
        lengths = [p.shape[-1] for p in pieces]
        audio = torch.stack([nn.functional.pad(p, (0, max(lengths) - p.shape[-1])) for p in pieces])
        ids = batch.get("clip_id", [f"clip_{batch_idx:05d}_{i}" for i in range(B)])
        return {"clip_id": list(ids), "audio": audio, "lengths": lengths, "sample_rate": pipe.sample_rate}

    def export_pipeline(self, ema: Mapping[str, Tensor] | None = None) -> GenerationPipeline:
        """A standalone copy of the pipeline with this module's weights (or the given EMA network weights)."""
        pipe = build_pipeline(self.pipeline.pipeline_config())
        pipe.load_export_state_dict(self.pipeline.export_state_dict())
        if ema is not None:
            pipe.network.load_state_dict(dict(ema))
        return pipe.to(self.device).eval()

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop frozen weights (rebuilt from their registries) and store the guard's counter."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(FROZEN_PREFIX)]:
            del state[key]
        checkpoint["nonfinite_guard"] = self.guard.state_dict()
        # what `spatialgen export` rebuilds (LightningCLI also stores it as hyper_parameters["_class_path"])
        checkpoint[MODULE_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the guard's counter."""
        self.guard.load_state_dict(checkpoint.get("nonfinite_guard", {}))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict`` that takes frozen weights missing from ``state_dict`` as they are."""
        own_frozen = self.frozen.state_dict(prefix=FROZEN_PREFIX)
        merged = {**{k: v for k, v in own_frozen.items() if k not in state_dict}, **state_dict}
        return super().load_state_dict(merged, strict=strict, assign=assign)
