"""``ViSAudioModule``: train ViSAudio (dual-branch conditional flow matching, binaural) with Lightning.

What one training step does (flow matching as in MMAudio, Cheng et al. CVPR 2025, hkchengrex/MMAudio
``mmaudio/model/flow_matching.py``; one branch per ear, ViSAudio):

1. **Latents.** Ground truth comes as raw ``audio`` (coded here by the frozen mono codec, each ear
   separately, after a *joint* stereo peak normalisation that keeps the ILD) or as cached ``latents``
   (``spatialgen data features``). Mono audio/latents (``format: mono``, e.g. VGGSound pretraining) are
   duplicated to identical left and right targets. Latents are normalised by the network's
   :class:`~spatialgen.models.visaudio.latents.LatentNormalizer`.
2. **Visual features** come from the cache (``features`` / ``patch_tokens`` per encoder name) or from
   the frozen encoders run on ``video`` (resampled by nearest frame to each encoder's rate).
3. **CFG dropout.** With probability ``cfg_dropout`` a sample's video conditions (CLIP, sync, PE
   together) are replaced by the learnable null features; ``spatial_dropout`` additionally drops the
   spatial (PE) condition alone. Batches with prompt features (``text_features`` ``[B, L, text_dim]``,
   MMAudio's CLIP text tokens) drop the text independently with the same probability (MMAudio's
   ``runner.py``), replacing it by the network's empty-prompt features; batches without use those, or,
   with ``label_prompts``, their clips' class labels through MMAudio's CLIP text tower.
4. **Loss**: per-ear flow-matching MSE with one logit-normal ``t`` per sample and independent noise,
   summed with ``ear_weights``; ``train/loss_left`` and ``train/loss_right`` are logged.

**Latent normaliser.** At the start of training (``on_train_start``), if the normaliser still holds
the identity (a fresh network; a resumed or MMAudio-initialised-and-refitted one is left alone), the
per-channel mean/std are computed from the first ``normalizer_batches`` training batches, pooled over
clips, both ears and frames (float64 sums, summed over DDP ranks). They live in the network's buffers,
so they are saved in every checkpoint and in pipeline exports.

**EMA** is the :class:`spatialgen.training.EMA` callback on ``network`` (trainable parameters only;
frozen encoders and the codec are never copied). Validation then runs on the EMA weights.

**Validation sampling** every ``sample_every_n_epochs`` epochs: the first ``sample_batches`` validation
batches are generated (``sample_steps`` Euler steps, CFG ``cfg_scale``, fixed seed) and scored against
the ground truth with ILD error (dB), ITD error (s), left-right confusion and STFT distance
(``val/ild_error_db``, ``val/itd_error_s``, ``val/lr_confusion``, ``val/stft_distance``). The first clip
is logged as audio (left/right) and as a spectrogram figure to loggers that take media (TensorBoard:
``add_audio``/``add_figure``; W&B: ``log_audio``/``log_image``); other loggers get only the numbers.

**Predict** (the base class's ``predict_step``: ``pipeline.generate_long`` per video, as ``spatialgen
generate``) returns ``{"clip_id", "audio" [B, 2, T], "lengths", "sample_rate"}``;
:class:`~spatialgen.training.writer.PredictionWriter` writes one 2-channel ``[L, R]`` WAV per clip.
With ``predict_with_ema`` the EMA weights of the loaded checkpoint are used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from spatialgen.metrics import ILDError, ITDError, LeftRightConfusion, STFTDistance
from spatialgen.models.visaudio.flow import flow_matching_loss, logit_normal_t
from spatialgen.models.visaudio.latents import joint_peak_normalize
from spatialgen.models.visaudio.pipeline import ROLES, ViSAudioPipeline, resample_frames
from spatialgen.models.visaudio.weights_check import all_missing_weights
from spatialgen.training.base import SpatialAudioModule
from spatialgen.training.ema import ema_state_dict_from_checkpoint
from spatialgen.training.samples import log_samples, plot_binaural_spectrograms
from spatialgen.training.visaudio_batches import as_binaural, in_order, posterior_mean, require_full
from spatialgen.weights import WeightsNotFoundError

__all__ = ["ViSAudioModule", "plot_binaural_spectrograms"]


class ViSAudioModule(SpatialAudioModule):
    """LightningModule for ViSAudio (see the module docstring for the training step).

    Args:
        config: network size (``S_16k``, ``S_44k``, ``M_44k``, ``L_44k``, ``L_44k_v2``, ``small``, ``tiny``);
            its latent/visual widths and rates are taken from the codec and encoders.
        config_overrides: further :class:`~spatialgen.models.visaudio.ViSAudioConfig` fields.
        codec_name: mono codec registry name (``stft``, ``dac_16khz``, ...); codec_kwargs: its options;
            codec_pretrained: load its published weights (True), random (False) or a weights path.
            (Not named ``codec``: the data module's ``codec`` hyperparameter, a feature-cache option,
            would clash when Lightning merges them.)
        clip_encoder, sync_encoder, pe_encoder: encoder registry name per visual role (``tiny`` may fill all).
        encoder_kwargs: options per encoder name; encoder_pretrained: load published encoder weights
            (True), random init from ``build_seed`` (False), or one weights file for the encoders (e.g. a
            ``tiny`` encoder pretrained by ``recipes/visual_direction_synthetic.yaml``).
        clip_seconds: training clip length and generation window; Lightning refuses a ``data.clip_seconds``
            that differs (hyperparameter merge), which keeps the two consistent.
        peak: joint stereo peak of the ground truth before coding (None: off; cached latents as stored).
        build_seed: seed of the randomly initialised parts (frozen random encoders are rebuilt from it).
        init_mmaudio: MMAudio network weights (path / ``hf://`` / URL) copied in where shapes agree at
            the start of ``fit`` (latent statistics are refitted on binaural latents).
        label_prompts: use each clip's class labels (``labels``, joined by ", "; VGGSound's label, the
            BiAudio sources') as its text prompt, encoded by MMAudio's CLIP text tower, as MMAudio trains
            on VGGSound with the label as text; batches with ``text_features`` use those instead. A clip
            without labels gets the tower's features of "" when others in its batch have some, else the
            network's empty-prompt features. Needs a network with a text stream.
        cfg_dropout: probability of replacing all video conditions by the null features.
        spatial_dropout: extra probability of dropping only the spatial (PE) condition.
        ear_weights: loss weights of the (left, right) ears.
        diff_weight: weight of an extra MSE on the inter-ear (L − R) velocity difference, the part of the
            target that carries the side (see :func:`spatialgen.models.visaudio.flow.flow_matching_loss`).
        t_mean, t_std: logit-normal time sampling.
        normalizer_batches: training batches used to fit the latent normaliser (0: never fit).
        sample_every_n_epochs: validation sampling period in epochs (0: never).
        sample_batches: validation batches generated and scored per sampling epoch.
        sample_steps, cfg_scale, sample_method, sample_seed: sampler settings (validation and predict).
        predict_with_ema: predict with the EMA weights stored in the checkpoint, when there are any.
        optimizer, lr_scheduler, lr_interval, compile, max_bad_steps: see :class:`SpatialAudioModule`.
    """

    def __init__(
        self,
        config: str = "small",
        config_overrides: dict[str, Any] | None = None,
        codec_name: str = "stft",
        codec_kwargs: dict[str, Any] | None = None,
        codec_pretrained: bool | str = True,
        clip_encoder: str = "tiny",
        sync_encoder: str = "tiny",
        pe_encoder: str = "tiny",
        encoder_kwargs: dict[str, dict[str, Any]] | None = None,
        encoder_pretrained: bool | str = True,
        clip_seconds: float = 8.0,
        peak: float | None = 0.95,
        build_seed: int = 0,
        init_mmaudio: str | None = None,
        label_prompts: bool = False,
        cfg_dropout: float = 0.1,
        spatial_dropout: float = 0.0,
        ear_weights: tuple[float, float] = (1.0, 1.0),
        diff_weight: float = 0.0,
        t_mean: float = 0.0,
        t_std: float = 1.0,
        normalizer_batches: int = 16,
        sample_every_n_epochs: int = 1,
        sample_batches: int = 1,
        sample_steps: int = 25,
        cfg_scale: float = 4.5,
        sample_method: Literal["euler", "heun", "midpoint"] = "euler",
        sample_seed: int = 0,
        predict_with_ema: bool = True,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__(
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_interval=lr_interval,
            compile=compile,
            max_bad_steps=max_bad_steps,
        )
        for name, p in (("cfg_dropout", cfg_dropout), ("spatial_dropout", spatial_dropout)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if len(ear_weights) != 2 or min(ear_weights) < 0:
            raise ValueError(f"ear_weights must be two non-negative numbers (left, right), got {ear_weights}")
        if normalizer_batches < 0 or sample_every_n_epochs < 0 or sample_batches < 0 or sample_steps < 1:
            raise ValueError(
                "normalizer_batches, sample_every_n_epochs and sample_batches must be >= 0 and sample_steps >= 1"
            )
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        build = dict(
            codec_name=codec_name,
            codec_kwargs=codec_kwargs,
            codec_pretrained=codec_pretrained,
            clip_encoder=clip_encoder,
            sync_encoder=sync_encoder,
            pe_encoder=pe_encoder,
            encoder_kwargs=encoder_kwargs,
            encoder_pretrained=encoder_pretrained,
            clip_seconds=clip_seconds,
            peak=peak,
            seed=build_seed,
            sampling={"cfg_scale": cfg_scale, "steps": sample_steps, "method": sample_method},
        )
        try:
            pipe = ViSAudioPipeline.build(config, **build, **(config_overrides or {}))
        except WeightsNotFoundError:
            extra = {"MMAudio network weights (init_mmaudio)": init_mmaudio}
            text = "clip_text_h14_384" if label_prompts else None
            raise all_missing_weights(build, extra, text_encoder=text) from None
        if label_prompts and not pipe.takes_prompt:
            raise ValueError(
                "label_prompts: this ViSAudio network has no text stream (text_len=0); set "
                "config_overrides.text_len (MMAudio: 77) or label_prompts: false"
            )
        self.attach_pipeline(pipe)
        self.label_prompts = bool(label_prompts)
        self.init_mmaudio = init_mmaudio
        self.cfg_dropout, self.spatial_dropout = float(cfg_dropout), float(spatial_dropout)
        self.ear_weights = (float(ear_weights[0]), float(ear_weights[1]))
        if diff_weight < 0:
            raise ValueError(f"diff_weight must be >= 0, got {diff_weight}")
        self.diff_weight = float(diff_weight)
        self.t_mean, self.t_std = float(t_mean), float(t_std)
        self.normalizer_batches = int(normalizer_batches)
        self._init_validation(
            pipe.sample_rate, sample_every_n_epochs, sample_batches, sample_seed, predict_with_ema
        )

    def _init_validation(
        self,
        sample_rate: int,
        sample_every_n_epochs: int,
        sample_batches: int,
        sample_seed: int,
        predict_with_ema: bool,
    ) -> None:
        """The sampling/predict options and the binaural validation metrics (shared with subclasses)."""
        self.sample_every_n_epochs, self.sample_batches = int(sample_every_n_epochs), int(sample_batches)
        self.sample_seed = int(sample_seed)
        self.predict_with_ema = bool(predict_with_ema)
        sr = sample_rate
        self.val_metrics = nn.ModuleDict(
            {
                "ild_error_db": ILDError(sr),
                "itd_error_s": ITDError(sr),
                "lr_confusion": LeftRightConfusion(sr),
                "stft_distance": STFTDistance(sr),
            }
        )
        self._checkpoint_ema: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ inputs
    def batch_latents(self, batch: Mapping[str, Any], normalize: bool = True) -> Tensor:
        """Ground-truth latents ``[B, 2, D, F]`` from ``audio`` (coded here) or cached ``latents``.

        ``normalize=False`` gives the codec-scale latents (what the normaliser is fitted on).
        """
        norm = self.network.normalizer
        with torch.no_grad():
            if "latents" in batch:
                require_full(batch, "latents_mask")
                z = as_binaural(batch["latents"], "latents").to(norm.mean.dtype)
                return norm.normalize(z) if normalize else z
            if "audio" not in batch:
                raise ValueError("ViSAudio batches need 'audio' (raw source) or 'latents' (feature cache)")
            require_full(batch, "audio_mask")
            audio = as_binaural(batch["audio"], "audio")
            z = self.pipeline.encode_audio(audio, int(batch["sample_rate"]), normalize=normalize)
            return z.to(norm.mean.dtype)

    def batch_features(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Role features (``clip``, ``sync``, ``pe``) from cached features or from ``video`` via the frozen encoders."""
        pipe = self.pipeline
        if "features" in batch:
            feats, patches = batch["features"], batch.get("patch_tokens", {})
            fps = batch.get("features_fps", {})
            out = {}
            for role in ROLES:
                name = pipe.roles[role]
                source = patches if role == "pe" else feats
                if name not in source:
                    what = "patch_tokens" if role == "pe" else "features"
                    raise ValueError(f"cached batch has no {what} for encoder {name!r} (role {role!r})")
                want = pipe.encoders[name].output_fps
                if name in fps and not math.isclose(float(fps[name]), want, rel_tol=1e-6):
                    raise ValueError(
                        f"cached {name!r} features are at {fps[name]} fps; the model needs {want}"
                    )
                out[role] = source[name]
            return self._with_text(batch, out)
        if "video" not in batch:
            raise ValueError("ViSAudio batches need 'video' (raw source) or cached 'features'")
        video, fps = batch["video"], float(batch["video_fps"])
        seconds = video.shape[1] / fps
        frames = {name: resample_frames(video, fps, rate) for name, rate in pipe.frame_rates.items()}
        with torch.no_grad():
            return self._with_text(batch, pipe.encode_video(frames, seconds))

    def _with_text(self, batch: Mapping[str, Any], feats: dict[str, Tensor]) -> dict[str, Tensor]:
        """Add the batch's prompt features (``text_features``), or with ``label_prompts`` its clips' labels
        through the text tower, as role ``text``; none: the network's empty-prompt features apply."""
        if "text_features" in batch:
            return {**feats, "text": batch["text_features"]}
        labels = batch.get("labels")
        if self.label_prompts and labels is not None:
            prompts = [x if isinstance(x, str) else ", ".join(x) for x in labels]
            with torch.no_grad():
                text = self.pipeline.encode_text(prompts, len(prompts))
            if text is not None:
                return {**feats, "text": text}
        return feats

    def cfg_masks(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Per-sample CFG dropout masks ``(drop_all, drop_spatial)``."""
        r = torch.rand(2, batch_size, device=self.device)
        return r[0] < self.cfg_dropout, r[1] < self.spatial_dropout

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-ear flow-matching loss (weighted sum) with CFG dropout; logs the per-ear terms."""
        return self._loss(self.batch_latents(batch), self.batch_features(batch))

    def _loss(self, x1: Tensor, feats: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`compute_loss` from latents ``x1`` and role features already taken from the batch."""
        drop, drop_spatial = self.cfg_masks(x1.shape[0]) if self.training else (None, None)
        drop_text = None
        if self.training and "text" in feats:  # independent of the video dropout, as MMAudio
            drop_text = torch.rand(x1.shape[0], device=self.device) < self.cfg_dropout
        cond = self.pipeline.conditions(
            feats, x1.shape[-1], drop=drop, drop_spatial=drop_spatial, drop_text=drop_text
        )
        loss, per_ear = flow_matching_loss(
            self.network,
            x1,
            cond,
            ear_weights=self.ear_weights,
            diff_weight=self.diff_weight,
            t_mean=self.t_mean,
            t_std=self.t_std,
        )
        return loss, {"loss_left": per_ear[0].detach(), "loss_right": per_ear[1].detach()}

    # ------------------------------------------------------------------ fit start
    def setup(self, stage: str) -> None:
        """Load MMAudio weights (``init_mmaudio``) before fitting; compile if asked."""
        if stage == "fit" and self.init_mmaudio:
            from spatialgen.models.visaudio.convert import load_mmaudio_weights

            report = load_mmaudio_weights(self.network, self.init_mmaudio, load_latent_stats=False)
            rank_zero_info(f"ViSAudio init from MMAudio ({self.init_mmaudio}): {report.summary()}")
        super().setup(stage)

    def normalizer_is_identity(self) -> bool:
        """True while the latent normaliser holds its initial identity statistics (never fitted)."""
        norm = self.network.normalizer
        return bool((norm.mean == 0).all() and (norm.std == 1).all())

    @torch.no_grad()
    def fit_normalizer(self, batches: Sequence[Mapping[str, Any]] | Any, max_batches: int) -> int:
        """Set the normaliser from up to ``max_batches`` batches (pooled clips x ears x frames); returns the count.

        Sums are float64 and summed over DDP ranks, so every rank gets the same statistics. A codec that
        samples its posterior in training (``sample_posterior``) is fitted on the posterior *means*, as
        MMAudio's latent statistics are: samples would add the posterior variance to the std.
        """
        norm = self.network.normalizer
        d = norm.mean.numel()
        stats = torch.zeros(3, d, dtype=torch.float64, device=self.device)  # n, sum, sum of squares
        used = 0
        trainer = self._trainer
        for batch in batches:
            if used >= max_batches:
                break
            if trainer is not None:
                batch = trainer.strategy.batch_to_device(batch, self.device)
            with posterior_mean(self.pipeline.codec):
                z = self.batch_latents(batch, normalize=False).to(torch.float64)
            flat = z.transpose(-2, -1).reshape(-1, d)
            stats[0] += flat.shape[0]
            stats[1] += flat.sum(0)
            stats[2] += flat.pow(2).sum(0)
            used += 1
        if trainer is not None and trainer.world_size > 1:
            stats = trainer.strategy.reduce(stats, reduce_op="sum")
        n = stats[0]
        if used == 0 or float(n.min()) < 2:
            raise ValueError("fit_normalizer: no training latents to compute statistics from")
        mean = stats[1] / n
        var = ((stats[2] - n * mean.pow(2)) / (n - 1)).clamp_min(0.0)
        norm.mean.copy_(mean)
        norm.std.copy_(var.sqrt().clamp_min(1e-5))
        return used

    def on_train_start(self) -> None:
        """Fit the latent normaliser on the first training clips (dataset order) unless it is already fitted."""
        if self.normalizer_batches and self.normalizer_is_identity():
            used = self.fit_normalizer(in_order(self.trainer.train_dataloader), self.normalizer_batches)
            rank_zero_info(f"ViSAudio: latent normaliser fitted on {used} training batches")

    # ------------------------------------------------------------------ validation
    def _sampling_epoch(self) -> bool:
        trainer = self._trainer
        if trainer is None or trainer.sanity_checking or not self.sample_every_n_epochs:
            return False
        return (trainer.current_epoch + 1) % self.sample_every_n_epochs == 0

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Validation loss and ``val/visual_gain`` (:meth:`visual_gain`, from the same latents and features);
        on sampling epochs also generate, score and log media for the first batches."""
        x1, feats = self.batch_latents(batch), self.batch_features(batch)
        loss, logs = self._loss(x1, feats)
        self.log_validation_loss(loss, logs, x1.shape[0])
        if x1.shape[0] > 1:
            gain = self.visual_gain(x1, feats, seed=batch_idx)
            self.log("val/visual_gain", gain, sync_dist=True, batch_size=x1.shape[0])
        if self._sampling_epoch() and batch_idx < self.sample_batches:
            self._sample_and_score(batch, batch_idx)
        return loss

    @torch.no_grad()
    def visual_gain(self, x1: Tensor, feats: Mapping[str, Tensor], seed: int = 0) -> Tensor:
        """How much the picture is worth: the flow-matching loss with every clip given the *next* clip's
        visual features (all roles, the batch rolled by one) minus the loss with its own, at the same
        times ``t`` and noise (drawn from ``seed``), so the difference is the pictures' alone.

        ``x1`` and ``feats`` are :meth:`batch_latents` and :meth:`batch_features` of a batch of at least 2
        different clips. About 0 means the network ignores the video; positive means the picture informs
        the audio.
        """
        if x1.shape[0] < 2:
            raise ValueError("visual_gain needs a batch of at least 2 clips (it swaps their pictures)")
        gen = torch.Generator(device=x1.device).manual_seed(int(seed))
        t = logit_normal_t(
            x1.shape[0], mean=self.t_mean, std=self.t_std, generator=gen, device=x1.device, dtype=x1.dtype
        )
        noise = torch.randn(x1.shape, generator=gen, device=x1.device, dtype=x1.dtype)

        def loss(features: Mapping[str, Tensor]) -> Tensor:
            cond = self.pipeline.conditions(features, x1.shape[-1])
            kwargs = {"ear_weights": self.ear_weights, "diff_weight": self.diff_weight}
            return flow_matching_loss(self.network, x1, cond, t=t, noise=noise, **kwargs)[0]

        return loss({k: v.roll(1, 0) for k, v in feats.items()}) - loss(feats)

    @torch.no_grad()
    def _reference_audio(self, batch: Mapping[str, Any], length: int) -> Tensor:
        pipe = self.pipeline
        if "audio" in batch:
            ref = as_binaural(batch["audio"], "audio").float()
        else:
            ref = pipe.codec.decode_latents(as_binaural(batch["latents"], "latents"), length=length).float()
        return joint_peak_normalize(ref, pipe.peak) if pipe.peak is not None else ref

    def _sample_and_score(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        pipe = self.pipeline
        feats = self.batch_features(batch)
        latent_len = self.batch_latents(batch).shape[-1]
        seconds = latent_len * pipe.codec.hop_length / pipe.sample_rate
        if "audio" in batch:
            seconds = batch["audio"].shape[-1] / pipe.sample_rate
        pred = pipe.generate_from_features(feats, seconds=seconds, seed=self.sample_seed + batch_idx)
        ref = self._reference_audio(batch, pred.shape[-1])[..., : pred.shape[-1]]
        for metric in self.val_metrics.values():
            metric.update(pred.to(ref), ref)
        if batch_idx == 0 and self.trainer.is_global_zero:
            ids = [str(i) for i in batch.get("clip_id", ["clip0"])][:1]
            log_samples(self, pred[:1], ref[:1], ids, pipe.sample_rate)

    def on_validation_epoch_end(self) -> None:
        """Log the sampled-audio metrics (only when something was sampled; NaN values are skipped)."""
        for key, metric in self.val_metrics.items():
            if not metric.update_called:
                continue
            if isinstance(metric, LeftRightConfusion) and float(metric.decisive) == 0:
                metric.reset()
                continue
            value = metric.compute()
            metric.reset()
            if bool(torch.isfinite(value)):
                self.log(f"val/{key}", value.float(), sync_dist=False)

    # ------------------------------------------------------------------ predict
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the checkpoint's EMA weights (if any) for prediction."""
        super().on_load_checkpoint(checkpoint)
        try:
            self._checkpoint_ema = ema_state_dict_from_checkpoint(checkpoint)
        except ValueError:
            self._checkpoint_ema = None

    def on_predict_start(self) -> None:
        """Swap in the checkpoint's EMA weights when ``predict_with_ema``."""
        if self.predict_with_ema and self._checkpoint_ema is not None:
            self.network.load_state_dict(self._checkpoint_ema)
            self._checkpoint_ema = None
