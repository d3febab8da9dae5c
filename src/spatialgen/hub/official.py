"""Detect and convert a ViSAGe release folder exactly as its authors published it.

The layout is the one jaeyeonkim99/visage ``generate_ambi.py`` loads with ``from_pretrained``.

An official folder holds the HF ``transformers`` BART-style ``config.json`` (``model_type: "bart"`` and the
ViSAGe fields ``num_rvq``, ``d_clip``, ``dac_vocab_size`` ...) and ``pytorch_model.bin`` or
``model.safetensors``. The weights go through :func:`spatialgen.models.visage.convert.convert_official`
(strict: every key mapped, none missing, shapes checked); the towers (CLIP ViT-B/32, DAC 44.1 kHz) are
rebuilt by name from their registries with their published weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spatialgen.hub.load import InvalidExportError
from spatialgen.models.visage.config import ViSAGeConfig
from spatialgen.models.visage.convert import config_from_official, load_official
from spatialgen.models.visage.model import ViSAGe
from spatialgen.models.visage.pipeline import ViSAGePipeline
from spatialgen.weights import WeightsNotFoundError

__all__ = [
    "OFFICIAL_REPO",
    "OFFICIAL_WEIGHTS",
    "find_official_folders",
    "is_official_visage",
    "load_official_visage",
    "official_channels",
    "read_official",
]

#: Where the authors published the checkpoints (jaeyeonkim99/visage ``README.md``).
OFFICIAL_REPO = "jaeyeonkim99/visage"
#: Weight file names of an official folder, in the order they are tried.
OFFICIAL_WEIGHTS = ("pytorch_model.bin", "model.safetensors", "model.bin")
_VISAGE_FIELDS = ("num_rvq", "d_clip", "dac_vocab_size", "clip_frame_rate")


def _official_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict) or "kind" in config:  # ours has a pipeline kind
        return None
    if config.get("model_type") == "bart" or any(k in config for k in _VISAGE_FIELDS):
        return config
    return None


def _weights_file(folder: Path) -> Path | None:
    return next((folder / n for n in OFFICIAL_WEIGHTS if (folder / n).is_file()), None)


def is_official_visage(path: str | os.PathLike) -> bool:
    """True for a folder in the official ViSAGe layout (BART/ViSAGe config.json + official weights)."""
    folder = Path(path)
    return folder.is_dir() and _official_config(folder) is not None and _weights_file(folder) is not None


def find_official_folders(root: str | os.PathLike, max_depth: int = 3) -> list[Path]:
    """``root`` and its sub-folders (up to ``max_depth`` levels) in the official layout, sorted."""
    root = Path(root)
    found = [root] if is_official_visage(root) else []
    frontier = [root]
    for _ in range(max_depth):
        frontier = [
            d for f in frontier for d in sorted(f.iterdir()) if d.is_dir() and not d.name.startswith(".")
        ]
        found += [d for d in frontier if is_official_visage(d)]
    return found


def read_official(folder: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Raw state dict and ``config.json`` of an official folder (no conversion yet)."""
    folder = Path(folder)
    config = _official_config(folder)
    weights = _weights_file(folder)
    if config is None or weights is None:
        raise WeightsNotFoundError(
            f"{folder} is not an official ViSAGe folder (config.json with the ViSAGe/BART fields and "
            f"one of {', '.join(OFFICIAL_WEIGHTS)}); download huggingface.co/{OFFICIAL_REPO} into it"
        )
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(weights))
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch.load / safetensors raise many types for a damaged file
        raise InvalidExportError(
            f"{weights} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"download it again from huggingface.co/{OFFICIAL_REPO}"
        ) from exc
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    return dict(state), config


def official_channels(folder: str | os.PathLike) -> int:
    """Audio channels of the official checkpoint in ``folder`` (4: FOA model, 1: VGGSound mono model)."""
    state, config = read_official(folder)
    return config_from_official(config, state).num_channels


def load_official_visage(
    folder: str | os.PathLike,
    *,
    config_overrides: Mapping[str, Any] | None = None,
    encoder: str = "clip_vit_b32",
    encoder_kwargs: Mapping[str, Any] | None = None,
    encoder_pretrained: bool | str = True,
    codec_kwargs: Mapping[str, Any] | None = None,
    codec_pretrained: bool | str = True,
    energy_temperature: float = 0.1,
    energy_top_p: float = 0.7,
) -> ViSAGePipeline | ViSAGe:
    """The official checkpoint in ``folder`` converted exactly, in eval mode.

    A FOA checkpoint gives a ready :class:`ViSAGePipeline` (the released towers by default); the
    VGGSound mono stage-1 checkpoint gives the bare :class:`ViSAGe` network, which initialises FOA
    fine-tuning (``ViSAGeModule(init_from_mono=...)``) and is not a generator of spatial audio.

    Args:
        folder: the release folder.
        config_overrides: :class:`ViSAGeConfig` fields to change after reading the official config
            (e.g. the codec name of a non-released test setup); architecture fields must still fit the weights.
        encoder, encoder_kwargs, encoder_pretrained, codec_kwargs, codec_pretrained, energy_temperature,
            energy_top_p: as :class:`ViSAGePipeline` (defaults: the released CLIP ViT-B/32 and DAC 44.1 kHz).
    """
    state, official = read_official(folder)
    try:
        config: ViSAGeConfig = config_from_official(official, state)
        if config_overrides:
            config = config.replace(**dict(config_overrides))
        network = load_official(state, config)
    except ValueError as exc:
        raise InvalidExportError(f"{folder}: {str(exc).splitlines()[0]}") from exc
    if config.num_channels != 4:
        return network.eval()
    pipeline = ViSAGePipeline(
        network=network,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        encoder_pretrained=encoder_pretrained,
        codec_kwargs=codec_kwargs,
        codec_pretrained=codec_pretrained,
        energy_temperature=energy_temperature,
        energy_top_p=energy_top_p,
    )
    return pipeline.eval()
