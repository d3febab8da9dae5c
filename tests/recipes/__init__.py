"""Recipe tests, and the small synthetic dataset they share with the training-module tests."""

from pathlib import Path

import pytest


def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-clip, 1-s synthetic dataset (train 2, val 1, test 1), generated once per test session."""
    root = tmp_path_factory.getbasetemp() / "visage_synthetic_4"
    if not (root / "manifest.json").exists():
        from spatialgen.data.synthetic import generate_dataset

        generate_dataset(
            root,
            4,
            0,
            duration=1.0,
            split_ratios={"train": 0.5, "val": 0.25, "test": 0.25},
            progress=False,
            overwrite=True,
        )
    return root
