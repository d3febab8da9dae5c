"""`spatialgen evaluate` end to end on small synthetic FOA / binaural clips."""

import json
import math

import pytest
import torch

from spatialgen.evaluate import main, pair_files
from spatialgen.io import write_audio
from spatialgen.spatial import foa

SR = 16000


def _write_set(folder, stems, az_offset_deg, channels=4, seed=0):
    folder.mkdir()
    g = torch.Generator().manual_seed(seed)
    for i, stem in enumerate(stems):
        s = torch.randn(SR, generator=g, dtype=torch.float64) * 0.1
        x = foa.encode(s, math.radians(40.0 * i + az_offset_deg), 0.2)
        write_audio(folder / f"{stem}.wav", (x if channels == 4 else x[:2]).float(), SR, subtype="FLOAT")


def test_evaluate_foa_writes_table_json_and_figures(tmp_path, capsys):
    stems = ["a", "b"]
    _write_set(tmp_path / "gt", stems, 0.0)
    _write_set(tmp_path / "pred", stems, 3.0, seed=1)
    out = tmp_path / "report"
    code = main(
        ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out), "--metrics",
         "spatial,doa,fd", "--embedder", "tiny", "--batch-size", "2", "--seconds", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    m = report["metrics"]
    assert report["n_clips"] == 2 and set(report["per_clip"]) == set(stems)
    for key in ("corr_all", "auc_j_all", "corr_1fps", "auc_j_5fps", "corr_5fps_sn3d"):
        assert m[key] >= 0.99, key  # a 3° rotation keeps the maps
    assert m["doa_error_deg"] == pytest.approx(3.0 * math.cos(0.2), abs=0.1)
    assert m["fd_tiny"] >= 0
    table = (out / "metrics.md").read_text()
    assert "| corr_all |" in table and "| doa_error_deg |" in table
    assert (out / "figures" / "energy_maps.png").stat().st_size > 1000
    assert (out / "figures" / "metric_distributions.png").stat().st_size > 1000


def test_evaluate_binaural_and_errors(tmp_path, capsys):
    _write_set(tmp_path / "gt", ["x", "y"], 0.0, channels=2)
    _write_set(tmp_path / "pred", ["x", "y"], 0.0, channels=2)
    out = tmp_path / "r"
    args = [
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        str(tmp_path / "gt"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*args, "--metrics", "binaural", "--seconds", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["waveform_distance"] == pytest.approx(0.0, abs=1e-12) and m["stft_distance"] == pytest.approx(
        0.0, abs=1e-12
    )
    assert m["lr_confusion"] == 0.0 and m["ipd_error_rad"] == pytest.approx(0.0, abs=1e-9)
    assert main([*args, "--metrics", "spatial"]) == 2
    assert "needs 4-channel FOA" in capsys.readouterr().err
    (tmp_path / "gt" / "z.wav").write_bytes((tmp_path / "gt" / "x.wav").read_bytes())
    with pytest.raises(Exception, match="1 ground truth file\\(s\\) without prediction: z"):
        pair_files(tmp_path / "pred", tmp_path / "gt")
    assert main([*args, "--metrics", "binaural"]) == 2
