"""``ViSAGeModule``: trains the ViSAGe network on codec tokens (ViSAGe, Kim et al. ICLR 2025, §3).

The module owns a :class:`~spatialgen.models.visage.pipeline.ViSAGePipeline` (network trainable; codec
and visual encoder frozen): visual features, the energy map, validation samples and predictions all
come from the pipeline; the module keeps the loss, CFG dropout and the logs.

Inputs per batch (items of :mod:`spatialgen.data.clips`), each from the data module's cache *or*
computed here with the frozen parts:

* **tokens**: ``batch["codes"]`` (feature cache / on-the-fly featurizer with this codec) or, from raw
  ``batch["audio"]``, ``codec.encode`` inside the module (needed for on-the-fly augmentation such as the
  FOA rotation). Padded audio frames become ignored targets. Codes are cut to ``config.num_frames``
  (430 for 5 s: the official first 430 frames).
* **visual features**: ``batch["features"][encoder]`` (+ ``batch["patch_tokens"][encoder]`` for the
  energy map) or the frozen encoder on ``batch["video"]``; the energy map is always computed from patch
  tokens (:func:`~spatialgen.models.visage.pipeline.visual_energy_map`), then cut to ``source_length``.
* **direction**: ``batch["camera_direction"]`` ``(azimuth, elevation)`` -> unit vector.

Frozen codec and encoder are built with a fixed seed (``build_seed``) so that randomly initialised ones
(``dac_synthetic``, ``tiny``) are the same in every run and after resume: the base class leaves frozen
weights out of checkpoints. Use cached tokens only from the codec configured here (same name, weights
and seed), else the tokens the network learns and the codec decoding its samples disagree.

CFG dropout follows the released code: with probability ``visual_dropout`` the visual group (CLIP +
energy map) is replaced by its learned nulls, independently with ``direction_dropout`` the direction;
``dropout_scope="batch"`` decides once per micro-batch (official), ``"sample"`` per clip. It is applied
in training only (the official code also drops in validation, making its validation loss random).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from spatialgen.codecs import create_codec
from spatialgen.encoders import create_encoder
from spatialgen.metrics import DOAError, EnergyMapAUC, EnergyMapCC
from spatialgen.models.visage import ViSAGe, get_config, init_foa_from_mono, stream_cross_entropy
from spatialgen.models.visage.generation import codes_to_audio
from spatialgen.models.visage.pipeline import ViSAGePipeline, camera_direction_vector
from spatialgen.training.base import SpatialAudioModule
from spatialgen.training.network_state import load_network_state
from spatialgen.training.samples import log_samples
from spatialgen.training.token_stats import token_counts, token_stats, unigram_entropy

__all__ = ["ViSAGeModule", "load_network_state"]

_SAMPLING_KEYS = {
    "guidance",
    "cfg_scale",
    "direction_cfg_scale",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
}


class ViSAGeModule(SpatialAudioModule):
    """LightningModule for ViSAGe (mono stage 1 and FOA stage 2).

    Args:
        config: named network config (``visage``, ``visage_mono``, ``visage_small``, ...).
        config_overrides: :class:`~spatialgen.models.visage.ViSAGeConfig` fields to change.
        encoder: visual encoder registry name (``clip_vit_b32``; ``tiny`` for CPU runs).
        encoder_kwargs: encoder options (``tiny``: ``embed_dim``, ``input_size``, ``fps``).
        encoder_pretrained: official weights (True), random (False) or a weights path.
        codec_name: codec registry name; None uses ``config.codec`` (``dac_44khz`` for the paper). (Not
            ``codec``: Lightning merges module and data hparams, and the data module has its own ``codec``.)
        codec_kwargs: codec options (e.g. DAC kwargs of a codec trained by us).
        codec_pretrained: official weights (True), random (False) or a weights path (a trained codec).
        build_seed: seed used while building the frozen codec and encoder (reproducible random ones).
        stream_weights: ``C * Q`` loss weights of the per-stream cross entropies (default: plain sum).
        label_smoothing: cross-entropy label smoothing.
        visual_dropout: CFG dropout probability of the visual group (CLIP + energy map).
        direction_dropout: CFG dropout probability of the direction.
        dropout_scope: ``batch`` (one draw per micro-batch, official) or ``sample`` (per clip).
        history_dropout: probability of replacing each token of the decoder's *input* history by a random
            code while training (targets unchanged; 0 = off, official): word dropout against a decoder that
            copies the direction from its own earlier Y/Z/X tokens instead of reading the video (Bowman et
            al. 2016). The synthetic demo does not need it at lr 3e-4 (see ``val/visual_gain``).
        init_from_mono: stage-1 checkpoint / export to initialise from (W's tables and heads copied to
            every channel, :func:`~spatialgen.models.visage.init_foa_from_mono`); used at fit start.
        no_decay_norm_and_bias: no weight decay on biases and LayerNorm parameters (official grouping).
        sample_every_n_epochs: generate samples during validation every n epochs (0: never).
        val_num_clips: clips of the first validation batch to generate.
        sampling: generation options (``guidance``, ``cfg_scale``, ``direction_cfg_scale``,
            ``do_sample``, ``temperature``, ``top_k``, ``top_p``) for validation and predict.
        sample_seed: seed of validation/predict sampling.
        optimizer, lr_scheduler, lr_interval, compile, max_bad_steps: see :class:`SpatialAudioModule`.
    """

    def __init__(
        self,
        config: str = "visage",
        config_overrides: dict[str, Any] | None = None,
        encoder: str = "clip_vit_b32",
        encoder_kwargs: dict[str, Any] | None = None,
        encoder_pretrained: bool | str = True,
        codec_name: str | None = None,
        codec_kwargs: dict[str, Any] | None = None,
        codec_pretrained: bool | str = True,
        build_seed: int = 0,
        stream_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        visual_dropout: float = 0.1,
        direction_dropout: float = 0.1,
        dropout_scope: Literal["batch", "sample"] = "batch",
        history_dropout: float = 0.0,
        init_from_mono: str | None = None,
        no_decay_norm_and_bias: bool = True,
        sample_every_n_epochs: int = 1,
        val_num_clips: int = 2,
        sampling: dict[str, Any] | None = None,
        sample_seed: int = 0,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, lr_interval, compile, max_bad_steps)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        for name, p in (
            ("visual_dropout", visual_dropout),
            ("direction_dropout", direction_dropout),
            ("history_dropout", history_dropout),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if dropout_scope not in ("batch", "sample"):
            raise ValueError(f"dropout_scope must be 'batch' or 'sample', got {dropout_scope!r}")
        if sample_every_n_epochs < 0 or val_num_clips < 1:
            raise ValueError("sample_every_n_epochs must be >= 0 and val_num_clips >= 1")
        unknown = sorted(set(sampling or {}) - _SAMPLING_KEYS)
        if unknown:
            raise ValueError(f"sampling: unknown keys {unknown}; valid keys are {sorted(_SAMPLING_KEYS)}")
        overrides = dict(config_overrides or {})
        if codec_name is not None:
            overrides["codec"] = codec_name
        cfg = get_config(config, **overrides)
        codec_kwargs = {k: v for k, v in dict(codec_kwargs or {}).items() if k != "n_quantizers"}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(build_seed)
            codec_module = create_codec(
                cfg.codec, pretrained=codec_pretrained, n_quantizers=cfg.num_codebooks, **codec_kwargs
            )
            torch.manual_seed(build_seed + 1)
            encoder_module = create_encoder(
                encoder, pretrained=encoder_pretrained, **{**dict(encoder_kwargs or {}), "frozen": True}
            )
        self.attach_pipeline(
            ViSAGePipeline(
                network=ViSAGe(cfg),
                codec=codec_module,
                visual_encoder=encoder_module,
                encoder=encoder,
                encoder_kwargs=encoder_kwargs,
                encoder_pretrained=encoder_pretrained,
                codec_kwargs=codec_kwargs,
                codec_pretrained=codec_pretrained,
                allow_mono=True,
            )
        )
        self.encoder_name = encoder
        self.sample_seed = int(sample_seed)
        self.stream_weights = stream_weights
        if stream_weights is not None and len(stream_weights) != cfg.num_streams:
            raise ValueError(f"stream_weights needs {cfg.num_streams} entries (channels x codebooks)")
        self.sampling = {"guidance": "joint", "cfg_scale": 2.5, "top_k": 256, **dict(sampling or {})}
        if not cfg.use_direction and self.sampling.get("guidance") == "dual":
            raise ValueError("sampling.guidance='dual' needs a direction input; this config has none")
        self._token_counts: Tensor | None = None
        self._val_stats: Tensor | None = None
        self._initialised_from_mono = False
        if cfg.num_channels == 4:
            self.energy_cc = EnergyMapCC(codec_module.sample_rate, seconds=None, skip_nan=True)
            self.energy_auc = EnergyMapAUC(codec_module.sample_rate, seconds=None, skip_nan=True)
            self.doa_error = DOAError(codec_module.sample_rate, skip_nan=True)

    # ------------------------------------------------------------------ parts
    @property
    def config(self):
        """The network's :class:`~spatialgen.models.visage.ViSAGeConfig`."""
        return self.network.config

    @property
    def codec(self) -> nn.Module:
        """The frozen audio codec."""
        return self.frozen["codec"]

    @property
    def visual_encoder(self) -> nn.Module:
        """The frozen visual encoder."""
        return self.frozen["encoder"]

    def sampling_options(self) -> dict[str, Any]:
        """``sampling`` (guidance, top-k, ...) for the pipeline in validation and predict."""
        return dict(self.sampling)

    def prediction_camera(self, batch: Mapping[str, Any], index: int) -> Tensor | None:
        """The clip's camera direction (``PredictVideos``: (0, 0)) when the network takes a direction."""
        if not self.config.use_direction:
            return None
        camera = batch.get("camera_direction")
        return torch.zeros(2) if camera is None else camera[index].float()

    def param_groups(self) -> list[dict[str, Any]]:
        """Decay on weights, embeddings and nulls; none on biases and LayerNorm parameters (official)."""
        if not self.hparams.no_decay_norm_and_bias:
            return super().param_groups()
        no_decay: set[int] = set()
        for module in self.network.modules():
            if isinstance(module, nn.LayerNorm):
                no_decay.update(id(p) for p in module.parameters(recurse=False))
        for name, p in self.network.named_parameters():
            if name.endswith("bias"):
                no_decay.add(id(p))
        params = self.trainable_parameters()
        return [
            {"params": [p for p in params if id(p) not in no_decay]},
            {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
        ]

    def setup(self, stage: str) -> None:
        """Compile if asked; for ``fit``, initialise from the mono checkpoint.

        This runs before Lightning restores a resumed run's checkpoint (which then overwrites these
        weights) and before the EMA callback copies the weights at fit start.
        """
        super().setup(stage)
        path = self.hparams.init_from_mono
        if stage == "fit" and path and not self._initialised_from_mono:
            init_foa_from_mono(self.network, load_network_state(path))
            self._initialised_from_mono = True

    # ------------------------------------------------------------------ inputs
    @torch.no_grad()
    def prepare_batch(self, batch: Mapping[str, Any]) -> dict[str, Tensor | None]:
        """Network inputs of a batch: ``visual``, ``energy_map``, ``direction`` and target ``codes``."""
        cfg = self.config
        codes = self._batch_codes(batch)
        visual, energy = self._batch_visual(batch)
        direction = None
        if cfg.use_direction:
            if "camera_direction" not in batch:
                raise ValueError("batch has no camera_direction; the direction-conditioned model needs it")
            direction = camera_direction_vector(batch["camera_direction"].to(visual.device), visual.shape[0])
        return {"visual": visual, "energy_map": energy, "direction": direction, "codes": codes}

    def _batch_codes(self, batch: Mapping[str, Any]) -> Tensor:
        cfg, codec = self.config, self.codec
        if "codes" in batch:
            codes = batch["codes"]
            if codes.shape[1] != cfg.num_channels or codes.shape[2] < cfg.num_codebooks:
                raise ValueError(
                    f"batch codes are {tuple(codes.shape)}; the network needs {cfg.num_channels} channels and "
                    f"{cfg.num_codebooks} codebooks (cache them with codec {cfg.codec!r})"
                )
            codes = codes[:, :, : cfg.num_codebooks]
        elif "audio" in batch:
            audio = batch["audio"]
            if audio.shape[1] != cfg.num_channels:
                raise ValueError(
                    f"batch audio has {audio.shape[1]} channels; the network needs {cfg.num_channels} "
                    "(set data.init_args.format to foa or mono)"
                )
            rate = int(batch.get("sample_rate", codec.sample_rate))
            if rate != codec.sample_rate:
                raise ValueError(
                    f"batch audio is at {rate} Hz, codec {cfg.codec!r} at {codec.sample_rate} Hz: set "
                    f"data.init_args.sample_rate to {codec.sample_rate}"
                )
            codes = codec.encode(audio.float()).clone()
            if "audio_mask" in batch:  # frames that start in the padding are not targets
                n_frames = torch.ceil(batch["audio_mask"].sum(-1).float() / codec.hop_length).long()
                valid = (
                    torch.arange(codes.shape[-1], device=codes.device) < n_frames.to(codes.device)[:, None]
                )
                codes = codes.masked_fill(~valid[:, None, None], -1)
        else:
            raise ValueError("batch has neither codes nor audio: configure the data module to load one")
        return codes[..., : cfg.num_frames].long()

    def _batch_visual(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor | None]:
        """Visual features and energy map cut to ``source_length``: cached, or the pipeline's on ``video``."""
        cfg, pipe = self.config, self.pipeline
        name = self.encoder_name
        need_energy = bool(cfg.energy_map_dim)
        if name in batch.get("features", {}):
            fps = batch.get("features_fps", {}).get(name, cfg.visual_fps)
            if abs(float(fps) - cfg.visual_fps) > 1e-6:
                raise ValueError(
                    f"cached {name} features are at {fps} fps; the network needs {cfg.visual_fps}"
                )
            visual = batch["features"][name].float()
            patches = batch.get("patch_tokens", {}).get(name)
            if need_energy and patches is None:
                raise ValueError(
                    f"the energy map needs {name} patch tokens: build the cache with patch tokens"
                )
            energy = pipe.energy_map(patches.float()) if need_energy else None
        elif "video" in batch:
            fps = float(batch.get("video_fps", pipe.encoder.fps))
            if abs(fps - float(pipe.encoder.fps)) > 1e-6:
                raise ValueError(
                    f"batch video is at {fps} fps, encoder {name!r} needs {pipe.encoder.fps}: set data.init_args.fps"
                )
            visual, energy = pipe.encode_video(batch["video"])
            visual = visual.float()
        else:
            raise ValueError(f"batch has neither {name} features nor video")
        S = cfg.source_length
        return visual[:, :S], None if energy is None else energy[:, :S]

    def cfg_dropout_masks(self, batch_size: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """Bool ``[B]`` masks ``(drop_visual, drop_direction)`` drawn with the configured rates and scope."""
        hp = self.hparams
        n = 1 if hp.dropout_scope == "batch" else batch_size
        draws = torch.rand(2, n, device=device)
        probs = torch.tensor([hp.visual_dropout, hp.direction_dropout], device=device)[:, None]
        drops = (draws < probs).expand(2, batch_size)
        return drops[0].clone(), drops[1].clone()

    def corrupt_history(self, codes: Tensor) -> Tensor | None:
        """``codes`` with each valid token replaced by a uniformly random code with ``history_dropout``
        probability (None when off); missing frames (negative ids) stay missing."""
        p = float(self.hparams.history_dropout)
        if p <= 0:
            return None
        noise = torch.randint_like(codes, self.config.codebook_size)
        valid = (codes >= 0) & (codes < self.config.codebook_size)
        replace = (torch.rand(codes.shape, device=codes.device) < p) & valid
        return torch.where(replace, noise, codes)

    # ------------------------------------------------------------------ loss
    def _forward(
        self, inputs: Mapping[str, Tensor | None], *, dropout: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.config
        codes = inputs["codes"]
        drop_v = drop_d = None
        if dropout:
            drop_v, drop_d = self.cfg_dropout_masks(codes.shape[0], codes.device)
            if not cfg.use_direction:
                drop_d = None
        out = self.network(
            inputs["visual"],
            codes,
            inputs["energy_map"],
            inputs["direction"],
            drop_visual=drop_v,
            drop_direction=drop_d,
            input_codes=self.corrupt_history(codes) if dropout else None,
        )
        loss, per_stream = stream_cross_entropy(
            out.logits, codes, self.stream_weights, label_smoothing=self.hparams.label_smoothing
        )
        return loss, per_stream, out.logits

    def compute_loss(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum (or weighted sum) of per-stream cross entropies, with CFG dropout while training."""
        inputs = self.prepare_batch(batch)
        loss, per_stream, _ = self._forward(inputs, dropout=self.training)
        if self.training:
            self._count_tokens(inputs["codes"])
        cfg = self.config
        per_q = per_stream.detach().reshape(cfg.num_channels, cfg.num_codebooks).mean(0)
        return loss, {f"ce/q{q}": per_q[q] for q in range(cfg.num_codebooks)}

    def _count_tokens(self, codes: Tensor) -> None:
        counts = token_counts(codes, self.config.num_streams, self.config.codebook_size)
        self._token_counts = counts if self._token_counts is None else self._token_counts + counts

    def on_train_epoch_end(self) -> None:
        """Log ``train/unigram_entropy``: the summed per-stream entropy (nats) of this epoch's token marginal,
        the loss of a model that ignores all context (compare with ``train/loss`` for unweighted streams)."""
        if self._token_counts is None:
            return
        counts = self.trainer.strategy.reduce(self._token_counts.double(), reduce_op="sum")
        self.log("train/unigram_entropy", unigram_entropy(counts).float(), rank_zero_only=True)
        self._token_counts = None

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Loss, ``val/visual_gain`` (:meth:`visual_gain`), per-codebook accuracy/perplexity statistics and
        (every n epochs) generated samples."""
        inputs = self.prepare_batch(batch)
        loss, _, logits = self._forward(inputs, dropout=False)
        codes = inputs["codes"]
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=codes.shape[0])
        if codes.shape[0] > 1:
            gain = self.visual_gain(inputs, loss)
            self.log("val/visual_gain", gain, sync_dist=True, batch_size=codes.shape[0])
        stats = token_stats(logits.detach(), codes)
        self._val_stats = stats if self._val_stats is None else self._val_stats + stats
        if batch_idx == 0 and self._should_generate():
            self._generate_samples(batch, inputs)
        return loss

    @torch.no_grad()
    def visual_gain(self, inputs: Mapping[str, Tensor | None], loss: Tensor | None = None) -> Tensor:
        """How much the picture is worth: the loss (nats) with every clip given the *next* clip's visual
        inputs (CLIP features and energy map, the batch rolled by one) minus the loss with its own.

        About 0 means the network ignores the video (it recalls directions from the audio tokens or its
        own Y/Z/X history: the collapse the recipes' learning rate avoids); clearly positive means the
        picture informs the tokens. Needs a batch of at least 2 different clips.
        """
        if inputs["visual"].shape[0] < 2:
            raise ValueError("visual_gain needs a batch of at least 2 clips (it swaps their pictures)")
        if loss is None:
            loss = self._forward(inputs, dropout=False)[0]
        swapped = dict(inputs)
        swapped["visual"] = inputs["visual"].roll(1, 0)
        if inputs["energy_map"] is not None:
            swapped["energy_map"] = inputs["energy_map"].roll(1, 0)
        return self._forward(swapped, dropout=False)[0] - loss

    def _should_generate(self) -> bool:
        n = self.hparams.sample_every_n_epochs
        trainer = getattr(self, "_trainer", None)
        if n == 0 or trainer is None or trainer.sanity_checking:
            return False
        return (self.current_epoch + 1) % n == 0

    def on_validation_epoch_end(self) -> None:
        """Log ``val/acc``, ``val/ppl`` and per codebook ``val/acc/q{q}``, ``val/ppl/q{q}``; spatial metrics."""
        if self._val_stats is not None:
            stats = self.trainer.strategy.reduce(self._val_stats, reduce_op="sum")  # [Q, 3]
            ce, correct, count = stats.unbind(-1)
            for q in range(stats.shape[0]):
                n = count[q].clamp_min(1)
                self.log(f"val/acc/q{q}", (correct[q] / n).float())
                self.log(f"val/ppl/q{q}", (ce[q] / n).exp().float())
            n = count.sum().clamp_min(1)
            self.log("val/acc", (correct.sum() / n).float())
            self.log("val/ppl", (ce.sum() / n).exp().float())
            self._val_stats = None
        if self.config.num_channels == 4 and int(self.energy_cc.count + self.energy_cc.nan_count) > 0:
            for key, metric in (
                ("val/energy_map_cc", self.energy_cc),
                ("val/energy_map_auc", self.energy_auc),
                ("val/doa_error_deg", self.doa_error),
            ):
                self.log(key, metric.compute().float())
                metric.reset()

    def _generate_samples(self, batch: Mapping[str, Any], inputs: Mapping[str, Tensor | None]) -> None:
        n = min(self.hparams.val_num_clips, inputs["visual"].shape[0])

        def head(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[:n]

        pred = self.pipeline.generate_from_features(
            head(inputs["visual"]),
            head(inputs["energy_map"]),
            head(inputs["direction"]),
            seed=self.sample_seed,
            **self.sampling,
        )
        target = self._reference_audio(batch, inputs["codes"][:n], pred.shape[-1])
        if self.config.num_channels == 4:
            for metric in (self.energy_cc, self.energy_auc, self.doa_error):
                metric.update(pred.double(), target.double())
        if self.global_rank == 0:
            ids = batch.get("clip_id", [f"clip{i}" for i in range(n)])[:n]
            log_samples(self, pred, target, [str(i) for i in ids], int(self.codec.sample_rate))

    def _reference_audio(self, batch: Mapping[str, Any], codes: Tensor, length: int) -> Tensor:
        """Ground-truth audio of the first clips (raw audio, or the codec's decoding of cached codes)."""
        if "audio" in batch and batch["audio"].shape[1] == self.config.num_channels:
            audio = batch["audio"][: codes.shape[0]].float()
        else:
            valid = codes.clamp(0, self.config.codebook_size - 1)
            audio = codes_to_audio(valid, self.codec)
        if audio.shape[-1] >= length:
            return audio[..., :length]
        return nn.functional.pad(audio, (0, length - audio.shape[-1]))
