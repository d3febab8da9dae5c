"""``CodecModule``: train a DAC-architecture codec on mono crops of every channel of spatial clips.

Each clip's channels (FOA: W, Y, Z, X) are folded into the batch and coded as mono, as ViSAGe codes
FOA. Losses are DAC's: multi-scale log-mel L1, waveform L1, the residual VQ commitment and codebook losses, and
optionally the DAC discriminator (multi-period + multi-resolution STFT) with its least-squares GAN and
feature-matching losses (``dac.nn.loss.GANLoss``). The mel loss is :class:`MultiScaleMelLoss`: DAC's
``MelSpectrogramLoss`` goes through audiotools' ``AudioSignal.mel_spectrogram``, which needs librosa
(not a spatialgen dependency), so the same loss is computed here in torch with librosa's filterbank. Quantizer dropout is DAC's: a fraction of every
batch is coded with a random number ``1..Q`` of codebooks.

Without the GAN the module uses automatic optimisation through :class:`SpatialAudioModule`. With
``adversarial=True`` it switches to manual optimisation with two optimizers (generator: the injected
optimizer on the codec; discriminator: the same factory on the discriminator), stepping both through
``self.optimizers()`` so the non-finite guard still runs on each step.

Validation codes whole clips through the codec API (``encode`` -> ``decode(length=T)``, eval mode, all
codebooks) and logs ``val/mel_distance`` (the mel loss), ``val/si_sdr`` (dB, over channels with signal)
and, for FOA, ``val/doa_error_deg``: the angle between the energy-weighted intensity DOA of the clip and
of its reconstruction. :class:`ExportCodec` writes the trained codec (EMA weights if an ``EMA`` callback
runs) for ``create_codec(name, pretrained=<dir>)`` at the end of training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from spatialgen.codecs import DAC_CONFIGS, DACCodec, create_codec
from spatialgen.codecs.export import CHECKPOINT_KEY, export_dac_state
from spatialgen.metrics.embedders.frontends import slaney_mel_filterbank
from spatialgen.spatial.doa import intensity_doa
from spatialgen.spatial.geometry import direction
from spatialgen.training.base import SpatialAudioModule
from spatialgen.training.ema import EMA

__all__ = ["CodecModule", "ExportCodec", "MultiScaleMelLoss", "doa_error_deg"]


def _dac_losses() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from dac.model.discriminator import Discriminator
        from dac.nn import loss

    return loss, Discriminator


def _signal(audio: torch.Tensor, sample_rate: int) -> Any:
    from audiotools import AudioSignal

    return AudioSignal(audio, sample_rate)


class MultiScaleMelLoss(torch.nn.Module):
    """DAC's mel loss: ``sum_k L1(log10 max(mel_k(estimate), eps), log10 max(mel_k(reference), eps))``.

    Scale ``k`` is a Hann STFT of ``window_lengths[k]`` (hop a quarter of it, centred) projected on
    ``n_mels[k]`` Slaney mel bands from 0 Hz to Nyquist (librosa's filterbank), magnitudes to the power 1:
    the settings of DAC's ``MelSpectrogramLoss`` in its training configs (``pow=1``, ``mag_weight=0``).

    Args:
        sample_rate: audio rate in Hz.
        window_lengths: STFT window per scale.
        n_mels: mel bands per scale.
        clamp_eps: floor of the mel magnitudes before the log.
    """

    def __init__(
        self, sample_rate: int, window_lengths: list[int], n_mels: list[int], clamp_eps: float = 1e-5
    ) -> None:
        super().__init__()
        if len(window_lengths) != len(n_mels) or not window_lengths:
            raise ValueError(
                f"window_lengths and n_mels need one entry per scale, got {window_lengths} and {n_mels}"
            )
        self.window_lengths = [int(w) for w in window_lengths]
        self.clamp_eps = float(clamp_eps)
        for i, (w, m) in enumerate(zip(self.window_lengths, n_mels)):
            fb = slaney_mel_filterbank(sample_rate, w, int(m), 0.0, sample_rate / 2)
            # float64 buffers: cast to the input's dtype in forward, so float64 inputs lose nothing.
            self.register_buffer(f"filters_{i}", fb, persistent=False)
            self.register_buffer(f"window_{i}", torch.hann_window(w, dtype=torch.float64), persistent=False)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The loss of ``estimate`` against ``reference`` (same shape ``[..., T]``), a scalar."""
        if estimate.shape != reference.shape:
            raise ValueError(
                f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ"
            )
        if estimate.shape[-1] <= max(self.window_lengths) // 2:
            raise ValueError(
                f"mel loss: {estimate.shape[-1]} samples are too few for a {max(self.window_lengths)}-sample "
                "window; use longer crops (crop_seconds) or smaller mel_window_lengths"
            )
        both = torch.cat(
            [estimate.reshape(-1, estimate.shape[-1]), reference.reshape(-1, reference.shape[-1])]
        )
        loss = both.new_zeros(())
        for i, w in enumerate(self.window_lengths):
            window = getattr(self, f"window_{i}").to(both.dtype)
            spec = torch.stft(both, w, w // 4, window=window, center=True, return_complex=True).abs()
            mel = getattr(self, f"filters_{i}").to(both.dtype) @ spec
            log_mel = mel.clamp_min(self.clamp_eps).log10()
            est, ref = log_mel.chunk(2)
            loss = loss + torch.nn.functional.l1_loss(est, ref)
        return loss


def doa_error_deg(
    reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, **doa_kwargs: Any
) -> torch.Tensor:
    """Great-circle angle (degrees, ``[B]``) between the intensity DOAs of two FOA clips ``[B, 4, T]``.

    Both DOAs are energy-weighted over the whole clip (:func:`spatialgen.spatial.doa.intensity_doa`),
    i.e. the direction of the dominant source; ``doa_kwargs`` are passed on (``band``, ``n_fft``, ...).
    """
    if reference.ndim != 3 or reference.shape[1] != 4 or estimate.shape != reference.shape:
        raise ValueError(
            f"reference and estimate must both be FOA [B, 4, T] of one shape, got "
            f"{tuple(reference.shape)} and {tuple(estimate.shape)}"
        )
    x = reference.double()
    y = estimate.double()
    u = direction(*intensity_doa(x, sample_rate, **doa_kwargs))
    v = direction(*intensity_doa(y, sample_rate, **doa_kwargs))
    cos = (u * v).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos)).to(reference.dtype)


