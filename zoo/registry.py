"""Named zoo entries and :func:`load_pretrained`, which resolves a name, an export folder, a Hub repo id,
an official ViSAGe release folder or a Lightning checkpoint to a ready model in eval mode."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialgen.registry import Registry, UnknownNameError

__all__ = [
    "ZooEntry",
    "get_entry",
    "list_pretrained",
    "load_folder",
    "load_pretrained",
    "model_card",
    "register_pretrained",
]


@dataclass(frozen=True)
class ZooEntry:
    """One named model: what it is, where its weights come from, and how to build it.

    Attributes:
        name: zoo name (``visage-ytambigen``).
        loader: ``loader(**overrides) -> model`` (a :class:`GenerationPipeline` for generators).
        description: one line.
        kind: ``visage`` / ``visaudio`` pipelines, ``visage-network`` (mono stage 1), ``codec``, ``encoder``.
        output_format: ``foa``, ``binaural`` or ``""`` (not an audio generator).
        sample_rate: output sample rate (Hz) when known without building.
        architecture: JSON-able architecture config (pipeline config or registry name + kwargs).
        weights: where the weights come from (Hub repo + revision, official repo + converter, local folder,
            or seeded random init).
        licence: licence of the weights.
        citation: BibTeX of the method.
        tags: free tags (``debug``, ``official``, ``trained-here``).
        card: the model card's text (a :class:`spatialgen.hub.card.CardInfo`), rendered with
            :func:`model_card`; None: the default card of the loaded pipeline.
    """

    name: str
    loader: Callable[..., Any]
    description: str = ""
    kind: str = ""
    output_format: str = ""
    sample_rate: int | None = None
    architecture: Mapping[str, Any] = field(default_factory=dict)
    weights: str = ""
    licence: str = ""
    citation: str = ""
    tags: tuple[str, ...] = ()
    card: Any = None

    def load(self, **overrides: Any) -> Any:
        """Build the model (eval mode) with ``overrides`` passed to its loader."""
        model = self.loader(**overrides)
        return model.eval() if hasattr(model, "eval") else model


_ZOO: Registry[ZooEntry] = Registry("pretrained model")


def register_pretrained(entry: ZooEntry, *, overwrite: bool = False) -> ZooEntry:
    """Add an entry to the zoo (``overwrite`` replaces one of the same name)."""
    return _ZOO.register(entry.name, entry, overwrite=overwrite)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Names of the zoo entries matching the glob ``pattern`` (e.g. ``"visage-*"``), sorted."""
    return sorted(_ZOO.list(pattern))


def get_entry(name: str) -> ZooEntry:
    """The entry registered as ``name`` (unknown names raise UnknownNameError with suggestions)."""
    return _ZOO.get(name)


def model_card(name: str, pipeline: Any = None) -> Any:
    """The rendered model card (:class:`huggingface_hub.ModelCard`) of zoo entry ``name``.

    The card describes the pipeline (rate, window, inputs) as well as the entry's text, so the pipeline is
    loaded (``load_pretrained(name)``) unless one is given.
    """
    from spatialgen.hub.card import CardInfo, build_model_card

    entry = get_entry(name)
    info = entry.card or CardInfo(
        model_name=entry.name,
        repo_id=entry.name,
        description=entry.description,
        license=entry.licence or None,
        citation=entry.citation or None,
        weights_note=entry.weights,
    )
    return build_model_card(pipeline if pipeline is not None else entry.load(), info)


def _hub_options(overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        k: overrides.pop(k) for k in ("revision", "cache_dir", "token", "force_download") if k in overrides
    }


def load_folder(folder: str | os.PathLike, **overrides: Any) -> Any:
    """Load a local folder: a spatialgen export, or an official ViSAGe release (converted exactly).

    A folder that holds several official checkpoints in sub-folders (a downloaded release repo) gives the
    FOA one, unless ``channels=1`` asks for the VGGSound mono network.
    """
    from spatialgen.hub.load import InvalidExportError, is_export_dir, load_export, read_config
    from spatialgen.hub.official import (
        find_official_folders,
        is_official_visage,
        load_official_visage,
        official_channels,
    )

    folder = Path(folder)
    device = overrides.pop("device", "cpu")
    channels = overrides.pop("channels", None)
    if is_export_dir(folder):
        if channels is not None:
            raise ValueError("channels= selects an official ViSAGe checkpoint; this folder is an export")
        return load_export(folder, map_location=str(device), overrides=overrides)
    candidates = [folder] if is_official_visage(folder) else find_official_folders(folder)
    if not candidates:
        if (folder / "config.json").is_file():
            read_config(folder)  # an unreadable config.json is the problem to report
        raise InvalidExportError(
            f"{folder}: neither a spatialgen export (config.json with a 'kind' + model.safetensors) nor an "
            "official ViSAGe release (BART config.json + pytorch_model.bin)"
        )
    wanted = 4 if channels is None else int(channels)
    found = {c: official_channels(c) for c in candidates} if len(candidates) > 1 or channels else {}
    chosen = next((c for c in candidates if found.get(c, wanted) == wanted), None)
    if chosen is None:
        have = ", ".join(f"{c.name}: {n} channel(s)" for c, n in found.items())
        raise InvalidExportError(f"{folder}: no official ViSAGe checkpoint with {wanted} channel(s) ({have})")
    try:
        model = load_official_visage(chosen, **overrides)
    except TypeError as exc:
        raise ValueError(
            f"load_pretrained({str(folder)!r}): bad option for an official folder ({exc})"
        ) from exc
    return model.to(device).eval()


def load_pretrained(name_or_path: str | os.PathLike, **overrides: Any) -> Any:
    """A ready model in eval mode (a :class:`~spatialgen.models.pipeline.GenerationPipeline` for generators).

    Args:
        name_or_path: a zoo name (:func:`list_pretrained`), an export folder, an official ViSAGe release
            folder, a Lightning ``.ckpt`` (EMA weights when present), or a Hub repo id ``owner/name``
            (fetched into the Hub cache; ``HF_HUB_OFFLINE=1`` reads the cache only).
        overrides: ``device`` (default cpu); for Hub ids ``revision``/``cache_dir``/``token``; for exports
            top-level config changes (e.g. ``sampling={"steps": 10}``); for official folders
            :func:`spatialgen.hub.official.load_official_visage` options; for zoo names the entry's options.

    Raises:
        UnknownNameError: not a zoo name, an existing path, nor a repo id (suggests close names).
        spatialgen.weights.WeightsNotFoundError: weights missing, with where to get them.
        spatialgen.hub.load.InvalidExportError: files present but corrupt or mismatched.
    """
    text = os.fspath(name_or_path)
    if text in _ZOO:
        return _ZOO.get(text).load(**overrides)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path, **overrides)
    if path.is_file() and path.suffix == ".ckpt":
        from spatialgen.hub.export import pipeline_from_checkpoint
        from spatialgen.hub.save import load_export_state

        model = pipeline_from_checkpoint(path, use_ema=overrides.pop("use_ema", True))
        load_export_state(model.pipeline, model.state)
        return model.pipeline.to(overrides.pop("device", "cpu")).eval()
    from spatialgen.hub.load import is_repo_id, snapshot

    if is_repo_id(text) and not path.exists():
        folder = snapshot(text, **_hub_options(overrides))
        return load_folder(folder, **overrides)
    close = difflib.get_close_matches(text, list(_ZOO), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(
        f"{text!r} is not a zoo name, an existing path or a Hub repo id 'owner/name'.{hint} "
        f"Zoo names: {', '.join(list_pretrained())}."
    )
