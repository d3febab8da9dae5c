"""Synthesise a recipe's synthetic dataset on first use (``data.init_args.synthesize``).

A recipe that trains on the synthetic dataset names its generator settings (the keyword arguments of
:func:`~spatialgen.data.synthetic.generate.generate_dataset`, e.g. ``{n_clips: 80, duration: 2.0}``).
When the dataset root holds no dataset yet, :func:`ensure_synthetic` writes it there, announced in one
line with a progress bar. The recipe's own ``root`` is used (not a hidden cache folder) because the
recipes, the demo and the ``predict`` examples name files under it, and deleting it is how a user asks
for it again. Generation is deterministic (clip ``i`` depends only on ``(seed, i)``), so a dataset made
on first use equals the one ``spatialgen data synth`` writes with the same settings.

The clips are written into ``<root>.partial`` and renamed to ``root`` when complete, so an interrupted
run never leaves a half dataset that looks finished. A root that already holds a synthetic dataset made
with other settings (e.g. ``root`` pointed at another dataset) is used as is, with a one-line warning
naming the differing setting; an existing dataset is never overwritten.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spatialgen.data.clips import DatasetError
from spatialgen.data.synthetic.generate import generate_dataset
from spatialgen.data.synthetic.metadata import MANIFEST_JSON, read_manifest

__all__ = ["check_synth_settings", "ensure_synthetic"]

# generate_dataset arguments that do not change the data (so they are not compared with the manifest)
_NOT_DATA = {"workers", "progress", "overwrite", "out_dir"}


def _generator_arguments() -> list[str]:
    return [n for n in inspect.signature(generate_dataset).parameters if n not in _NOT_DATA]


def check_synth_settings(settings: Mapping[str, Any], where: str = "synthesize") -> dict[str, Any]:
    """Validate generator settings by name (``n_clips`` required); returns a plain dict.

    Unknown names raise one line listing the accepted ones, before any work starts.
    """
    if not isinstance(settings, Mapping):
        raise DatasetError(f"{where} must be a mapping of generator settings, got {type(settings).__name__}")
    known = _generator_arguments()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise DatasetError(f"{where}: unknown setting(s) {unknown}; accepted: {', '.join(known)}")
    if "n_clips" not in settings:
        raise DatasetError(f"{where} needs n_clips (the number of clips to synthesise)")
    return dict(settings)


def _same(wanted: Any, stored: Any) -> bool:
    if isinstance(wanted, (list, tuple)) and isinstance(stored, (list, tuple)):
        return len(wanted) == len(stored) and all(_same(a, b) for a, b in zip(wanted, stored))
    if isinstance(wanted, Mapping) and isinstance(stored, Mapping):
        return set(wanted) == set(stored) and all(_same(wanted[k], stored[k]) for k in wanted)
    if isinstance(wanted, (int, float)) and isinstance(stored, (int, float)):
        return float(wanted) == float(stored)
    return wanted == stored


def _check_existing(root: Path, settings: Mapping[str, Any]) -> None:
    """Warn (one line) when ``root``'s synthetic dataset was made with other settings; it is used as is."""
    manifest = read_manifest(root)
    if manifest.dataset != "synthetic":
        return
    defaults = {
        n: p.default
        for n, p in inspect.signature(generate_dataset).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    for name, value in settings.items():
        stored = manifest.config.get(name)
        if name == "split_ratios" or stored is None:
            continue
        if not _same(value if value is not None else defaults.get(name), stored):
            warnings.warn(
                f"{root}: holds a synthetic dataset with {name}={stored!r} where synthesize asks for "
                f"{value!r}; using it as is (delete the folder to have the recipe's synthesised)",
                stacklevel=3,
            )
            return


def ensure_synthetic(
    root: str | os.PathLike[str], settings: Mapping[str, Any], *, workers: int | None = None
) -> Path:
    """Make sure ``root`` holds the synthetic dataset of ``settings``; synthesise it if absent.

    Args:
        root: dataset folder (the recipe's ``data.init_args.root``).
        settings: :func:`generate_dataset` keyword arguments (``n_clips`` required, ``seed`` default 0).
        workers: processes for the synthesis (default: the CPU count, at most 8; the files do not
            depend on it).

    Returns ``root``. Raises :class:`DatasetError` for a root holding files but no dataset.
    """
    options = check_synth_settings(settings)
    target = Path(root)
    if (target / MANIFEST_JSON).is_file():
        _check_existing(target, options)
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(
            f"{target}: exists but holds no {MANIFEST_JSON}; remove it (or point data.init_args.root at an "
            "empty or missing folder) to have the synthetic dataset synthesised there"
        )
    n_clips, seed = int(options.pop("n_clips")), int(options.pop("seed", 0))
    procs = workers if workers is not None else max(1, min(8, os.cpu_count() or 1))
    print(
        f"spatialgen: synthesising the synthetic dataset into {target} ({n_clips} clips, seed {seed}; "
        f"first use only, deterministic)",
        file=sys.stderr,
        flush=True,
    )
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    generate_dataset(partial, n_clips, seed, workers=procs, progress=True, overwrite=True, **options)
    if target.exists():  # an empty folder (checked above)
        target.rmdir()
    partial.rename(target)
    return target
