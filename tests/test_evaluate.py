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


def _rot(axis: str, deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = {
        "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]],
        "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
        "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
    }
    return torch.tensor(m[axis], dtype=torch.float64)


def _angles(u: torch.Tensor) -> tuple[float, float]:
    return math.degrees(math.atan2(u[1], u[0])), math.degrees(math.asin(u[2] / u.norm()))


ROTATIONS = {  # stem -> rotation of the whole sound field (applied to the dipole (X, Y, Z))
    "yaw40": _rot("z", 40.0),
    "pitch": _rot("y", -25.0),
    "yaw90_roll15": _rot("z", 90.0) @ _rot("x", 15.0),
    "yaw180": _rot("z", 180.0),
}


def test_evaluate_reports_known_rotations_as_direction_errors(tmp_path):
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    g = torch.Generator().manual_seed(3)
    az, el = math.radians(30.0), math.radians(10.0)
    u = torch.tensor(
        [math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)], dtype=torch.float64
    )
    expected = {}
    for stem, r in ROTATIONS.items():
        s = torch.randn(2 * SR, generator=g, dtype=torch.float64) * 0.1
        w, y, z, x = foa.encode(s, az, el)
        gt = torch.stack([w, y, z, x])
        dx, dy, dz = r @ torch.stack([x, y, z])  # the rotated field: a source at u is heard at R u
        pred = torch.stack([w, dy, dz, dx])
        write_audio(tmp_path / "gt" / f"{stem}.wav", gt.float(), SR, subtype="FLOAT")
        write_audio(tmp_path / "pred" / f"{stem}.wav", pred.float(), SR, subtype="FLOAT")
        (az_p, el_p), (az_g, el_g) = _angles(r @ u), _angles(u)
        expected[stem] = {
            "azimuth": abs((az_p - az_g + 180) % 360 - 180),
            "elevation": abs(el_p - el_g),
            "angular": math.degrees(math.acos(float((r @ u) @ u).__round__(12))),
        }
    out = tmp_path / "r"
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
            "--metrics", "direction", "--seconds", "2", "--no-progress", "--n-figures", "0"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"] == "spatialgen" and report["warnings"] == []
    assert expected["yaw40"]["azimuth"] == pytest.approx(40.0) and expected["pitch"]["elevation"] > 20
    for stem, errors in expected.items():
        clip = report["per_clip"][stem]
        for method, tol in (("intensity", 0.3), ("map", 1.5)):
            for span in ("clip", "1s"):
                for name, value in errors.items():
                    assert clip[f"{name}_error_deg_{method}_{span}"] == pytest.approx(value, abs=tol), (
                        stem,
                        method,
                        name,
                    )
    mean = report["metrics"]["angular_error_deg_intensity_clip"]
    assert mean == pytest.approx(sum(e["angular"] for e in expected.values()) / len(expected), abs=0.3)


def test_evaluate_silent_prediction_is_nan_with_a_reason(tmp_path):
    _write_set(tmp_path / "gt", ["a", "b"], 0.0)
    (tmp_path / "pred").mkdir()
    for stem in ("a", "b"):
        write_audio(tmp_path / "pred" / f"{stem}.wav", torch.zeros(4, SR), SR, subtype="FLOAT")
    out = tmp_path / "r"
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
            "--metrics", "spatial,doa,direction", "--seconds", "1", "--no-progress", "--n-figures", "0"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    for key in (
        "doa_error_deg",
        "corr_all",
        "auc_j_1fps",
        "angular_error_deg_map_clip",
        "azimuth_error_deg_intensity_1s",
    ):
        assert math.isnan(report["metrics"][key]), key  # an all-silent prediction once scored a 43° DOA error
        assert math.isnan(report["per_clip"]["a"][key]), key
    reasons = "\n".join(report["warnings"])
    assert "doa_error: 2 of 2 value(s) are NaN (silent prediction or ground truth)" in reasons
    assert "constant energy map" in reasons
    assert all("\n" not in w for w in report["warnings"])


