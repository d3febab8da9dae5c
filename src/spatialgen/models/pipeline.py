"""The inference bundle both models share: network + codec + visual encoders + config.

A :class:`GenerationPipeline` is what ``zoo.load_pretrained`` returns and what ``spatialgen generate`` runs.
It is a plain ``nn.Module`` (no Lightning), rebuilt from a JSON-able config (``pipeline_config()`` /
``build_pipeline(config)``), whose ``state_dict`` holds the weights the hub stores. Video comes in at the
frame rates the encoders need (``frame_rates``), decoded by the caller, so a pipeline never touches files.

Inference has one owner: ``generate`` makes one window (a batch of windows), and :meth:`generate_long`,
written once here, makes a whole video of any length from it (windows, overlap, equal-power crossfade,
one seed per window; :mod:`spatialgen.models.windows`). ``spatialgen generate``, both LightningModules'
``predict_step`` and validation sampling all go through these.

Weights have one contract: :meth:`GenerationPipeline.export_state_dict` (the network and every part built
without published weights) + :meth:`GenerationPipeline.pipeline_config`. The Hugging Face Hub mixin
(``huggingface_hub.ModelHubMixin``) sits on the pipeline class itself, as diffusers and timm put it on
their model classes, so ``ViSAGePipeline.from_pretrained("owner/repo" or folder)``, ``save_pretrained``
and ``push_to_hub`` work on any pipeline; the export folder layout is ``config.json`` +
``model.safetensors`` (+ ``README.md``).
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import ModelHubMixin
from torch import Tensor, nn
from tqdm import tqdm

from spatialgen.models.windows import crossfade_concat, plan_windows, row_seeds, window_frames
from spatialgen.registry import Registry

__all__ = [
    "CONFIG_NAME",
    "LONG_VIDEO_STATE",
    "PIPELINES",
    "WEIGHTS_NAME",
    "GenerationPipeline",
    "build_pipeline",
    "register_pipeline",
]

#: attribute where a pipeline may keep state for the video ``generate_long`` is walking through
#: (e.g. shared per-frame encoder features); cleared when ``generate_long`` returns
LONG_VIDEO_STATE = "_long_video_state"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def safetensors_ready(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; tied weights (shared storage) get their own copy, which
    safetensors requires (loading copies the same values into both parameters again)."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ident in seen and t.numel():
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[key] = t
    return out


class GenerationPipeline(
    nn.Module,
    ModelHubMixin,
    ABC,
    library_name="spatialgen",
    repo_url="https://github.com/spatialgen/spatialgen",
    tags=["spatialgen", "spatial-audio", "video-to-audio"],
):
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

    @property
    def takes_prompt(self) -> bool:
        """Whether :meth:`generate` takes a text ``prompt`` (a model with text conditioning); False here."""
        return False

    @abstractmethod
    def generate(
        self,
        frames: Mapping[str, Tensor],
        *,
        camera_direction: Tensor | None = None,
        seed: int | Sequence[int] | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Audio ``[B, num_channels, clip_seconds · sample_rate]`` for a batch of windows of video.

        Args:
            frames: uint8 video ``[B, T, 3, H, W]`` per encoder name, each at ``frame_rates[name]`` and
                covering ``clip_seconds``.
            camera_direction: ``[B, 2]`` (azimuth, elevation) radians of the camera in the FOA frame,
                for models that take it (ViSAGe); ``None`` means the model's unconditional direction.
            seed: one seed per row (row ``i`` samples from its own generator, so a row's audio does not
                depend on the batch it is in), or an int ``s`` meaning rows ``window_seed(s, i)``
                (:func:`spatialgen.models.windows.row_seeds`); None: unseeded.
            sampling: model-specific options (guidance scale, steps, temperature, ...).
        """

    def generate_long(
        self,
        frames: Mapping[str, Tensor],
        *,
        duration: float | None = None,
        camera_direction: Tensor | None = None,
        seed: int | None = 0,
        overlap: float | None = None,
        batch_size: int = 4,
        progress: bool = False,
        prompt: str | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Audio ``[num_channels, round(duration · sample_rate)]`` (float32, CPU) for a whole video.

        Windows start every ``clip_seconds − overlap`` seconds (the last aligned to the end), are
        generated ``batch_size`` at a time and joined with an equal-power crossfade; window ``i`` is
        seeded with ``window_seed(seed, i)``, so the result does not depend on ``batch_size``.

        Args:
            frames: the whole video, uint8 ``[T, 3, H, W]`` per encoder name at ``frame_rates[name]``
                (decoded once by the caller); frames past the end repeat the last one.
            duration: seconds of audio to make (default: the shortest video's ``T / fps``).
            camera_direction: ``[2]`` (azimuth, elevation) radians for the whole video (models that take it).
            seed: seed of the video; overlap: seconds shared by consecutive windows (default: 1 s, at
                most half a window, as ``spatialgen generate``).
            batch_size: windows per ``generate`` call; progress: show a windows done/total bar with ETA.
            prompt: text prompt for every window (models with :attr:`takes_prompt`); None: no prompt.
            sampling: model-specific options passed to :meth:`generate`.
        """
        if prompt is not None:
            if not self.takes_prompt:
                raise ValueError(
                    f"prompt: this {type(self).__name__} has no text conditioning; pass prompt=None"
                )
            sampling = {**sampling, "prompt": prompt}
        rates = self.frame_rates
        missing = sorted(set(rates) - set(frames))
        if missing:
            raise ValueError(f"frames lack the encoders {missing}; give video at {rates} (frames per second)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if duration is None:
            duration = min(frames[n].shape[0] / fps for n, fps in rates.items())
        if overlap is None:
            overlap = min(1.0, self.clip_seconds / 2)
        starts = plan_windows(float(duration), self.clip_seconds, overlap)
        cam = None if camera_direction is None else camera_direction.reshape(1, 2).float()
        seeds = row_seeds(seed, len(starts))
        chunks: list[Tensor] = []
        self.__dict__.pop(LONG_VIDEO_STATE, None)
        try:
            with (
                torch.inference_mode(),
                tqdm(total=len(starts), desc="windows", unit="window", disable=not progress) as bar,
            ):
                for b in range(0, len(starts), batch_size):
                    batch = starts[b : b + batch_size]
                    audio = self.generate_windows(
                        frames,
                        batch,
                        camera_direction=None if cam is None else cam.expand(len(batch), 2),
                        seed=None if seeds is None else seeds[b : b + len(batch)],
                        **sampling,
                    )
                    chunks.extend(a.float().cpu() for a in audio)
                    bar.update(len(batch))
        finally:
            self.__dict__.pop(LONG_VIDEO_STATE, None)  # e.g. features shared by this video's windows
        sr = self.sample_rate
        return crossfade_concat(chunks, [round(s * sr) for s in starts], max(1, round(duration * sr)))

    def generate_windows(
        self,
        frames: Mapping[str, Tensor],
        starts: Sequence[float],
        *,
        camera_direction: Tensor | None = None,
        seed: Sequence[int] | None = None,
        **sampling: Any,
    ) -> Tensor:
        """Audio ``[len(starts), C, clip_seconds · sample_rate]`` of the windows at ``starts`` of whole videos.

        The default cuts each window's frames and calls :meth:`generate`; a model whose encoder features
        of overlapping windows agree may override it to encode the frames they share once.
        """
        per_window = [window_frames(frames, self.frame_rates, s, self.clip_seconds) for s in starts]
        batch = {n: torch.stack([w[n] for w in per_window]).to(self.device) for n in self.frame_rates}
        cam = None if camera_direction is None else camera_direction.to(self.device)
        return self.generate(batch, camera_direction=cam, seed=seed, **sampling)

    @abstractmethod
    def pipeline_config(self) -> dict[str, Any]:
        """JSON-able config that rebuilds this pipeline's architecture (``{"kind": ..., ...}``)."""

    @classmethod
    @abstractmethod
    def from_pipeline_config(cls, config: Mapping[str, Any]) -> GenerationPipeline:
        """Build the architecture described by ``config`` (weights are loaded separately)."""

    def export_state_dict(self) -> dict[str, Tensor]:
        """The weights an export stores: the network and every part built without published weights.

        The default is ``state_dict()`` (a subclass whose official parts are rebuilt from their
        registries leaves them out, e.g. through a state-dict hook, or overrides this).
        """
        return dict(self.state_dict())

    def load_export_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load :meth:`export_state_dict` output strictly; a key mismatch raises a ValueError listing them."""
        result = self.load_state_dict(dict(state), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"weights do not match the config: missing {sorted(result.missing_keys)[:8]}, "
                f"unexpected {sorted(result.unexpected_keys)[:8]}"
            )

    # ------------------------------------------------------------------ Hub mixin
    #: what the next ``save_pretrained`` stores instead of the pipeline's own: ``{"state", "card",
    #: "files"}`` (set for one call by :func:`spatialgen.hub.save.save_pipeline`, e.g. EMA weights)
    _export_override: dict[str, Any] | None = None

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``config.json`` (:meth:`pipeline_config`) and ``model.safetensors`` (:meth:`export_state_dict`)."""
        from safetensors.torch import save_file

        override = self._export_override or {}
        state = override.get("state")
        state = self.export_state_dict() if state is None else state
        save_file(safetensors_ready(state), str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})
        config = json.dumps(self.pipeline_config(), indent=2, sort_keys=True)
        (save_directory / CONFIG_NAME).write_text(config + "\n")
        for name, src in (override.get("files") or {}).items():
            dst = save_directory / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(Path(src).read_bytes())

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """The card set for this save (:func:`spatialgen.hub.save.save_pipeline`), else the mixin's default."""
        card = (self._export_override or {}).get("card")
        return card if card is not None else super().generate_model_card(*args, **kwargs)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **_config_values: Any,
    ) -> GenerationPipeline:
        """Rebuild the pipeline of an export folder or Hub repo and load its weights strictly (eval mode).

        The reading is :func:`spatialgen.hub.load.load_export` (one-line errors, offline cache), imported
        when called so that ``models`` does not import ``hub`` (the layer above it) at import time.
        """
        from spatialgen.hub.load import InvalidExportError, load_export

        if not strict:
            raise ValueError(f"{cls.__name__} loads strictly only: a partial load would keep random weights")
        pipeline = load_export(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
        )
        if not isinstance(pipeline, cls):
            raise InvalidExportError(f"{model_id} holds a {type(pipeline).__name__}, not a {cls.__name__}")
        return pipeline

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
