"""Shared fixtures: tiny pipelines with non-trivial weights, one window of frames, a Hub cache writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from zoo.entries import build_visage_debug, build_visaudio_debug


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one intra-op thread (see ``tests/conftest.py``)."""


def window(pipeline, batch: int = 1, seed: int = 0, size: int = 48) -> dict[str, torch.Tensor]:
    """One window of random uint8 video per encoder at its frame rate."""
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.randint(
            0,
            256,
            (batch, max(1, round(pipeline.clip_seconds * fps)), 3, size, size),
            generator=g,
            dtype=torch.uint8,
        )
        for name, fps in pipeline.frame_rates.items()
    }


@pytest.fixture(scope="session")
def visage_pipe():
    pipe = build_visage_debug(seed=11)
    with torch.no_grad():  # make the heads matter (random init is near-uniform) so outputs depend on weights
        pipe.network.heads.weight.normal_(0.0, 0.5)
    return pipe


@pytest.fixture(scope="session")
def visaudio_pipe():
    return build_visaudio_debug(seed=5)


def populate_hub_cache(cache: Path, repo_id: str, files: Path, commit: str = "a" * 40) -> Path:
    """Write ``files``' contents into a Hub-style cache: ``models--owner--name/{refs/main, snapshots/<commit>/}``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    shutil.copytree(files, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
