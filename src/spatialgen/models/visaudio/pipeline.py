"""``ViSAudioPipeline``: silent video -> binaural ``[L, R]`` audio (network + mono codec + visual encoders).

The pipeline bundles the three visual *roles* of the conditional spacetime module with their encoders:

- ``clip``: semantic per-frame features (MMAudio: ``clip_vit_h14_384`` at 8 fps);
- ``sync``: Synchformer tokens (``synchformer`` at 25 fps, 16-frame segments, hop 8, 8 tokens each);
- ``pe``: Perception Encoder patch tokens (``pe_spatial`` at 8 fps).

Any registered encoder may fill a role (``tiny`` fills all three in the CPU configs: its per-frame
global features serve as ``clip`` and as one-token-per-frame ``sync`` segments, its patch tokens as
``pe``). Encoders are held once per registry name, so one ``tiny`` can serve every role; video comes in
per encoder *name* at :attr:`ViSAudioPipeline.frame_rates`. The network's widths, rates, patch grid and
latent size are derived from the encoders and the codec (:func:`derive_network_config`), so a named
size (``S_16k``, ``small``, ...) only fixes the transformer.

Saving: :meth:`ViSAudioPipeline.pipeline_config` is JSON (network config, codec and encoder specs,
roles, window length, sampling defaults); :meth:`ViSAudioPipeline.export_state_dict` holds the weights a
hub export must store: the network (with the latent normaliser buffers) and every part built without
published weights (e.g. ``tiny`` encoders trained or randomly initialised by us). Parts with published
weights are referenced by name with ``pretrained=True`` and rebuilt from their registries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spatialgen.codecs.base import AudioCodec
from spatialgen.encoders import VisualEncoder
from spatialgen.encoders.text import prompt_features
from spatialgen.models.pipeline import GenerationPipeline, register_pipeline
from spatialgen.models.sampling import SamplingOption
from spatialgen.models.visaudio.conditioning import Conditions
from spatialgen.models.visaudio.config import ViSAudioConfig, visaudio_config
from spatialgen.models.visaudio.flow import generate as flow_generate
from spatialgen.models.visaudio.latents import BinauralLatentCoder
from spatialgen.models.visaudio.network import ViSAudioNet
from spatialgen.models.visaudio.parts import ROLES, build_part, derive_network_config
from spatialgen.models.windows import resample_frames, row_seeds

__all__ = [
    "ROLES",
    "ViSAudioPipeline",
    "build_part",
    "derive_network_config",
    "resample_frames",
]

_DEFAULT_SAMPLING = {"cfg_scale": 4.5, "steps": 25, "method": "euler"}


@register_pipeline
class ViSAudioPipeline(GenerationPipeline):
    """ViSAudio inference bundle: :class:`ViSAudioNet` + mono codec + visual encoders + config.

    Args:
        network: the velocity network (its config must match the codec and encoders).
        codec: the mono codec coding each ear.
        encoders: encoders by registry name.
        roles: encoder name per role (``{"clip": ..., "sync": ..., "pe": ...}``).
        clip_seconds: generation window in seconds.
        specs: build specs, ``{"codec": {...}, "encoders": {name: {...}}}`` with ``kwargs``/``pretrained``
            (and ``name`` for the codec), as stored in :meth:`pipeline_config`.
        peak: joint peak normalisation of the ground-truth audio before encoding (training; None: off).
        seed: seed the randomly initialised parts were built with.
        sampling: default ``cfg_scale``/``steps``/``method`` of :meth:`generate`.

    Build one with :meth:`build` (names and a named size) or :meth:`from_pipeline_config`.
    """

    kind = "visaudio"
    output_format = "binaural"

    def __init__(
        self,
        network: ViSAudioNet,
        codec: AudioCodec,
        encoders: Mapping[str, VisualEncoder],
        roles: Mapping[str, str],
        *,
        clip_seconds: float,
        specs: Mapping[str, Any],
        peak: float | None = 0.95,
        seed: int = 0,
        sampling: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if set(roles) != set(ROLES) or any(n not in encoders for n in roles.values()):
            raise ValueError(
                f"roles must map {ROLES} to encoder names in {sorted(encoders)}, got {dict(roles)}"
            )
        if network.config.latent_dim != codec.latent_dim:
            raise ValueError(
                f"network latent_dim {network.config.latent_dim} != codec latent_dim {codec.latent_dim}"
            )
        if clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be > 0, got {clip_seconds}")
        self.network = network
        self.codec = codec
        self.encoders = nn.ModuleDict(dict(encoders))
        self.roles = dict(roles)
        self._clip_seconds = float(clip_seconds)
        self.specs = {
            "codec": dict(specs["codec"]),
            "encoders": {k: dict(v) for k, v in specs["encoders"].items()},
        }
        self.peak = peak
        self.seed = int(seed)
        self.sampling = {**_DEFAULT_SAMPLING, **dict(sampling or {})}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        config: str | ViSAudioConfig = "small",
        *,
        codec_name: str = "stft",
        codec_kwargs: Mapping[str, Any] | None = None,
        codec_pretrained: bool | str = True,
        clip_encoder: str = "tiny",
        sync_encoder: str = "tiny",
        pe_encoder: str = "tiny",
        encoder_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        encoder_pretrained: bool | str = True,
        clip_seconds: float = 8.0,
        peak: float | None = 0.95,
        seed: int = 0,
        sampling: Mapping[str, Any] | None = None,
        **config_overrides: Any,
    ) -> ViSAudioPipeline:
        """Build codec and encoders from their registries and a network of size ``config``.

        Args:
            config: a named size (``S_16k``, ``small``, ``tiny``, ...) or a config; its latent/visual
                widths and rates are replaced by the parts' (:func:`derive_network_config`).
            codec_name, codec_kwargs, codec_pretrained: the mono codec (registry name, options, weights).
            clip_encoder, sync_encoder, pe_encoder: registry name per role (the same name shares one encoder).
            encoder_kwargs: options per encoder name (e.g. ``{"tiny": {"embed_dim": 32}}``).
            encoder_pretrained: load the encoders' published weights (True), random init from ``seed``
                (False) or a weights file (then stored with the export, recorded as not published).
            clip_seconds: generation window (and nominal training clip length) in seconds.
            peak, seed, sampling: see the class.
            config_overrides: further :class:`ViSAudioConfig` fields (e.g. ``sync_align="index"``).
        """
        names = dict(zip(ROLES, (clip_encoder, sync_encoder, pe_encoder), strict=True))
        kwargs = {n: dict((encoder_kwargs or {}).get(n, {})) for n in set(names.values())}
        if names["pe"] in kwargs:  # the pe role needs patch tokens; asking for them changes no weight
            kwargs[names["pe"]].setdefault("patch_tokens", True)
        specs = {
            "codec": {"name": codec_name, "kwargs": dict(codec_kwargs or {}), "pretrained": codec_pretrained},
            "encoders": {n: {"kwargs": kw, "pretrained": encoder_pretrained} for n, kw in kwargs.items()},
        }
        codec_m, encoders = cls._build_parts(specs, seed)
        # A part loaded from a local file is recorded as not published: its weights travel with the
        # export (export_state_dict), and a rebuild must not look for a file that only exists here.
        for spec in (specs["codec"], *specs["encoders"].values()):
            spec["pretrained"] = spec["pretrained"] is True
        base = visaudio_config(config) if isinstance(config, str) else config
        base = base.replace(**config_overrides) if config_overrides else base
        net_cfg = derive_network_config(
            base, codec_m, {r: encoders[n] for r, n in names.items()}, clip_seconds
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = ViSAudioNet(net_cfg)
        return cls(
            network,
            codec_m,
            encoders,
            names,
            clip_seconds=clip_seconds,
            specs=specs,
            peak=peak,
            seed=seed,
            sampling=sampling,
        )

    @staticmethod
    def _build_parts(specs: Mapping[str, Any], seed: int) -> tuple[AudioCodec, dict[str, VisualEncoder]]:
        c = specs["codec"]
        codec = build_part("codec", c["name"], c.get("kwargs"), c.get("pretrained", True), seed)
        encoders = {
            n: build_part("encoder", n, s.get("kwargs"), s.get("pretrained", True), seed)
            for n, s in specs["encoders"].items()
        }
        return codec, encoders

    def pipeline_config(self) -> dict[str, Any]:
        """JSON-able architecture description (weights: :meth:`export_state_dict`)."""
        return {
            "kind": self.kind,
            "network": self.network.config.to_dict(),
            "codec": dict(self.specs["codec"]),
            "encoders": {n: dict(s) for n, s in self.specs["encoders"].items()},
            "roles": dict(self.roles),
            "clip_seconds": self._clip_seconds,
            "peak": self.peak,
            "seed": self.seed,
            "sampling": dict(self.sampling),
        }

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> ViSAudioPipeline:
        """Rebuild the architecture of :meth:`pipeline_config` (published towers load their weights)."""
        if config.get("kind") != cls.kind:
            raise ValueError(f"not a ViSAudio pipeline config: kind={config.get('kind')!r}")
        missing = [k for k in ("network", "codec", "encoders", "roles", "clip_seconds") if k not in config]
        if missing:
            raise ValueError(f"ViSAudio pipeline config lacks {missing}; it must come from pipeline_config()")
        seed = int(config.get("seed", 0))
        codec, encoders = cls._build_parts(config, seed)
        net_cfg = ViSAudioConfig.from_dict(dict(config["network"]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = ViSAudioNet(net_cfg)
        return cls(
            network,
            codec,
            encoders,
            config["roles"],
            clip_seconds=float(config["clip_seconds"]),
            specs={"codec": config["codec"], "encoders": config["encoders"]},
            peak=config.get("peak", 0.95),
            seed=seed,
            sampling=config.get("sampling"),
        )

    def export_state_dict(self) -> dict[str, Tensor]:
        """Weights a hub export stores: the network (incl. normaliser) and parts without published weights."""
        keep = ["network."]
        keep += [
            f"encoders.{n}." for n, s in self.specs["encoders"].items() if s.get("pretrained") is not True
        ]
        if self.specs["codec"].get("pretrained") is not True:
            keep.append("codec.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(tuple(keep))}

    def load_export_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load :meth:`export_state_dict` output (strict on the stored parts)."""
        expected = set(self.export_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"ViSAudio weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.load_state_dict(dict(state), strict=False)

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Output sample rate (the codec's)."""
        return self.codec.sample_rate

    @property
    def clip_seconds(self) -> float:
        """Generation window in seconds."""
        return self._clip_seconds

    @property
    def frame_rates(self) -> dict[str, float]:
        """Input frame rate per encoder name."""
        return {n: float(e.fps) for n, e in self.encoders.items()}

    @property
    def takes_prompt(self) -> bool:
        """True when the network has a text stream (``text_len > 0``, e.g. every MMAudio-initialised size)."""
        return bool(self.network.config.text_len)

    @property
    def sampling_options(self) -> dict[str, SamplingOption]:
        """The keyword options of :meth:`generate` (``spatialgen generate --sample NAME=VALUE``)."""
        return {
            "cfg_scale": SamplingOption(float, self.sampling["cfg_scale"], "guidance scale (1 disables CFG)"),
            "steps": SamplingOption(int, self.sampling["steps"], "ODE steps", minimum=1),
            "method": SamplingOption(
                str, self.sampling["method"], "ODE solver", choices=("euler", "heun", "midpoint")
            ),
            "sequential": SamplingOption(bool, False, "left-then-right ear updates within each step"),
        }

    def num_samples(self, seconds: float | None = None) -> int:
        """Audio samples of ``seconds`` (default: the window)."""
        return round((seconds or self._clip_seconds) * self.sample_rate)

    def latent_len(self, seconds: float | None = None) -> int:
        """Latent frames the codec makes for ``seconds`` of audio."""
        return self.codec.num_frames(self.num_samples(seconds))

    # ------------------------------------------------------------------ audio latents
    def encode_audio(self, audio: Tensor, sample_rate: int | None = None, normalize: bool = True) -> Tensor:
        """``[B, 2, T]`` binaural audio -> ``[B, 2, D, F]`` latents (joint peak, shared normaliser)."""
        coder = BinauralLatentCoder(self.codec, peak=self.peak, normalizer=self.network.normalizer)
        return coder.encode(audio, sample_rate, normalize=normalize)

    # ------------------------------------------------------------------ conditioning
    def encode_video(self, frames: Mapping[str, Tensor], seconds: float | None = None) -> dict[str, Tensor]:
        """Role features ``{"clip": [B,T,D], "sync": [B,N,D], "pe": [B,T,P,D]}`` from frames per encoder name.

        Each video is cropped to the first ``⌊seconds · fps⌋`` frames (default: the window).
        """
        seconds = seconds or self._clip_seconds
        outputs = {}
        for name in dict.fromkeys(self.roles.values()):
            if name not in frames:
                raise ValueError(
                    f"frames for encoder {name!r} missing; give video at {self.frame_rates[name]:g} fps "
                    f"under that key (frame_rates: {self.frame_rates})"
                )
            enc = self.encoders[name]
            video = frames[name]
            need = math.floor(seconds * enc.fps + 1e-6)
            if video.ndim != 5 or video.shape[1] < need:
                raise ValueError(
                    f"frames[{name!r}] must be [B, T>={need}, 3, H, W] ({seconds:g} s at {enc.fps:g} fps), "
                    f"got {tuple(video.shape)}"
                )
            outputs[name] = enc(video[:, :need], patch_tokens=name == self.roles["pe"])
        return {
            "clip": outputs[self.roles["clip"]].global_features,
            "sync": outputs[self.roles["sync"]].global_features,
            "pe": outputs[self.roles["pe"]].patch_tokens,
        }

    def conditions(
        self,
        features: Mapping[str, Tensor],
        latent_len: int,
        *,
        drop: Tensor | None = None,
        drop_spatial: Tensor | None = None,
        drop_text: Tensor | None = None,
    ) -> Conditions:
        """Network conditions for role ``features`` (see :meth:`ViSAudioNet.prepare_conditions`); an
        optional ``"text"`` entry holds prompt features ``[B, L, text_dim]`` (absent: the empty prompt)."""
        dtype = next(self.network.parameters()).dtype
        clip, sync, pe = (features[r].to(dtype) for r in ROLES)
        text = features.get("text")
        return self.network.prepare_conditions(
            clip,
            sync,
            pe,
            latent_len=latent_len,
            drop=drop,
            drop_spatial=drop_spatial,
            text=None if text is None else text.to(dtype),
            drop_text=drop_text,
        )

    def encode_text(self, prompt: str | list[str] | None, batch_size: int) -> Tensor | None:
        """Prompt features ``[B, L, text_dim]`` from MMAudio's CLIP text tower (``clip_text_h14_384``), or
        None for no prompt (the network's frozen empty-prompt features); see :func:`prompt_features`."""
        if prompt is not None and not self.network.config.text_len:
            raise ValueError(
                "prompt: this ViSAudio network has no text stream (text_len=0); pass prompt=None"
            )
        param = next(self.network.parameters())
        text = prompt_features(prompt, batch_size, width=self.network.config.text_dim, device=param.device)
        return None if text is None else text.to(param.dtype)

    # ------------------------------------------------------------------ generation
    def initial_noise(self, batch: int, latent_len: int, seed: int | Sequence[int] | None) -> Tensor:
        """Initial noise ``[B, 2, D, F]``: row ``i`` from its own CPU generator (``row_seeds``), so a row's
        noise, and the audio made from it, do not depend on the batch (and match across devices)."""
        param = next(self.network.parameters())
        shape = (2, self.network.config.latent_dim, latent_len)
        seeds = row_seeds(seed, batch)
        if seeds is None:
            return torch.randn((batch, *shape), dtype=param.dtype).to(param.device)
        rows = [
            torch.randn(shape, generator=torch.Generator().manual_seed(s), dtype=param.dtype) for s in seeds
        ]
        return torch.stack(rows).to(param.device)

    @torch.no_grad()
    def generate_from_features(
        self,
        features: Mapping[str, Tensor],
        *,
        seconds: float | None = None,
        seed: int | Sequence[int] | None = None,
        cfg_scale: float | None = None,
        steps: int | None = None,
        method: str | None = None,
        sequential: bool = False,
        prompt: str | list[str] | None = None,
    ) -> Tensor:
        """Binaural audio ``[B, 2, seconds · sample_rate]`` from role features (sampling as :meth:`generate`)."""
        n_samples = self.num_samples(seconds)
        latent_len = self.codec.num_frames(n_samples)
        if prompt is not None:
            text = self.encode_text(prompt, features[ROLES[0]].shape[0])
            features = dict(features) if text is None else {**features, "text": text}
        cond = self.conditions(features, latent_len)
        scale = float(self.sampling["cfg_scale"] if cfg_scale is None else cfg_scale)
        uncond = None
        if scale > 1.0:  # MMAudio: no guidance for w <= 1
            drop = torch.ones(cond.batch_size, dtype=torch.bool, device=cond.visual.device)
            uncond = self.conditions(features, latent_len, drop=drop, drop_text=drop)
        z = flow_generate(
            self.network,
            cond,
            uncond=uncond,
            cfg_scale=scale,
            steps=int(self.sampling["steps"] if steps is None else steps),
            method=method or self.sampling["method"],
            sequential=sequential,
            noise=self.initial_noise(cond.batch_size, latent_len, seed),
        )
        return self.codec.decode_latents(z.to(self.codec._compute_dtype(z)), length=n_samples).float()

    @torch.no_grad()
    def generate(
        self,
        frames: Mapping[str, Tensor],
        *,
        camera_direction: Tensor | None = None,
        seed: int | Sequence[int] | None = None,
        cfg_scale: float | None = None,
        steps: int | None = None,
        method: str | None = None,
        sequential: bool = False,
        seconds: float | None = None,
        prompt: str | list[str] | None = None,
    ) -> Tensor:
        """Binaural ``[B, 2, T]`` (``[L, R]``, camera frame) for one window of video.

        Args:
            frames: uint8 ``[B, T, 3, H, W]`` per encoder name at :attr:`frame_rates`.
            camera_direction: not used by ViSAudio (binaural audio is heard from the camera); must be None.
            seed: seeds the initial noise: one seed per row, or an int (rows ``window_seed(seed, i)``).
            cfg_scale: guidance strength (default 4.5; 1 disables CFG).
            steps: ODE steps (default 25); method: ``euler`` (default), ``heun`` or ``midpoint``.
            sequential: left-then-right (Gauss-Seidel) ear updates within each step.
            seconds: window length (default :attr:`clip_seconds`); T = ``round(seconds · sample_rate)``.
            prompt: optional text prompt (one string for the batch or one per clip), encoded by MMAudio's
                CLIP text tower (:meth:`encode_text`); None or "" is the empty prompt. CFG's null pass drops it.
        """
        if camera_direction is not None:
            raise ValueError(
                "ViSAudio takes no camera_direction: binaural audio is generated in the camera frame"
            )
        features = self.encode_video(frames, seconds)
        return self.generate_from_features(
            features,
            seconds=seconds,
            seed=seed,
            cfg_scale=cfg_scale,
            steps=steps,
            method=method,
            sequential=sequential,
            prompt=prompt,
        )
