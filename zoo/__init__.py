"""The spatialgen model zoo: ``from zoo import load_pretrained, list_pretrained``.

``load_pretrained(name_or_path, **overrides)`` takes a zoo name (``list_pretrained()``), an export
folder, a Hub repo id, an official ViSAGe release folder or a Lightning checkpoint and returns a ready
model in eval mode (a :class:`~spatialgen.models.pipeline.GenerationPipeline` for audio generators).
"""

from zoo import entries as _entries  # noqa: F401  (registers the entries)
from zoo.registry import (
    ZooEntry,
    get_entry,
    list_pretrained,
    load_folder,
    load_pretrained,
    model_card,
    register_pretrained,
)

__all__ = [
    "ZooEntry",
    "get_entry",
    "list_pretrained",
    "load_folder",
    "load_pretrained",
    "model_card",
    "register_pretrained",
]
