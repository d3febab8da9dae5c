"""``python -m examples.demo --quick``: the whole pipeline at tiny size produces every artefact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from examples import demo


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert demo.main(["--quick", "--out", str(out)]) == 0
    return out


def test_quick_demo_writes_every_artefact(quick_run: Path) -> None:
    out = quick_run
    report = (out / "report.md").read_text()
    assert "## ViSAudio (binaural): left/right confusion" in report
    assert "## ViSAGe (FOA): direction of arrival of the visible source" in report
    for row in ("| ViSAudio |", "| ViSAGe |", "baseline: silence", "baseline: mono", "baseline: random"):
        assert row in report
    for model in ("visaudio", "visage"):
        assert (out / "models" / model / "config.json").is_file()
        assert (out / "models" / model / "model.safetensors").is_file()
        assert (out / "export" / f"{model}-synthetic" / "model.safetensors").is_file()
        assert (out / "eval" / model / "report" / "metrics.json").is_file()
        assert (out / "eval" / model / "report" / "metrics.md").is_file()
    test_ids = json.loads((out / "data" / "manifest.json").read_text())["clips"]
    test_ids = [c["clip_id"] for c in test_ids if c["split"] == "test"]
    assert test_ids
    for c in test_ids:
        wav, sr = sf.read(out / "generated" / "visaudio" / c / "video.binaural.wav")
        assert wav.shape[1] == 2 and sr == 16000 and abs(len(wav) / sr - 1.0) < 0.05
        foa, _ = sf.read(out / "generated" / "visage" / c / "video.foa.wav")
        assert foa.shape[1] == 4
        for name in ("visaudio/" + c + "/video.binaural.mp4", "visage/" + c + "/video.foa.mp4"):
            assert (out / "generated" / name).stat().st_size > 0
            assert f"generated/{name}" in report
    figures = sorted((out / "figures").glob("*.png")) + sorted((out / "eval").rglob("*.png"))
    assert len(figures) >= 2
    for fig in figures:
        assert fig.relative_to(out).as_posix() in report
    results = json.loads((out / "results.json").read_text())
    assert results["timings_s"]["total"] > 0
    # the baselines are fixed by construction: silence and centre never pick a side
    assert results["binaural"]["baseline: silence"]["lr_confusion_ild"] == 1.0
    assert results["binaural"]["baseline: mono centre-panned"]["lr_confusion_meta"] == 1.0
    assert results["foa"]["baseline: silence (no direction = 90°)"]["median_doa_error_deg"] == 90.0


def test_quick_demo_exports_reload_and_generate(quick_run: Path) -> None:
    from spatialgen.hub import load_export

    pipe = load_export(quick_run / "models" / "visaudio")
    assert pipe.output_format == "binaural"
    assert load_export(quick_run / "models" / "visage").output_format == "foa"


def _clip(tmp_path: Path, az_deg: float, seconds: float = 1.0) -> Path:
    """A meta.json with one visible source at ``az_deg`` (camera frame), active all the time."""
    from spatialgen.data.synthetic import generate_dataset

    root = tmp_path / "ds"
    manifest = generate_dataset(root, 1, 3, duration=seconds, camera="fixed", max_sources=1, distractors=False,
                                split_ratios={"train": 1.0, "val": 0.0, "test": 0.0}, progress=False)  # fmt: skip
    path = root / manifest.clips[0].path / "meta.json"
    meta = json.loads(path.read_text())
    src = next(s for s in meta["sources"] if s["visible"])
    n = len(src["camera_az_deg"])
    src["camera_az_deg"], src["camera_el_deg"], src["activity"] = [az_deg] * n, [0.0] * n, [1.0] * n
    path.write_text(json.dumps(meta))
    return path


def test_direction_tables_score_physics(tmp_path: Path) -> None:
    """A source hard left: the true left-louder signal scores 0 % confusion; the mirrored one 100 %."""
    meta = _clip(tmp_path, 60.0)
    sr = 16000
    x = np.random.default_rng(0).normal(size=sr) * 0.1
    left, right = tmp_path / "left.wav", tmp_path / "right.wav"
    sf.write(left, np.stack([x, 0.3 * x], 1), sr)
    sf.write(right, np.stack([0.3 * x, x], 1), sr)
    table = demo.binaural_direction_table(
        {"c": left}, {"good": {"c": left}, "bad": {"c": right}}, {"c": meta}, 0
    )
    assert table["good"]["lr_confusion_meta"] == 0.0 and table["good"]["lateral_blocks_meta"] == 2
    assert table["good"]["lr_confusion_ild"] == 0.0
    assert table["bad"]["lr_confusion_meta"] == 1.0 and table["bad"]["lr_confusion_ild"] == 1.0
    # FOA plane wave from az 60°, el 0 (AmbiX W, Y, Z, X, SN3D): DOA error ~0; front baseline = 60°
    az = math.radians(60.0)
    foa = np.stack([x, x * math.sin(az), 0 * x, x * math.cos(az)], 1)
    wave = tmp_path / "foa.wav"
    sf.write(wave, foa, sr, subtype="FLOAT")
    t = demo.foa_direction_table({"c": wave}, {"c": wave}, {"c": meta}, 0)
    assert t["ViSAGe"]["median_doa_error_deg"] < 1.0
    assert t["baseline: mono / centre (front)"]["median_doa_error_deg"] == pytest.approx(60.0, abs=1e-6)
    assert t["ViSAGe"]["blocks"] == 2


def test_truth_directions_blocks(tmp_path: Path) -> None:
    u = demo.truth_directions(_clip(tmp_path, -90.0), 2)
    np.testing.assert_allclose(u, [[0.0, -1.0, 0.0]] * 2, atol=1e-9)


def test_spatialgen_demo_needs_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from spatialgen.demo import find_checkout, main

    assert find_checkout(Path(__file__).parent) == Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    assert find_checkout() is None
    assert main(["--quick"]) == 2
    assert "no spatialgen source checkout here" in capsys.readouterr().err


def test_bad_arguments() -> None:
    with pytest.raises(SystemExit, match="--steps-visage must be >= 1"):
        demo.main(["--steps-visage", "0", "--out", "unused"])
    with pytest.raises(SystemExit, match=r"--seconds must be >= 0\.5"):
        demo.main(["--seconds", "0.2", "--out", "unused"])


@pytest.mark.slow
def test_full_demo_models_beat_the_baselines(tmp_path: Path) -> None:
    """The learning check of ``make demo`` at its defaults (~10 min on 2 cores): the binaural model puts the
    source in the right ear far more often than a random side, the FOA model points far closer to it than
    "always front" (the strong baseline here: every scored source is in the picture)."""
    out = tmp_path / "out"
    assert demo.main(["--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    binaural, foa = results["binaural"], results["foa"]
    random_side = binaural["baseline: random side"]["lr_confusion_meta"]
    assert binaural["ViSAudio"]["lr_confusion_meta"] <= 0.5 * random_side, binaural
    front = foa["baseline: mono / centre (front)"]["median_doa_error_deg"]
    assert foa["ViSAGe"]["median_doa_error_deg"] <= 0.6 * front, foa
