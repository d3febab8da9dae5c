"""Both synthetic recipes run from an empty folder: the dataset is synthesised on first use (slow).

The fast checks of the synthesis itself are in tests/data/test_synth_ensure.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"


def _fit(cwd: Path, recipe: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    cmd = [sys.executable, "-m", "spatialgen", "fit", "--config", str(RECIPES / recipe)]
    cmd += ["--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false", *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_visage_synthetic_from_empty_folder(tmp_path: Path) -> None:
    run = _fit(tmp_path, "visage_synthetic.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "synthesising the synthetic dataset into data/synthetic (50 clips, seed 0" in run.stderr
    assert len(list((tmp_path / "data" / "synthetic").glob("clip_*/meta.json"))) == 50


@pytest.mark.slow
def test_visaudio_synthetic_from_empty_folder(tmp_path: Path) -> None:
    # Without the pretrained tiny encoder: one line naming the command that makes it.
    run = _fit(tmp_path, "visaudio_synthetic.yaml")
    assert run.returncode != 0
    assert (
        "runs/visual_direction/tiny.safetensors: weight file not found; make it with "
        "`spatialgen fit --config recipes/visual_direction_synthetic.yaml`" in run.stderr
    )
    run = _fit(tmp_path, "visaudio_synthetic.yaml", "--model.init_args.encoder_pretrained=false")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "synthesising the synthetic dataset into data/synthetic_visaudio (80 clips" in run.stderr
    assert len(list((tmp_path / "data" / "synthetic_visaudio").glob("clip_*/meta.json"))) == 80