class CodecModule(SpatialAudioModule):
    """Train a DAC codec (``self.network``, a trainable :class:`DACCodec`) on the channels of clips.

    Args:
        codec_name: DAC registry entry (``dac_synthetic``, ``dac_tiny``, ``dac_16khz``, ...). The names
            differ from the data module's ``codec``/``pretrained`` (on-the-fly features), which
            Lightning merges into the same hyper-parameters.
        codec_kwargs: extra ``create_codec`` kwargs (``dac.DAC`` overrides such as ``decoder_dim``).
        init_weights: initial weights: False (random init), True (official) or a codec folder/file.
        crop_seconds: length of the mono training crops (rounded down to whole hops).
        crops_per_channel: random crops taken from every channel of every clip per step.
        quantizer_dropout: fraction of each batch coded with a random number of codebooks (DAC: 0.5).
        mel_window_lengths: STFT windows of the multi-scale mel loss.
        mel_n_mels: mel bands per window (same length as ``mel_window_lengths``).
        mel_weight, l1_weight, commitment_weight, codebook_weight: loss weights (DAC: 15, -, 0.25, 1).
        adversarial: add DAC's discriminator and GAN + feature-matching losses (manual optimisation).
        gen_weight, feature_weight: GAN generator and feature-matching weights (DAC: 1, 2).
        discriminator_kwargs: ``dac.model.discriminator.Discriminator`` kwargs (sample rate is added).
        grad_clip_generator, grad_clip_discriminator: gradient-norm clips of the adversarial steps
            (DAC: 1000, 10); with ``adversarial=False`` use ``trainer.gradient_clip_val``.
        silence_rms: channels whose RMS is below this are left out of the validation SI-SDR.
        optimizer, lr_scheduler, lr_interval, compile, max_bad_steps: see :class:`SpatialAudioModule`.
    """

    def __init__(
        self,
        codec_name: str = "dac_synthetic",
        codec_kwargs: dict[str, Any] | None = None,
        init_weights: bool | str = False,
        crop_seconds: float = 0.4,
        crops_per_channel: int = 1,
        quantizer_dropout: float = 0.5,
        mel_window_lengths: list[int] | None = None,
        mel_n_mels: list[int] | None = None,
        mel_weight: float = 15.0,
        l1_weight: float = 1.0,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        adversarial: bool = False,
        gen_weight: float = 1.0,
        feature_weight: float = 2.0,
        discriminator_kwargs: dict[str, Any] | None = None,
        grad_clip_generator: float = 1000.0,
        grad_clip_discriminator: float = 10.0,
        silence_rms: float = 1e-4,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, lr_interval, compile, max_bad_steps)
        if not crop_seconds > 0 or crops_per_channel < 1:
            raise ValueError(
                f"crop_seconds must be > 0 and crops_per_channel >= 1, got {crop_seconds}, {crops_per_channel}"
            )
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        if codec_name not in DAC_CONFIGS:
            raise ValueError(f"codec_name must be a DAC entry ({', '.join(DAC_CONFIGS)}), got {codec_name!r}")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        network = create_codec(
            codec_name,
            pretrained=init_weights,
            frozen=False,
            remove_weight_norm=False,
            **(codec_kwargs or {}),
        )
        if not isinstance(network, DACCodec):  # a DAC_CONFIGS name registered over by another factory
            raise ValueError(f"codec {codec_name!r} did not build a DACCodec but {type(network).__name__}")
        # DAC's RVQ reads this attribute in training mode only (eval / encode always use all codebooks).
        network.net.quantizer.quantizer_dropout = float(quantizer_dropout)
        self.network = network
        self.codec_name = codec_name
        self.crop_seconds = float(crop_seconds)
        self.crops_per_channel = int(crops_per_channel)
        self.weights = {
            "mel": mel_weight,
            "l1": l1_weight,
            "commitment": commitment_weight,
            "codebook": codebook_weight,
            "gen": gen_weight,
            "feature": feature_weight,
        }
        self.silence_rms = float(silence_rms)
        self.grad_clips = (float(grad_clip_generator), float(grad_clip_discriminator))
        self.mel_loss = MultiScaleMelLoss(
            network.sample_rate, list(mel_window_lengths or [64, 256, 1024]), list(mel_n_mels or [10, 40, 80])
        )
        self.adversarial = bool(adversarial)
        self.automatic_optimization = not self.adversarial
        if self.adversarial:
            loss, discriminator_cls = _dac_losses()
            kwargs = {"sample_rate": network.sample_rate, **(discriminator_kwargs or {})}
            self.discriminator = discriminator_cls(**kwargs)
            self.gan_loss = loss.GANLoss(self.discriminator)

    # ---- data ----------------------------------------------------------------------------------
    @property
    def crop_samples(self) -> int:
        """Training crop length in samples: ``crop_seconds`` rounded down to whole hops (>= one hop)."""
        hop = self.network.hop_length
        return max(hop, int(self.crop_seconds * self.network.sample_rate) // hop * hop)

    def _audio(self, batch: Mapping[str, Any]) -> torch.Tensor:
        audio = batch["audio"]
        rate = batch.get("sample_rate")
        rate = int(rate.reshape(-1)[0]) if isinstance(rate, torch.Tensor) else rate
        if isinstance(rate, list | tuple):
            rate = rate[0]
        return self.network._check_audio(audio, None if rate is None else int(rate))

    def mono_crops(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Random crops ``[N, 1, crop_samples]`` from every channel of ``batch["audio"] [B, C, S]``.

        ``N = B * C * crops_per_channel``; offsets are drawn per crop inside each clip's real samples
        (``audio_mask``). Clips shorter than a crop are zero-padded.
        """
        audio = self._audio(batch)
        b, c, s = audio.shape
        length = self.crop_samples
        if s < length:
            audio = torch.nn.functional.pad(audio, (0, length - s))
        valid = batch.get("audio_mask")
        valid = valid.sum(-1) if isinstance(valid, torch.Tensor) else torch.full((b,), s)
        span = (valid.to(audio.device) - length + 1).clamp_min(1)  # admissible start positions per clip
        k = self.crops_per_channel
        rand = torch.rand(b, c * k, device=audio.device)
        starts = (rand * span[:, None]).long()  # [B, C*k]
        index = starts[..., None] + torch.arange(length, device=audio.device)  # [B, C*k, L]
        source = audio.repeat_interleave(k, dim=1)
        return source.gather(-1, index).reshape(b * c * k, 1, length)

    # ---- losses --------------------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        out = self.network.net(x)
        y = out["audio"]
        n = min(y.shape[-1], x.shape[-1])  # stride-5 decoders return a few samples less
        return x[..., :n], y[..., :n], out

    def _reconstruction_losses(
        self, x: torch.Tensor, y: torch.Tensor, out: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logs = {
            "mel": self.mel_loss(y, x),
            "l1": torch.nn.functional.l1_loss(y, x),
            "commitment": out["vq/commitment_loss"].mean(),
            "codebook": out["vq/codebook_loss"].mean(),
        }
        loss = sum(self.weights[k] * v for k, v in logs.items())
        return loss, logs

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted mel + L1 + VQ losses of the codec on random mono crops of the batch."""
        x, y, out = self._reconstruct(self.mono_crops(batch))
        return self._reconstruction_losses(x, y, out)

    # ---- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """The base optimizer for the codec; with the GAN, a second one (same factory) for the discriminator."""
        generator = super().configure_optimizers()
        if not self.adversarial:
            return generator
        params = [p for p in self.discriminator.parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            opt_d = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        else:
            opt_d = self.optimizer_factory(params)
        disc: dict[str, Any] = {"optimizer": opt_d}
        if self.lr_scheduler_factory is not None:
            disc["lr_scheduler"] = {
                "scheduler": self.lr_scheduler_factory(opt_d),
                "interval": self.lr_interval,
            }
        gen = generator if isinstance(generator, dict) else {"optimizer": generator}
        return [gen, disc]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Automatic optimisation without the GAN; one discriminator + one generator step with it."""
        if not self.adversarial:
            return super().training_step(batch, batch_idx)
        opt_g, opt_d = self.optimizers()
        sr = self.network.sample_rate
        x, y, out = self._reconstruct(self.mono_crops(batch))
        real, fake = _signal(x, sr), _signal(y, sr)

        loss_d = self.gan_loss.discriminator_loss(fake, real)  # detaches the fake internally
        self.guard.observe(loss_d, batch)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        self.clip_gradients(opt_d, gradient_clip_val=self.grad_clips[1], gradient_clip_algorithm="norm")
        opt_d.step()

        loss, logs = self._reconstruction_losses(x, y, out)
        logs["gen"], logs["feature"] = self.gan_loss.generator_loss(fake, real)
        loss = loss + self.weights["gen"] * logs["gen"] + self.weights["feature"] * logs["feature"]
        self.guard.observe(loss, batch)
        opt_g.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt_g, gradient_clip_val=self.grad_clips[0], gradient_clip_algorithm="norm")
        opt_g.step()
        schedulers = self.lr_schedulers()
        if self.lr_interval == "step" and schedulers is not None:
            for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
                scheduler.step()

        size = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/disc", loss_d, batch_size=size)
        for key, value in logs.items():
            self.log(f"train/{key}", value, batch_size=size)
        return loss

    def on_train_epoch_end(self) -> None:
        """Epoch-interval schedulers under manual optimisation."""
        if self.adversarial and self.lr_interval == "epoch":
            schedulers = self.lr_schedulers()
            for scheduler in (
                schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
            ):
                scheduler.step()

    # ---- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``decode(encode(audio), length=T)`` with all codebooks: exactly what a user of the codec gets."""
        codes = self.network.encode(audio, sample_rate)
        return self.network.decode(codes, length=audio.shape[-1])

    def reconstruction_metrics(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``mel_distance``, ``si_sdr`` (dB) and, for FOA, ``doa_error_deg`` of whole-clip reconstructions."""
        audio = self._audio(batch)
        sr = self.network.sample_rate
        recon = self.reconstruct(audio)
        mask = batch.get("audio_mask")
        if isinstance(mask, torch.Tensor):
            recon = recon * mask[:, None, :].to(recon.dtype)
        flat_x, flat_y = audio.flatten(0, 1), recon.flatten(0, 1)
        metrics = {"mel_distance": self.mel_loss(flat_y, flat_x)}
        loud = flat_x.pow(2).mean(-1).sqrt() > self.silence_rms
        sdr = scale_invariant_signal_distortion_ratio(flat_y[loud], flat_x[loud], zero_mean=True)
        metrics["si_sdr"] = sdr.mean() if loud.any() else torch.tensor(math.nan, device=audio.device)
        if batch.get("audio_format", "foa") in ("foa", ["foa"] * audio.shape[0]) and audio.shape[1] == 4:
            metrics["doa_error_deg"] = doa_error_deg(audio, recon, sr).mean()
        return metrics

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Log the reconstruction metrics; ``val/loss`` is the mel distance (lower is better)."""
        metrics = self.reconstruction_metrics(batch)
        size = int(batch["audio"].shape[0])
        self.log("val/loss", metrics["mel_distance"], prog_bar=True, sync_dist=True, batch_size=size)
        for key, value in metrics.items():
            self.log(f"val/{key}", value, prog_bar=key != "mel_distance", sync_dist=True, batch_size=size)
        return metrics["mel_distance"]

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also store the codec's constructor kwargs, so ``spatialgen.codecs.export`` needs no training code."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = {
            "codec": self.codec_name,
            "dac_kwargs": dict(self.network.dac_kwargs),
            "n_quantizers": self.network.num_codebooks,
            "attribute": "network",
        }


class ExportCodec(Callback):
    """At the end of ``fit``, write the trained codec to ``dirpath`` (``save_dac_codec`` format).

    The EMA weights are exported when an :class:`~spatialgen.training.ema.EMA` callback tracks the
    codec (``use_ema``). Load the result with ``create_codec(<codec name>, pretrained=dirpath)``.

    Args:
        dirpath: output folder (``model.safetensors`` + ``config.json``).
        use_ema: prefer the EMA weights when available.
    """

    def __init__(self, dirpath: str, use_ema: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.use_ema = use_ema

    def state(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        """The codec's state dict to export (raw weights overlaid with the EMA ones if used)."""
        if not isinstance(pl_module, CodecModule):
            raise ValueError(f"ExportCodec needs a CodecModule, got {type(pl_module).__name__}")
        state = {k: v.detach().clone() for k, v in pl_module.network.state_dict().items()}
        emas = [cb for cb in trainer.callbacks if isinstance(cb, EMA) and cb.attribute == "network"]
        if self.use_ema and emas and emas[0].ema:
            ema = emas[0].state_dict()["ema"]  # handles a swapped-in EMA too
            state.update({k: v.to(state[k].dtype) for k, v in ema.items()})
        return state

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Export on global rank 0."""
        state = self.state(trainer, pl_module)
        if trainer.is_global_zero:
            export_dac_state(
                state,
                pl_module.network.dac_kwargs,
                self.dirpath,
                n_quantizers=pl_module.network.num_codebooks,
            )
