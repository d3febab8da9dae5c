"""Both synthetic recipes run from an empty folder with their defaults (slow).

The dataset is synthesised on first use; the ViSAudio recipe's pretrained encoder
(``encoder_pretrained: recipe:visual_direction_synthetic``) is made by running that recipe first.
The fast checks are in tests/data/test_synth_ensure.py and tests/training/test_chain.py.
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
    run = _fit(tmp_path, "visaudio_synthetic.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    # the encoder recipe runs first (it synthesises the shared dataset), announced in one line
    made = (
        "spatialgen: runs/visual_direction/tiny.safetensors (weights for encoder 'tiny') not found; making it "
        f"now with `spatialgen fit --config {RECIPES / 'visual_direction_synthetic.yaml'}`"
    )
    assert run.stderr.count(made) == 1
    assert run.stderr.count("synthesising the synthetic dataset into data/synthetic_visaudio (80 clips") == 1
    assert run.stderr.index(made) < run.stderr.index("synthesising")
    assert (tmp_path / "runs" / "visual_direction" / "tiny.safetensors").is_file()
    assert (tmp_path / "runs" / "visual_direction" / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "data" / "synthetic_visaudio").glob("clip_*/meta.json"))) == 80
    # a second run finds both and makes neither
    run = _fit(tmp_path, "visaudio_synthetic.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "making it now" not in run.stderr and "synthesising" not in run.stderr
    # a weight path of the user's own that is missing: one line, no training run
    run = _fit(
        tmp_path, "visaudio_synthetic.yaml", "--model.init_args.encoder_pretrained=mine/tiny.safetensors"
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "spatialgen fit: error: mine/tiny.safetensors: weight file not found; pass an existing .safetensors/.pth file"
    )
    assert "making it now" not in run.stderr and not (tmp_path / "mine").exists()
