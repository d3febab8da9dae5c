"""``ViSAGePipeline``: video -> AmbiX FOA with the ViSAGe network, its codec and its visual encoder.

``generate(frames)`` runs the visual encoder on one window of video, computes ViSAGe's patch energy
map from the encoder's patch tokens (:func:`visual_energy_map`; jaeyeonkim99/visage ``infer_clip_energy.py``), turns the
camera direction into the direction input, samples codes with (batched) classifier-free guidance and
decodes each FOA channel with the codec into ``[B, 4, T]`` AmbiX ``[W, Y, Z, X]``.

What is in ``state_dict`` (the hub stores ``config.json`` = :meth:`ViSAGePipeline.pipeline_config` plus
the ``state_dict``):

* ``network.*``: always (the trained ViSAGe network);
* ``codec.*`` / ``encoder.*``: only for a part built *without* its official weights (``pretrained`` not
  ``True``: a randomly initialised ``tiny`` encoder or ``dac_synthetic`` codec, or one loaded from a
  local file we trained). Such a part is recorded in the config as ``pretrained: false`` and its weights
  travel in the state dict. A part built with ``pretrained=True`` (official CLIP, official DAC) is
  referenced by name only and rebuilt from its registry by :meth:`ViSAGePipeline.from_pipeline_config`;
  ``load_state_dict`` then keeps its current weights for the missing keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spatialgen.codecs import DiscreteAudioCodec, create_codec
from spatialgen.encoders import VisualEncoder, create_encoder
from spatialgen.models.pipeline import LONG_VIDEO_STATE, GenerationPipeline, register_pipeline
from spatialgen.models.sampling import SamplingOption
from spatialgen.models.visage.conditions import camera_direction_vector, visual_energy_map
from spatialgen.models.visage.config import ViSAGeConfig, get_config
from spatialgen.models.visage.frame_features import FrameFeatures
from spatialgen.models.visage.generation import Guidance, codes_to_audio, generate
from spatialgen.models.visage.model import ViSAGe
from spatialgen.models.windows import row_seeds

__all__ = ["ViSAGePipeline", "camera_direction_vector", "check_parts", "visual_energy_map"]

Pretrained = bool | str | os.PathLike


def check_parts(
    config: ViSAGeConfig, codec: DiscreteAudioCodec, encoder: VisualEncoder, encoder_name: str
) -> None:
    """Raise a ValueError naming the mismatch unless ``codec`` and ``encoder`` fit the network ``config``."""
    cfg, enc = config, encoder
    if codec.num_codebooks is None or codec.num_codebooks < cfg.num_codebooks:
        raise ValueError(
            f"codec {cfg.codec!r} gives {codec.num_codebooks} codebooks; the network needs {cfg.num_codebooks}"
        )
    if (codec.codebook_size, codec.sample_rate, codec.hop_length) != (
        cfg.codebook_size,
        cfg.codec_sample_rate,
        cfg.codec_hop_length,
    ):
        raise ValueError(
            f"codec {cfg.codec!r} (codebook {codec.codebook_size}, {codec.sample_rate} Hz, hop "
            f"{codec.hop_length}) does not match the network config (codebook {cfg.codebook_size}, "
            f"{cfg.codec_sample_rate} Hz, hop {cfg.codec_hop_length})"
        )
    if enc.embed_dim != cfg.d_visual:
        raise ValueError(
            f"encoder {encoder_name!r} gives {enc.embed_dim}-d features; the network takes d_visual={cfg.d_visual}"
        )
    if abs(float(enc.output_fps) - cfg.visual_fps) > 1e-6:
        raise ValueError(
            f"encoder {encoder_name!r} runs at {enc.output_fps} fps; the network needs visual_fps={cfg.visual_fps}"
        )
    if cfg.energy_map_dim:
        grid = enc.patch_grid
        if grid is None or grid[0] * grid[1] != cfg.energy_map_dim:
            raise ValueError(
                f"encoder {encoder_name!r} has patch grid {grid}; the energy map needs "
                f"{cfg.energy_map_dim} patches (set the encoder's input size or energy_map_dim)"
            )


def _part_spec(name: str, kwargs: Mapping[str, Any] | None, pretrained: Pretrained) -> dict[str, Any]:
    return {"name": name, "kwargs": dict(kwargs or {}), "pretrained": pretrained is True}


@register_pipeline
class ViSAGePipeline(GenerationPipeline):
    """ViSAGe network + codec + visual encoder: video window -> AmbiX FOA ``[B, 4, T]``.

    Args:
        config: network architecture (a :class:`ViSAGeConfig` or a named config); must be FOA
            (``num_channels = 4``). Its ``codec`` names the codec.
        encoder: visual encoder registry name (``clip_vit_b32`` for the released model).
        encoder_kwargs: encoder options (e.g. ``tiny``'s ``embed_dim``/``input_size``/``fps``).
        encoder_pretrained: True (official weights; not stored in ``state_dict``), False (random; stored)
            or a weights path (loaded now; stored).
        codec_kwargs: codec options besides ``n_quantizers`` (set from the config).
        codec_pretrained: as ``encoder_pretrained``, for the codec.
        energy_temperature, energy_top_p: :func:`visual_energy_map` settings.
        network, codec, visual_encoder: already built parts to use instead of building them (shared,
            not copied; e.g. the training module's).
        allow_mono: accept a mono stage-1 network (``num_channels = 1``): the training module samples
            with it, but it is not served (:meth:`pipeline_config` refuses it, so nothing exports it).
    """

    kind: ClassVar[str] = "visage"
    output_format: ClassVar[str] = "foa"

    def __init__(
        self,
        config: ViSAGeConfig | str = "visage",
        *,
        encoder: str = "clip_vit_b32",
        encoder_kwargs: Mapping[str, Any] | None = None,
        encoder_pretrained: Pretrained = True,
        codec_kwargs: Mapping[str, Any] | None = None,
        codec_pretrained: Pretrained = True,
        energy_temperature: float = 0.1,
        energy_top_p: float = 0.7,
        network: ViSAGe | None = None,
        codec: DiscreteAudioCodec | None = None,
        visual_encoder: VisualEncoder | None = None,
        allow_mono: bool = False,
    ) -> None:
        super().__init__()
        cfg = get_config(config) if isinstance(config, str) else config
        if network is not None:
            cfg = network.config
        if cfg.num_channels != 4 and not (allow_mono and cfg.num_channels == 1):
            raise ValueError(
                f"ViSAGePipeline generates FOA: the network needs num_channels=4, got {cfg.num_channels} "
                "(a mono stage-1 model is trained, not served; initialise a FOA model from it)"
            )
        codec_kwargs = {k: v for k, v in dict(codec_kwargs or {}).items() if k != "n_quantizers"}
        self.network = network if network is not None else ViSAGe(cfg)
        self.codec = (
            codec
            if codec is not None
            else create_codec(
                cfg.codec, pretrained=codec_pretrained, n_quantizers=cfg.num_codebooks, **codec_kwargs
            )
        )
        self.encoder = (
            visual_encoder
            if visual_encoder is not None
            else create_encoder(
                encoder, pretrained=encoder_pretrained, **{"frozen": True, **(encoder_kwargs or {})}
            )
        )
        self.encoder_name = encoder
        self.encoder_spec = _part_spec(encoder, encoder_kwargs, encoder_pretrained)
        if codec_pretrained is not True and hasattr(self.codec, "dac_kwargs"):
            # the architecture of a codec we trained travels with the config (its weights in the state dict)
            codec_kwargs = {**self.codec.dac_kwargs, **codec_kwargs}
        self.codec_spec = _part_spec(cfg.codec, codec_kwargs, codec_pretrained)
        self.energy_temperature = float(energy_temperature)
        self.energy_top_p = float(energy_top_p)
        check_parts(self.network.config, self.codec, self.encoder, encoder)
        self._register_state_dict_hook(_drop_official_parts)
        self.register_load_state_dict_pre_hook(_fill_official_parts)

    # ------------------------------------------------------------------ structure
    @property
    def config(self) -> ViSAGeConfig:
        """The network's architecture."""
        return self.network.config

    @property
    def sample_rate(self) -> int:
        """Codec sample rate (Hz) of the generated audio."""
        return int(self.codec.sample_rate)

    @property
    def clip_seconds(self) -> float:
        """Window length of one generation pass."""
        return float(self.config.clip_seconds)

    @property
    def frame_rates(self) -> dict[str, float]:
        """The encoder's frame rate, keyed by its name."""
        return {self.encoder_name: float(self.encoder.fps)}

    @property
    def sampling_options(self) -> dict[str, SamplingOption]:
        """The keyword options of :meth:`generate` (``spatialgen generate --sample NAME=VALUE``)."""
        return {
            "guidance": SamplingOption(
                str,
                "joint",
                "classifier-free guidance: none, joint (released) or dual",
                choices=("none", "joint", "dual"),
            ),
            "cfg_scale": SamplingOption(float, 2.5, "guidance scale (joint; dual: the visual one)"),
            "direction_cfg_scale": SamplingOption(float, 2.5, "camera-direction scale of dual guidance"),
            "temperature": SamplingOption(float, 1.0, "softmax temperature of token sampling", minimum=1e-6),
            "top_k": SamplingOption(
                int, 256, "sample among the k likeliest tokens", minimum=1, optional=True
            ),
            "top_p": SamplingOption(float, None, "nucleus sampling mass", minimum=1e-6, optional=True),
            "do_sample": SamplingOption(bool, True, "false: greedy decoding"),
        }

    @property
    def num_channels(self) -> int:
        """4 (AmbiX FOA); 1 for a mono stage-1 network held with ``allow_mono``."""
        return int(self.config.num_channels)

    # ------------------------------------------------------------------ conditions
    @torch.no_grad()
    def encode_video(self, frames: Tensor) -> tuple[Tensor, Tensor | None]:
        """``visual [B, T, d_visual]`` and ``energy_map [B, T, N]`` (None if unused) of frames ``[B, T, 3, H, W]``."""
        need_patches = bool(self.config.energy_map_dim)
        out = self.encoder(frames, patch_tokens=need_patches)
        visual = out.global_features.clone()  # a plain tensor (the encoder may run in inference mode)
        if not need_patches:
            return visual, None
        return visual, self.energy_map(out.patch_tokens.clone())

    def energy_map(self, patch_tokens: Tensor) -> Tensor:
        """:func:`visual_energy_map` of the encoder's patch tokens ``[B, T, N, D]`` with this pipeline's settings."""
        return visual_energy_map(
            patch_tokens,
            self.encoder.patch_grid,
            temperature=self.energy_temperature,
            top_p=self.energy_top_p,
        )

    def direction_input(
        self, camera_direction: Tensor | None, batch: int, device: torch.device
    ) -> Tensor | None:
        """Direction input ``[B, 3]``: the camera's unit vector, or the learned null (unconditional) for None."""
        if not self.config.use_direction:
            return None
        if camera_direction is None:
            # Feeding the null itself is exactly what dropping the direction does inside the model.
            return self.network.null_direction.detach().expand(batch, 3).to(device)
        return camera_direction_vector(camera_direction.to(device), batch)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_from_features(
        self,
        visual: Tensor,
        energy_map: Tensor | None,
        direction: Tensor | None,
        *,
        seed: int | Sequence[int] | None = None,
        guidance: Guidance = "joint",
        cfg_scale: float = 2.5,
        direction_cfg_scale: float = 2.5,
        temperature: float = 1.0,
        top_k: int | None = 256,
        top_p: float | None = None,
        do_sample: bool = True,
    ) -> Tensor:
        """Audio ``[B, 4, num_samples]`` from network inputs (features, energy map, ``[B, 3]`` direction).

        ``seed``: one per row, or an int (see :func:`~spatialgen.models.windows.row_seeds`); each row
        samples from its own generator.
        """
        was_training = self.network.training
        self.network.eval()
        try:
            seeds = row_seeds(seed, visual.shape[0])
            generator = None
            if seeds is not None:
                generator = [torch.Generator(device=visual.device).manual_seed(s) for s in seeds]
            codes = generate(
                self.network,
                visual,
                energy_map,
                direction,
                guidance=guidance,
                guidance_scale=cfg_scale,
                direction_guidance_scale=direction_cfg_scale,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            return codes_to_audio(codes, self.codec, length=self.config.num_samples)
        finally:
            self.network.train(was_training)

    def generate_windows(
        self,
        frames: Mapping[str, Tensor],
        starts: Sequence[float],
        *,
        camera_direction: Tensor | None = None,
        seed: Sequence[int] | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Windows of a whole video, the encoder's per-frame features shared by overlapping windows.

        A per-frame encoder's features are computed once per frame (:class:`FrameFeatures`, kept while
        ``generate_long`` walks through one video); the energy map is computed per window from its
        patch tokens, as :meth:`generate` does. Other encoders encode each window.
        """
        enc, S = self.encoder, self.config.source_length
        if abs(float(enc.output_fps) - float(enc.fps)) > 1e-9:
            return super().generate_windows(
                frames, starts, camera_direction=camera_direction, seed=seed, **sampling
            )
        video = frames[self.encoder_name]
        cache = self.__dict__.get(LONG_VIDEO_STATE)
        if cache is None or cache.video is not video or cache.encoder is not enc:
            cache = FrameFeatures(enc, video, patch_tokens=bool(self.config.energy_map_dim), chunk=S)
            self.__dict__[LONG_VIDEO_STATE] = cache
        T = video.shape[0]
        first = torch.tensor([min(round(s * float(enc.fps)), T - 1) for s in starts])
        index = (first[:, None] + torch.arange(S)).clamp_max(T - 1)
        device = self.network.encoder.visual_proj.weight.device
        visual, patches = cache.gather(index, device)
        energy = None if patches is None else self.energy_map(patches)
        cam = None if camera_direction is None else camera_direction.to(device)
        direction = self.direction_input(cam, len(starts), device)
        return self.generate_from_features(visual, energy, direction, seed=seed, **sampling)

    def generate(
        self,
        frames: Mapping[str, Tensor] | Tensor,
        *,
        camera_direction: Tensor | None = None,
        seed: int | Sequence[int] | None = None,
        guidance: Guidance = "joint",
        cfg_scale: float = 2.5,
        direction_cfg_scale: float = 2.5,
        temperature: float = 1.0,
        top_k: int | None = 256,
        top_p: float | None = None,
        do_sample: bool = True,
    ) -> Tensor:
        """AmbiX FOA ``[B, 4, clip_seconds * sample_rate]`` for one window of video.

        Args:
            frames: ``{encoder name: uint8 [B, T, 3, H, W]}`` at ``frame_rates`` with
                ``T = config.source_length`` (or the tensor itself).
            camera_direction: ``[B, 2]`` camera (azimuth, elevation) radians in the FOA frame; None uses
                the learned null direction.
            seed: one seed per row, or an int (rows ``window_seed(seed, i)``); same seed, same audio
                whatever the batch.
            guidance: ``none``, ``joint`` (released: s = 2.5) or ``dual`` classifier-free guidance.
            cfg_scale, direction_cfg_scale: guidance scales (``guidance_scale`` and
                ``direction_guidance_scale`` of :func:`~spatialgen.models.visage.generation.generate`).
            temperature, top_k, top_p, do_sample: sampling (released: top-k 256, temperature 1).
        """
        if isinstance(frames, Mapping) and self.encoder_name not in frames:
            raise ValueError(f"frames has no {self.encoder_name!r} entry; got keys {sorted(frames)}")
        video = frames[self.encoder_name] if isinstance(frames, Mapping) else frames
        if not isinstance(video, Tensor) or video.ndim != 5:
            raise ValueError("frames must be [batch, time, 3, height, width] video")
        T = self.config.source_length
        if video.shape[1] != T:
            raise ValueError(
                f"frames has {video.shape[1]} frames; one window is {T} frames "
                f"({self.clip_seconds} s at {self.config.visual_fps} fps): cut the video into windows"
            )
        device = self.network.encoder.visual_proj.weight.device
        visual, energy = self.encode_video(video.to(device))
        direction = self.direction_input(camera_direction, video.shape[0], device)
        return self.generate_from_features(
            visual,
            energy,
            direction,
            seed=seed,
            guidance=guidance,
            cfg_scale=cfg_scale,
            direction_cfg_scale=direction_cfg_scale,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            do_sample=do_sample,
        )

    # ------------------------------------------------------------------ config
    def pipeline_config(self) -> dict[str, Any]:
        """JSON-able description (network config, encoder/codec names, options, whether official)."""
        if self.config.num_channels != 4:
            raise ValueError(
                "a mono stage-1 ViSAGe network (num_channels=1) is trained, not served: it has no "
                "pipeline config; export the FOA stage-2 model initialised from it"
            )
        return {
            "kind": self.kind,
            "network": self.config.to_dict(),
            "encoder": dict(self.encoder_spec, kwargs=dict(self.encoder_spec["kwargs"])),
            "codec": dict(self.codec_spec, kwargs=dict(self.codec_spec["kwargs"])),
            "energy_map": {"temperature": self.energy_temperature, "top_p": self.energy_top_p},
        }

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> ViSAGePipeline:
        """Rebuild the architecture; official parts load their weights, the rest wait for ``load_state_dict``."""
        missing = sorted({"network", "encoder", "codec"} - set(config))
        if missing or config.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"not a ViSAGe pipeline config (kind {config.get('kind')!r}, missing {missing})")
        energy = dict(config.get("energy_map", {}))
        return cls(
            ViSAGeConfig.from_dict(dict(config["network"])),
            encoder=config["encoder"]["name"],
            encoder_kwargs=config["encoder"].get("kwargs"),
            encoder_pretrained=bool(config["encoder"].get("pretrained", False)),
            codec_kwargs=config["codec"].get("kwargs"),
            codec_pretrained=bool(config["codec"].get("pretrained", False)),
            energy_temperature=float(energy.get("temperature", 0.1)),
            energy_top_p=float(energy.get("top_p", 0.7)),
        )

    def official_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of the parts rebuilt from official weights (left out of ``state_dict``)."""
        parts = (("encoder.", self.encoder_spec), ("codec.", self.codec_spec))
        return tuple(prefix for prefix, spec in parts if spec["pretrained"])


def _drop_official_parts(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for part in module.official_prefixes():
        for key in [k for k in state_dict if k.startswith(prefix + part)]:
            del state_dict[key]


def _fill_official_parts(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    for part in module.official_prefixes():
        name = part.rstrip(".")
        for key, value in getattr(module, name).state_dict().items():
            state_dict.setdefault(f"{prefix}{part}{key}", value)
