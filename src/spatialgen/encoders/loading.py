"""Reading weight files (safetensors / torch pickles) and strict loading with one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from spatialgen.errors import SpatialgenError

__all__ = [
    "RECIPE_PREFIX",
    "EncoderWeightsError",
    "load_official_or_own",
    "load_state_file",
    "load_strict",
    "unwrap_state_dict",
]

#: ``recipe:NAME`` as a weight spec: the file recipe NAME exports, made on first use
#: (:mod:`spatialgen.encoders.recipe_weights`).
RECIPE_PREFIX = "recipe:"

# Weight files a recipe of this repository writes: a missing one names the recipe that makes it, and
# how to have it made on first use. Only a hint: a missing path is always an error, never a training run.
_MADE_BY = {"visual_direction/tiny.safetensors": "visual_direction_synthetic"}

# Containers that training scripts wrap a state dict in (Lightning, slowfast/Motionformer, plain).
_CONTAINER_KEYS = ("state_dict", "model_state", "model", "module", "weights")


class EncoderWeightsError(SpatialgenError, ValueError):
    """A weight file that cannot be read or does not match the encoder's architecture."""


def load_state_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.safetensors`` file or a torch checkpoint (``weights_only``) into a flat state dict."""
    path = Path(path).expanduser()
    if not path.is_file():
        maker = next((name for tail, name in _MADE_BY.items() if path.as_posix().endswith(tail)), None)
        hint = (
            f"make it with `spatialgen fit --config recipes/{maker}.yaml` (CPU, ~1 min), or give "
            f"`{RECIPE_PREFIX}{maker}` instead of the path to have it made on first use"
            if maker
            else "pass an existing .safetensors/.pth file"
        )
        raise EncoderWeightsError(f"{path}: weight file not found; {hint}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure is a bad file from the user's point of view
        raise EncoderWeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    return unwrap_state_dict(obj, source=path)


def unwrap_state_dict(obj: object, *, source: object = "checkpoint") -> dict[str, Tensor]:
    """Find the tensor dict inside common checkpoint containers and strip a DDP ``module.`` prefix."""
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise EncoderWeightsError(f"{source}: no state dict of tensors found")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def load_strict(module: nn.Module, state_dict: Mapping[str, Tensor], *, source: object) -> None:
    """``load_state_dict(strict=True)`` with shape checks and a one-line error listing the mismatches."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(
        f"{k} {tuple(state_dict[k].shape)}!={tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if state_dict[k].shape != own[k].shape
    )
    if missing or unexpected or wrong:

        def head(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [
            f"{name} {len(keys)}: {head(keys)}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise EncoderWeightsError(
            f"{source}: weights do not match {type(module).__name__} ({'; '.join(parts)}); "
            "check the encoder name/config matches the checkpoint"
        )
    module.load_state_dict(state_dict, strict=True)


def load_official_or_own(
    module: nn.Module,
    path: str | os.PathLike,
    official_prefix: str,
    convert: Callable[[dict[str, Tensor]], dict[str, Tensor]],
) -> None:
    """Strictly load ``path`` into ``module``: an official checkpoint (a key starts with ``official_prefix``)
    through ``convert``, else the module's own layout as is."""
    state = load_state_file(path)
    if any(k.startswith(official_prefix) for k in state):
        state = convert(state)
    load_strict(module, state, source=path)
