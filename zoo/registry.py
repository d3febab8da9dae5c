"""Named zoo entries and the loader that resolves a name to a ready model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spatialgen.registry import Registry


@dataclass(frozen=True)
class ZooEntry:
    """One named pretrained model: how to build it and where its weights come from."""

    name: str
    builder: Callable[..., Any]
    description: str = ""
    weights: str | None = None  # local path, hf://repo/file[@rev], or an official URL
    licence: str = ""
    citation: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


_ZOO: Registry[ZooEntry] = Registry("pretrained model")


def register_pretrained(entry: ZooEntry) -> ZooEntry:
    """Add an entry to the zoo."""
    return _ZOO.register(entry.name, entry)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Names of the zoo entries matching the glob ``pattern``."""
    return _ZOO.list(pattern)


def load_pretrained(name: str, **overrides: Any) -> Any:
    """Build the model registered as ``name`` (weights resolved by its entry); unknown names raise
    :class:`spatialgen.registry.UnknownNameError` listing the known ones."""
    entry = _ZOO.get(name)
    return entry.builder(weights=entry.weights, **overrides)
