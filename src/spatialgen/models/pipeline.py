"""The inference bundle both models share: network + codec + visual encoders + config.

A :class:`GenerationPipeline` is what ``zoo.load_pretrained`` returns and what ``spatialgen generate`` runs.
It is a plain ``nn.Module`` (no Lightning), rebuilt from a JSON-able config (``pipeline_config()`` /
``build_pipeline(config)``), whose ``state_dict`` holds the weights the hub stores. Video comes in at the
frame rates the encoders need (``frame_rates``), decoded by the caller, so a pipeline never touches files.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spatialgen.registry import Registry

__all__ = ["PIPELINES", "GenerationPipeline", "build_pipeline", "register_pipeline"]


class GenerationPipeline(nn.Module, ABC):
    """Base class of the per-model inference bundles.

    Subclasses set ``kind`` (their registry name) and ``output_format`` (``"foa"``: AmbiX ``[W, Y, Z, X]``;
    ``"binaural"``: ``[L, R]``) and implement the abstract members below.
    """

    kind: ClassVar[str] = ""
    output_format: ClassVar[str] = ""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate of the generated audio (Hz)."""

    @property
    @abstractmethod
    def clip_seconds(self) -> float:
        """Length of the window the model generates in one pass (longer videos are windowed by the caller)."""

    @property
    @abstractmethod
    def frame_rates(self) -> dict[str, float]:
        """Frame rate each visual input needs, keyed by the encoder name, e.g. ``{"clip_vit_b32": 4.0}``."""

    @property
    def num_channels(self) -> int:
        """Audio channels produced: 4 for FOA, 2 for binaural."""
        return {"foa": 4, "binaural": 2}[self.output_format]

    @abstractmethod
    def generate(
        self,
        frames: Mapping[str, Tensor],
        *,
        camera_direction: Tensor | None = None,
        seed: int | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Audio ``[B, num_channels, clip_seconds · sample_rate]`` for one window of video.

        Args:
            frames: uint8 video ``[B, T, 3, H, W]`` per encoder name, each at ``frame_rates[name]`` and
                covering ``clip_seconds``.
            camera_direction: ``[B, 2]`` (azimuth, elevation) radians of the camera in the FOA frame,
                for models that take it (ViSAGe); ``None`` means the model's unconditional direction.
            seed: makes sampling reproducible.
            sampling: model-specific options (guidance scale, steps, temperature, ...).
        """

    @abstractmethod
    def pipeline_config(self) -> dict[str, Any]:
        """JSON-able config that rebuilds this pipeline's architecture (``{"kind": ..., ...}``)."""

    @classmethod
    @abstractmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> GenerationPipeline:
        """Build the architecture described by ``config`` (weights are loaded separately)."""

    @property
    def device(self) -> torch.device:
        """Device of the pipeline's parameters (CPU when it has none)."""
        return next((p.device for p in self.parameters()), torch.device("cpu"))


PIPELINES: Registry[type[GenerationPipeline]] = Registry("pipeline kind")

# Built-in kinds are imported on first use, so `import spatialgen.models` stays light (no timm/dac).
_BUILTIN_MODULES = {
    "visage": "spatialgen.models.visage.pipeline",
    "visaudio": "spatialgen.models.visaudio.pipeline",
}


def register_pipeline(cls: type[GenerationPipeline]) -> type[GenerationPipeline]:
    """Class decorator: register a pipeline under its ``kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} must set the class attribute 'kind' before registering")
    return PIPELINES.register(cls.kind, cls)


def build_pipeline(config: Mapping[str, Any]) -> GenerationPipeline:
    """Rebuild a pipeline from ``pipeline_config()`` output (dispatches on ``config["kind"]``)."""
    if "kind" not in config:
        raise ValueError("pipeline config has no 'kind' entry; it must come from pipeline_config()")
    kind = str(config["kind"])
    if kind not in PIPELINES and kind in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[kind])
    return PIPELINES.get(kind).from_pipeline_config(config)
