"""Dataset registry: ``create_dataset("ytambigen", root, split, options)``, ``list_datasets("*")``.

An entry is a factory ``(root, split, options) -> ClipDataset``. Registered: ``synthetic``,
``biaudio`` and ``layout`` (the common layout), ``ytambigen`` (official CSVs + ``ambi.json``),
``vggsound`` (official ``vggsound.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from spatialgen.data.clips import ClipDataset, ClipOptions
from spatialgen.registry import Registry

__all__ = ["DATASETS", "create_dataset", "list_datasets", "register_dataset"]

DatasetFactory = Callable[[str | os.PathLike[str], str | None, ClipOptions], ClipDataset]

DATASETS: Registry[DatasetFactory] = Registry("dataset")


def register_dataset(name: str, factory: DatasetFactory | None = None, *, overwrite: bool = False):
    """Register a dataset factory ``(root, split, options) -> ClipDataset`` (decorator without ``factory``)."""
    return DATASETS.register(name, factory, overwrite=overwrite)


def _builtin() -> None:
    # imported lazily so `import spatialgen.data.registry` stays cheap and cycle-free
    if "layout" in DATASETS:
        return
    from spatialgen.data.layout import LayoutDataset
    from spatialgen.data.vggsound import VGGSoundDataset
    from spatialgen.data.ytambigen import YTAmbigenDataset

    for name in ("layout", "synthetic", "biaudio"):
        DATASETS.register(name, LayoutDataset)
    DATASETS.register("ytambigen", YTAmbigenDataset)
    DATASETS.register("vggsound", VGGSoundDataset)


def create_dataset(
    name: str, root: str | os.PathLike[str], split: str | None = "train", options: ClipOptions | None = None
) -> ClipDataset:
    """Build the registered dataset ``name`` over ``root``; unknown names list close matches."""
    _builtin()
    return DATASETS.get(name)(root, split, options or ClipOptions())


def list_datasets(pattern: str = "*") -> list[str]:
    """Sorted registered dataset names matching the glob ``pattern``."""
    _builtin()
    return DATASETS.list(pattern)
