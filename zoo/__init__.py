"""The spatialgen model zoo: ``from zoo import load_pretrained, list_pretrained``.

``load_pretrained(name_or_path, **overrides)`` takes a zoo name (``list_pretrained()``), an export
folder, a Hub repo id, an official ViSAGe release folder or a Lightning checkpoint and returns a ready
model in eval mode (a :class:`~spatialgen.models.pipeline.GenerationPipeline` for audio generators).
The public API is :mod:`zoo.registry`'s (``ZooEntry``, ``get_entry``, ``list_pretrained``, ``load_folder``,
``load_pretrained``, ``model_card``, ``register_pretrained``).
"""

from zoo import entries as _entries  # noqa: F401  (registers the entries)
from zoo import registry as _registry
from zoo.registry import *  # noqa: F403  (re-exports exactly the registry's __all__)

__all__ = list(_registry.__all__)
