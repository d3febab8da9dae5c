"""MMAudio's latent space as continuous codecs: log-mel -> mel VAE -> latents, and back through BigVGAN.

================ ===== ========= ===== ============== =========================== =======================
entry            sr    mel       hop   latents        VAE weights                 vocoder weights
================ ===== ========= ===== ============== =========================== =======================
mmaudio_vae_16k  16000 80, log10 512   20 @ 31.25 Hz  MMAudio ``v1-16.pth``       ``best_netG.pt`` (v1)
mmaudio_vae_44k  44100 128, ln   1024  40 @ 43.07 Hz  MMAudio ``v1-44.pth``       BigVGAN-v2 44k 512x
mmaudio_vae_tiny 16000 80, log10 512   4 @ 31.25 Hz   (random; tests)             (random; tests)
================ ===== ========= ===== ============== =========================== =======================

Frames: the mel hop (256 / 512 samples) times the VAE's 2x downsampling, so 8 s clips give 128000
samples -> 250 latents (16 kHz) and 353280 -> 345 (44.1 kHz), as in MMAudio's ``sequence_config.py``.
Each channel of multi-channel audio is coded as mono (ViSAudio encodes each ear with the mono VAE).

``encode`` / ``encode_latents`` return the posterior mean; :meth:`MMAudioVAECodec.encode_posterior`
returns ``(mean, std)`` so training can draw a fresh posterior sample each step as MMAudio does
(:func:`sample_posterior`); ``sample_posterior=True`` makes ``encode`` itself return a sample.

Weights (``pretrained=True``) come from the Hugging Face Hub through
:func:`spatialgen.weights.resolve_weights`: ``hf://hkchengrex/MMAudio/ext_weights/{v1-16.pth, best_netG.pt, v1-44.pth}`` and
``hf://nvidia/bigvgan_v2_44khz_128band_512x/bigvgan_generator.pt``. ``pretrained=<folder>`` reads the
same file names from a local folder; ``vae_weights=`` / ``vocoder_weights=`` override either file. All
load with ``strict=True``; a missing file raises one line naming every missing file and where to put it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spatialgen.codecs.base import AudioCodec
from spatialgen.codecs.mmaudio_bigvgan import BIGVGAN_CONFIGS, BigVGAN, BigVGANConfig, fold_weight_norm_state
from spatialgen.codecs.mmaudio_mel import MelConfig, MelFrontEnd
from spatialgen.codecs.mmaudio_vae import MelVAE, MelVAEConfig
from spatialgen.codecs.registry import register_codec
from spatialgen.weights import WeightsNotFoundError, resolve_weights

__all__ = ["MMAUDIO_CODECS", "MMAudioCodecSpec", "MMAudioVAECodec", "load_mmaudio_codec", "sample_posterior"]

_MMAUDIO_HUB = "hf://hkchengrex/MMAudio/ext_weights"
_BIGVGAN_V2_HUB = "hf://nvidia/bigvgan_v2_44khz_128band_512x"


@dataclass(frozen=True)
class MMAudioCodecSpec:
    """Mel front end, VAE and vocoder of one entry, and its official weight files (None: none)."""

    mel: MelConfig
    vae: MelVAEConfig
    vocoder: BigVGANConfig
    vae_weights: str | None = None
    vocoder_weights: str | None = None


_MEL_16K = MelConfig(16000, 1024, 1024, 256, 80, 0.0, 8000.0, "log10")
_MEL_44K = MelConfig(44100, 2048, 2048, 512, 128, 0.0, 22050.0, "ln")

#: Registered entries (MMAudio ``get_mel_converter``, ``VAE_16k`` / ``VAE_44k`` and the vocoders).
MMAUDIO_CODECS: dict[str, MMAudioCodecSpec] = {
    "mmaudio_vae_16k": MMAudioCodecSpec(
        _MEL_16K,
        MelVAEConfig(data_dim=80, embed_dim=20, hidden_dim=384),
        BIGVGAN_CONFIGS["v1_16k"],
        f"{_MMAUDIO_HUB}/v1-16.pth",
        f"{_MMAUDIO_HUB}/best_netG.pt",
    ),
    "mmaudio_vae_44k": MMAudioCodecSpec(
        _MEL_44K,
        MelVAEConfig(data_dim=128, embed_dim=40, hidden_dim=512),
        BIGVGAN_CONFIGS["v2_44k"],
        f"{_MMAUDIO_HUB}/v1-44.pth",
        f"{_BIGVGAN_V2_HUB}/bigvgan_generator.pt",
    ),
    # The same code at ~0.3 M parameters (16 kHz mel and tables): unit tests and CPU smoke runs.
    "mmaudio_vae_tiny": MMAudioCodecSpec(
        _MEL_16K,
        MelVAEConfig(data_dim=80, embed_dim=4, hidden_dim=8, ch_mult=(1, 2), num_res_blocks=1),
        BigVGANConfig(
            80,
            (4, 4, 2, 2, 2, 2),
            (8, 8, 4, 4, 4, 4),
            64,
            resblock_kernel_sizes=(3,),
            resblock_dilation_sizes=((1,),),
        ),
    ),
}


def sample_posterior(
    mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw ``mean + std * eps`` from the diagonal Gaussian posterior (MMAudio's training latent)."""
    eps = torch.empty_like(mean).normal_(generator=generator)
    return mean + std * eps