def test_evaluate_binaural_silence_is_nan(tmp_path):
    _write_set(tmp_path / "gt", ["a", "b"], 60.0, channels=2)
    (tmp_path / "pred").mkdir()
    for stem in ("a", "b"):
        write_audio(tmp_path / "pred" / f"{stem}.wav", torch.zeros(2, SR), SR, subtype="FLOAT")
    out = tmp_path / "r"
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
            "--metrics", "doa,binaural", "--seconds", "1", "--no-progress", "--n-figures", "0"]  # fmt: skip
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in (
        "lateral_error_deg",
        "iacc_error",
        "lr_balance_agreement",
        "ild_error_db_500_1500hz",
        "ipd_error_rad_0_500hz",
    ):
        assert math.isnan(m[key]), key


def test_evaluate_warns_when_a_prediction_is_shorter_than_its_truth(tmp_path):
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    g = torch.Generator().manual_seed(0)
    for stem, n_pred in (("short", SR // 2), ("same", 2 * SR)):
        s = torch.randn(2 * SR, generator=g, dtype=torch.float64) * 0.1
        x = foa.encode(s, 0.5, 0.0).float()
        write_audio(tmp_path / "gt" / f"{stem}.wav", x, SR, subtype="FLOAT")
        write_audio(tmp_path / "pred" / f"{stem}.wav", x[:, :n_pred], SR, subtype="FLOAT")
    out = tmp_path / "r"
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
            "--metrics", "doa", "--seconds", "2", "--no-progress", "--n-figures", "0"]  # fmt: skip
    assert main(args) == 0
    warnings = json.loads((out / "metrics.json").read_text())["warnings"]
    assert warnings == [
        f"{tmp_path / 'pred' / 'short.wav'}: prediction is 0.50 s but its ground truth short.wav is 2.00 s; "
        "clips are cut / padded to 2 s: prediction zero-padded by 1.50 s, truth unchanged"
    ]
    assert "Warnings:" in (out / "metrics.md").read_text()


def test_clean_reports_carry_no_warnings(tmp_path):
    stems = [f"c{i}" for i in range(10)]
    _write_set(tmp_path / "gt", stems, 0.0)
    _write_set(tmp_path / "pred", stems, 5.0, seed=1)
    out = tmp_path / "r"
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out), "--seconds", "1",
            "--metrics", "doa,kl,is,fd", "--embedder", "tiny", "--classifier", "tiny", "--no-progress", "--n-figures", "0",
            "--batch-size", "4"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["warnings"] == []  # once three "compute called before update" lines
    assert "Warnings" not in (out / "metrics.md").read_text()
    assert report["protocol_settings"]["is_splits"] == 10


def test_help_lists_the_protocols(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("av-benchmark:", "visage:", "spatialgen:"):
        assert sum(line.strip().startswith(name) for line in text.splitlines()) == 1, name


def test_fixed_protocols_refuse_their_fixed_options_and_too_few_clips_for_is(tmp_path, capsys):
    _write_set(tmp_path / "gt", ["a", "b"], 0.0)
    _write_set(tmp_path / "pred", ["a", "b"], 0.0)
    base = [
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        str(tmp_path / "gt"),
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
        "--n-figures",
        "0",
    ]
    assert main([*base, "--protocol", "av-benchmark", "--embedder", "tiny"]) == 2
    assert "--embedder is fixed by --protocol av-benchmark" in capsys.readouterr().err
    assert main([*base, "--protocol", "visage", "--seconds", "3"]) == 2
    assert "--seconds is fixed by --protocol visage" in capsys.readouterr().err
    assert main([*base, "--protocol", "visage", "--metrics", "is"]) == 2
    assert "reports no IS" in capsys.readouterr().err
    assert main([*base, "--metrics", "is", "--classifier", "tiny"]) == 2
    assert "needs at least 10 clips" in capsys.readouterr().err
