"""The synthetic dataset is synthesised on first use (``data.init_args.synthesize``); root errors guide."""

from __future__ import annotations

from pathlib import Path

import pytest

from spatialgen.data.clips import DatasetError
from spatialgen.data.datamodule import SpatialDataModule
from spatialgen.data.frame_direction import FrameDirectionDataModule
from spatialgen.data.registry import create_dataset
from spatialgen.data.synthetic import ensure_synthetic, generate_dataset, read_manifest

TINY = {
    "n_clips": 3,
    "seed": 3,
    "duration": 0.5,
    "equirect_size": [64, 128],
    "view_size": [32, 32],
    "max_sources": 1,
    "distractors": False,
}


def test_first_use_synthesises_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data" / "synth"
    assert ensure_synthetic(root, TINY, workers=1) == root
    err = capsys.readouterr().err
    assert f"synthesising the synthetic dataset into {root} (3 clips, seed 3" in err
    manifest = read_manifest(root)
    assert len(manifest.clips) == 3 and manifest.config["duration"] == 0.5
    assert not root.with_name("synth.partial").exists()
    # Same files as `spatialgen data synth` with the same settings (deterministic).
    direct = tmp_path / "direct"
    settings = {k: v for k, v in TINY.items() if k not in ("n_clips", "seed")}
    generate_dataset(direct, 3, 3, progress=False, **settings)
    for file in ("clip_000002/video.mp4", "clip_000002/binaural.wav", "manifest.json"):
        assert (root / file).read_bytes() == (direct / file).read_bytes(), file
    # Second use: nothing is written, nothing announced.
    stamp = (root / "manifest.json").stat().st_mtime_ns
    ensure_synthetic(root, TINY, workers=1)
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    assert "synthesising" not in capsys.readouterr().err


def test_other_settings_warn_foreign_folders_refused(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    ensure_synthetic(root, TINY, workers=1)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    with pytest.warns(UserWarning, match=r"n_clips=3 where synthesize asks for 4; using it as is"):
        ensure_synthetic(root, {**TINY, "n_clips": 4})
    with pytest.warns(UserWarning, match=r"duration=0.5 where synthesize asks for 1.0"):
        ensure_synthetic(root, {**TINY, "duration": 1.0})
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # never overwritten
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"exists but holds no manifest\.json"):
        ensure_synthetic(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "x"


def test_interrupted_partial_is_redone(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    partial = tmp_path / "synth.partial"
    (partial / "clip_000000").mkdir(parents=True)
    (partial / "clip_000000" / "video.mp4").write_bytes(b"truncated")
    ensure_synthetic(root, TINY, workers=1)
    assert not partial.exists()
    assert (root / "clip_000000" / "video.mp4").stat().st_size > 100


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_clip": 3}, r"unknown setting\(s\) \['n_clip'\]; accepted: n_clips, seed"),
        ({"seed": 1}, "needs n_clips"),
        ([3], "must be a mapping"),
    ],
)
def test_bad_settings_fail_before_work(tmp_path: Path, settings: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        SpatialDataModule("synthetic", str(tmp_path / "x"), synthesize=settings)
    with pytest.raises(DatasetError, match=message):
        FrameDirectionDataModule("synthetic", str(tmp_path / "x"), synthesize=settings)
    assert not (tmp_path / "x").exists()


def test_synthesize_only_for_the_synthetic_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthesize is for dataset: synthetic, not 'vggsound'"):
        SpatialDataModule("vggsound", str(tmp_path), format="mono", synthesize={"n_clips": 2})


def test_datamodule_setup_synthesises(tmp_path: Path) -> None:
    root = tmp_path / "data"
    dm = SpatialDataModule(
        "synthetic",
        str(root),
        val_split=None,
        clip_seconds=0.5,
        format="binaural",
        batch_size=2,
        synthesize={**TINY, "n_clips": 6},
    )
    dm.setup("fit")
    assert 1 <= len(dm.datasets["train"]) <= 6
    assert (root / "manifest.json").is_file()
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape[-2] == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("synthetic", "spatialgen data synth --out"),
        ("biaudio", "spatialgen data biaudio --src DIR"),
        ("ytambigen", "github.com/jaeyeonkim99/visage"),
        ("vggsound", "www.robots.ox.ac.uk/~vgg/data/vggsound/"),
    ],
)
def test_missing_root_says_where_to_get_it(tmp_path: Path, name: str, expected: str) -> None:
    from spatialgen.data.clips import ClipOptions

    options = ClipOptions(format="mono") if name == "vggsound" else ClipOptions()
    with pytest.raises(DatasetError, match="dataset root not found") as info:
        create_dataset(name, tmp_path / "nowhere", "train", options)
    assert expected in str(info.value)
    assert "video/" in str(info.value) or "manifest.json" in str(info.value)
