"""The console entry points: spatialgen, lightning (shim) and python -m spatialgen."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from spatialgen import cli, entry

BORING = "lightning.pytorch.demos.boring_classes"


def test_console_scripts_point_at_spatialgen() -> None:
    scripts = {
        ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.dist.name == "spatialgen"
    }
    assert scripts == {"spatialgen": "spatialgen.cli:main", "lightning": "spatialgen.entry:lightning_main"}


def test_fit_runs_lightning_cli(tmp_path) -> None:
    code = cli.main(
        [
            "fit",
            f"--model={BORING}.BoringModel",
            f"--data={BORING}.BoringDataModule",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    assert code == 0


def test_lightning_shim_routes_trainer_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        entry.lightning_main(["fit", "--help"])
    assert exit_info.value.code == 0
    assert "--trainer.max_epochs" in capsys.readouterr().out


def test_lightning_shim_explains_foreign_commands(capsys, monkeypatch) -> None:
    monkeypatch.setattr(entry.importlib.util, "find_spec", lambda name: None)
    assert entry.lightning_main(["studio", "list"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'studio'" in err and "lightning-sdk" in err


def test_unknown_command_exits_2(capsys) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_prints_usage() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "spatialgen", "--help"], capture_output=True, text=True, check=True
    )
    assert "fit" in out.stdout and "usage: spatialgen" in out.stdout


def test_data_synth_is_wired(tmp_path) -> None:
    out = tmp_path / "synth"
    argv = ["data", "synth", "--out", str(out), "--n-clips", "1", "--seed", "3", "--duration", "1", "--quiet"]
    assert cli.main(argv) == 0
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in next(out.glob("clip_*")).iterdir()) == [
        "binaural.wav",
        "equirect.mp4",
        "foa.wav",
        "foa_world.wav",
        "meta.json",
        "video.mp4",
    ]


def test_data_without_tool_lists_tools(capsys) -> None:
    assert cli.main(["data"]) == 0
    assert "synth" in capsys.readouterr().out
    assert cli.main(["data", "bogus"]) == 2
