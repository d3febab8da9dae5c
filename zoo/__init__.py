"""The spatialgen model zoo: ``from zoo import load_pretrained, list_pretrained``.

Each entry names an architecture config, where its weights live and its card. Model entries are added
by the model and hub issues; until then the registry is empty and lookups fail with a clear message.
"""

from zoo.registry import ZooEntry, list_pretrained, load_pretrained, register_pretrained

__all__ = ["ZooEntry", "list_pretrained", "load_pretrained", "register_pretrained"]
