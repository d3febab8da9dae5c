"""Trainer construction shared by the training tests."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl

QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}


def trainer(tmp_path: Any, **kwargs: Any) -> pl.Trainer:
    """A quiet CPU Trainer writing under ``tmp_path``."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    options = {**QUIET, "accelerator": "cpu", "devices": 1, "default_root_dir": str(tmp_path)}
    options.update(kwargs)
    return pl.Trainer(**options)