class MMAudioVAECodec(AudioCodec):
    """Waveform <-> MMAudio VAE latents ``[B, C, embed_dim, F]`` (continuous, per channel).

    Args:
        spec: the entry's mel / VAE / vocoder configuration.
        sample_posterior: ``encode`` returns a posterior sample instead of the mean.
        frozen: no gradients and always eval mode (the default; MMAudio never trains these).
    """

    def __init__(
        self, spec: MMAudioCodecSpec, *, sample_posterior: bool = False, frozen: bool = True
    ) -> None:
        mel_hop = spec.mel.hop_length
        if spec.vocoder.hop_length != mel_hop:
            raise ValueError(
                f"vocoder upsamples by {spec.vocoder.hop_length} but the mel hop is {mel_hop}: they must match"
            )
        if spec.vae.data_dim != spec.mel.n_mels or spec.vocoder.num_mels != spec.mel.n_mels:
            raise ValueError(
                f"mel bins disagree: front end {spec.mel.n_mels}, VAE {spec.vae.data_dim}, "
                f"vocoder {spec.vocoder.num_mels}"
            )
        super().__init__(
            sample_rate=spec.mel.sample_rate,
            hop_length=mel_hop * spec.vae.time_downsampling,
            latent_dim=spec.vae.embed_dim,
            frozen=frozen,
        )
        self.spec = spec
        self.sample_posterior = bool(sample_posterior)
        self.mel = MelFrontEnd(spec.mel)
        self.vae = MelVAE(spec.vae)
        self.vocoder = BigVGAN(spec.vocoder)
        if frozen:
            self.freeze()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, sample_posterior={self.sample_posterior}, frozen={self.frozen}"

    # ---------------------------------------------------------------- posterior API
    def encode_posterior(
        self, audio: torch.Tensor, sample_rate: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, std)`` of ``audio [B, C, T]``, each ``[B, C, D, F]`` (``F = num_frames(T)``)."""
        x = self._check_audio(audio, sample_rate)
        b, c, t = x.shape
        flat = self._pad_to_hop(x.reshape(b * c, t))
        mean, std = self.vae.encode(self.mel(flat.to(self._compute_dtype(flat))))
        return (
            mean.to(audio.dtype).reshape(b, c, *mean.shape[1:]),
            std.to(audio.dtype).reshape(b, c, *std.shape[1:]),
        )

    def audio_to_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """MMAudio log-mel ``[N, n_mels, T // mel_hop]`` of mono ``audio [N, T]``."""
        return self.mel(audio)

    def latents_to_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Decoded log-mel ``[N, n_mels, 2F]`` of mono latents ``[N, D, F]``."""
        return self.vae.decode(latents)

    # ---------------------------------------------------------------- hooks
    def _analyze(self, audio: torch.Tensor) -> torch.Tensor:
        mean, std = self.vae.encode(self.mel(audio))
        return sample_posterior(mean, std) if self.sample_posterior else mean

    def _synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vocoder(self.vae.decode(latents)).squeeze(1)


# ------------------------------------------------------------------------------------------ weights
def _read_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise ValueError(f"{path}: not a {what} file readable with weights_only=True ({exc})") from exc
    if isinstance(blob, Mapping) and "generator" in blob and isinstance(blob["generator"], Mapping):
        blob = blob["generator"]  # BigVGAN checkpoints: {"generator": state_dict, ...}
    if not isinstance(blob, Mapping) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path}: expected a {what} state dict (name -> tensor)")
    return dict(blob)


def _load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            problems.append(f"{len(keys)} {label} key(s) {', '.join(keys[:3])}{more}")
    if problems:
        raise ValueError(f"{path}: not the {what} this codec expects: {'; '.join(problems)}")
    module.load_state_dict(dict(state), strict=True)


def _weight_specs(
    name: str,
    spec: MMAudioCodecSpec,
    pretrained: bool | str | os.PathLike,
    vae_weights: Any,
    vocoder_weights: Any,
) -> tuple[str | os.PathLike, str | os.PathLike]:
    if pretrained is True:
        if spec.vae_weights is None or spec.vocoder_weights is None:
            raise ValueError(
                f"codec {name!r} has no official weights: pass pretrained=<folder holding the VAE and vocoder "
                "files> (or vae_weights= and vocoder_weights=) or pretrained=False"
            )
        vae_spec, voc_spec = spec.vae_weights, spec.vocoder_weights
    elif pretrained:
        # A folder (local or hf://owner/repo[/sub]) holding the official file names (16 kHz ones for tests).
        vae_file = (spec.vae_weights or "v1-16.pth").rpartition("/")[2]
        voc_file = (spec.vocoder_weights or "best_netG.pt").rpartition("/")[2]
        text = os.fspath(pretrained)
        if text.startswith(("hf://", "http://", "https://")):
            vae_spec, voc_spec = f"{text.rstrip('/')}/{vae_file}", f"{text.rstrip('/')}/{voc_file}"
        else:
            folder = Path(text).expanduser()
            vae_spec, voc_spec = folder / vae_file, folder / voc_file
    else:
        vae_spec = voc_spec = None
    vae_spec = vae_weights if vae_weights is not None else vae_spec
    voc_spec = vocoder_weights if vocoder_weights is not None else voc_spec
    if vae_spec is None or voc_spec is None:
        raise ValueError(f"codec {name!r}: give both vae_weights= and vocoder_weights=, or pretrained=")
    return vae_spec, voc_spec


def load_mmaudio_codec(
    name: str,
    pretrained: bool | str | os.PathLike = False,
    *,
    vae_weights: str | os.PathLike | None = None,
    vocoder_weights: str | os.PathLike | None = None,
    sample_posterior: bool = False,
    frozen: bool = True,
) -> MMAudioVAECodec:
    """Build the entry ``name`` with random weights or its VAE and vocoder files (strict loading).

    Args:
        name: a key of :data:`MMAUDIO_CODECS`.
        pretrained: False (random init), True (the official Hub files), or a local folder holding the
            official file names (``v1-16.pth`` + ``best_netG.pt``, or ``v1-44.pth`` +
            ``bigvgan_generator.pt``).
        vae_weights, vocoder_weights: weights specs (path, ``hf://``, URL) replacing either file.
        sample_posterior, frozen: see :class:`MMAudioVAECodec`.
    """
    spec = MMAUDIO_CODECS[name]
    random_init = (
        (pretrained is False or pretrained is None) and vae_weights is None and vocoder_weights is None
    )
    # With weights to load, build on the meta device first: no time spent on a random init.
    with torch.device("meta") if not random_init else contextlib.nullcontext():
        codec = MMAudioVAECodec(spec, sample_posterior=sample_posterior, frozen=False)
    codec.name = name
    if not random_init:
        vae_spec, voc_spec = _weight_specs(name, spec, pretrained, vae_weights, vocoder_weights)
        paths, errors = [], []
        for file_spec, what in ((vae_spec, "MMAudio VAE weights"), (voc_spec, "BigVGAN vocoder weights")):
            try:
                paths.append(resolve_weights(file_spec, what=what))
            except WeightsNotFoundError as exc:
                errors.append(str(exc))
        if errors:
            raise WeightsNotFoundError(" | ".join(errors))
        codec.to_empty(device="cpu")
        codec.mel = MelFrontEnd(spec.mel)  # its buffers are computed, not loaded: rebuild off meta
        _load_strict(codec.vae, _read_state(paths[0], "MMAudio VAE"), paths[0], "MMAudio VAE")
        vocoder_state = _read_state(paths[1], "BigVGAN generator")
        try:
            vocoder_state = fold_weight_norm_state(vocoder_state)
        except KeyError as exc:
            raise ValueError(f"{paths[1]}: {exc.args[0]}") from exc
        _load_strict(codec.vocoder, vocoder_state, paths[1], "BigVGAN generator")
    codec.vae.fold_weight_norm()
    if frozen:
        codec.freeze()
    return codec


_OPTIONS = ("vae_weights", "vocoder_weights", "sample_posterior", "frozen")


def _register(name: str) -> None:
    def factory(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> MMAudioVAECodec:
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for codec {name!r}; valid: {', '.join(_OPTIONS)}"
            )
        return load_mmaudio_codec(name, pretrained, **kwargs)

    factory.__doc__ = f"MMAudio mel-VAE latent codec {name!r} (see spatialgen.codecs.mmaudio_codec)."
    register_codec(name)(factory)


for _name in MMAUDIO_CODECS:
    _register(_name)
