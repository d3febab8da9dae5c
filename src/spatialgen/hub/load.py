"""Export directory / Hub repo -> ready :class:`~spatialgen.models.pipeline.GenerationPipeline` (strict).

Sources: a local export folder (``config.json`` with a ``kind`` + ``model.safetensors``), or a Hub repo
id (``owner/name``), fetched with :func:`huggingface_hub.snapshot_download` into the Hub cache; with
``HF_HUB_OFFLINE=1`` only the cache is used. Every failure is one :class:`~spatialgen.errors.SpatialgenError`
line: :class:`~spatialgen.weights.WeightsNotFoundError` (nothing there) or :class:`InvalidExportError`
(there, but unreadable or not matching its config).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from spatialgen.errors import SpatialgenError
from spatialgen.hub.save import CONFIG_NAME, WEIGHTS_NAME, load_export_state
from spatialgen.models.pipeline import GenerationPipeline, build_pipeline
from spatialgen.weights import WeightsNotFoundError, is_offline

__all__ = [
    "InvalidExportError",
    "apply_overrides",
    "is_export_dir",
    "is_repo_id",
    "load_export",
    "read_config",
    "read_weights",
    "snapshot",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class InvalidExportError(SpatialgenError, ValueError):
    """An export (or official folder) whose files exist but are unreadable or do not fit together."""


def is_repo_id(text: str) -> bool:
    """True for an ``owner/name`` Hub repo id (not checked against the Hub)."""
    return bool(_REPO_ID.match(text)) and ".." not in text


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of ``folder`` as a dict; missing or invalid JSON raises a one-line error."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{path} not found: a spatialgen export needs config.json next to its weights"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidExportError(f"{path} is not valid JSON ({exc}); re-export or re-download it") from exc
    if not isinstance(config, dict):
        raise InvalidExportError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def is_export_dir(path: str | os.PathLike) -> bool:
    """True for a folder whose ``config.json`` is a spatialgen pipeline config (has a ``kind``)."""
    p = Path(path)
    if not (p / CONFIG_NAME).is_file():
        return False
    try:
        config = json.loads((p / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and isinstance(config.get("kind"), str)


def read_weights(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file; missing -> WeightsNotFoundError, unreadable -> InvalidExportError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(
            f"{p} not found: the export is incomplete; re-run `spatialgen export` or download the repo again"
        )
    try:
        return load_file(str(p), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidExportError(
            f"{p} is not a valid safetensors file ({first}); it is corrupt or truncated: "
            "re-run `spatialgen export` or download it again"
        ) from exc


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with top-level ``overrides``; a dict value is merged into the config's dict one level deep.

    Raises:
        ValueError: an override names a key the config does not have.
    """
    out = dict(config)
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(
            f"unknown override(s) {unknown} for a {out.get('kind')!r} model; valid keys: {sorted(out)}"
        )
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    allow_patterns: list[str] | None = None,
) -> Path:
    """Local folder of the Hub repo ``repo_id`` (Hub cache; offline mode reads the cache only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            allow_patterns=allow_patterns,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        offline = " (HF_HUB_OFFLINE is set: only the local Hub cache is searched)" if is_offline() else ""
        rev = f" --revision {revision}" if revision else ""
        raise WeightsNotFoundError(
            f"Hub repo {repo_id!r} not available{offline}: run `hf download {repo_id}{rev}` on a machine "
            f"with internet and copy the Hub cache (HF_HUB_CACHE), or pass a local folder "
            f"({type(exc).__name__})"
        ) from exc
    return Path(folder)


def load_export(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    map_location: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> GenerationPipeline:
    """The pipeline stored in an export folder or Hub repo, weights loaded strictly, in eval mode.

    Args:
        source: export folder or ``owner/name`` Hub repo id.
        revision, cache_dir, force_download, local_files_only, token: Hub options (repo ids only).
        map_location: device the weights are loaded to (the pipeline is moved there).
        overrides: top-level config changes applied before building (see :func:`apply_overrides`),
            e.g. ``{"sampling": {"steps": 10}}``.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        folder = path
    elif is_repo_id(os.fspath(source)) and not path.exists():
        folder = snapshot(
            os.fspath(source),
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    else:
        raise WeightsNotFoundError(f"{source}: no such export folder, and not an 'owner/name' Hub repo id")
    config = read_config(folder)
    if "kind" not in config:
        raise InvalidExportError(
            f"{folder / CONFIG_NAME} is not a spatialgen export config (no 'kind'); "
            "an official ViSAGe folder is loaded with zoo.load_pretrained"
        )
    if overrides:
        config = apply_overrides(config, overrides)
    try:
        pipeline = build_pipeline(config)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SpatialgenError):
            raise
        raise InvalidExportError(f"{folder / CONFIG_NAME}: cannot build the model ({exc})") from exc
    state = read_weights(folder / WEIGHTS_NAME, map_location="cpu")
    try:
        load_export_state(pipeline, state)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise InvalidExportError(f"{folder / WEIGHTS_NAME} does not fit {CONFIG_NAME}: {first}") from exc
    return pipeline.to(map_location).eval()
