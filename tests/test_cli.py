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
    assert "examples:\n  spatialgen fit --config recipes/visage_synthetic.yaml" in out.stdout


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


def test_mistyped_command_gets_a_suggestion(capsys) -> None:
    assert cli.main(["generat", "x.mp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "spatialgen: unknown command 'generat' (did you mean 'generate'?). Run 'spatialgen --help' for what each does."
    )
    assert cli.main(["data", "synt"]) == 2
    assert "unknown data tool 'synt' (did you mean 'synth'?)" in capsys.readouterr().err


DATA = "spatialgen.data.datamodule.SpatialDataModule"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # a ValueError from spatialgen's own argument check, wrapped by jsonargparse's instantiation
        ([f"--data={DATA}", "--data.rotate_prob=1.5"], "rotate_prob must be in [0, 1], got 1.5"),
        # a SpatialgenError (registry name with its "did you mean") inside the model's __init__
        (
            ["--model=spatialgen.training.visual_direction.VisualDirectionModule", "--model.encoder=tiyn"],
            "unknown encoder 'tiyn'. Did you mean 'tiny'?",
        ),
        # a parse error: a missing file, a value of the wrong type
        (["--config=missing.yaml"], 'Parser key "config": File does not exist'),
        (["--trainer.max_epochs=abc"], "Parser key \"trainer.max_epochs\": Expected a <class 'int'>"),
    ],
)
def test_fit_misuse_is_one_line(args, line, capsys, tmp_path) -> None:
    argv = ["fit", f"--model={BORING}.BoringModel", f"--data={BORING}.BoringDataModule"]
    argv += ["--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}", *args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    ours = [text for text in err.splitlines() if text.startswith("spatialgen fit: error: ")]
    assert len(ours) == 1 and line in ours[0] and "Traceback" not in err


def test_fit_debug_shows_the_traceback(monkeypatch, tmp_path) -> None:
    argv = ["fit", f"--model={BORING}.BoringModel", f"--data={DATA}", "--data.rotate_prob=1.5"]
    with pytest.raises(ValueError):
        cli.main([*argv, "--debug"])
    monkeypatch.setenv("SPATIALGEN_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main(argv)


def test_user_error_finds_the_root_and_keeps_bugs() -> None:
    from spatialgen.errors import SpatialgenError
    from spatialgen.registry import Registry

    try:
        try:
            Registry("thing").get("nope")
        except SpatialgenError as inner:
            raise ValueError("Does not validate against any of the Union subtypes") from inner
    except ValueError as outer:
        assert isinstance(cli.user_error(outer), SpatialgenError)
    try:
        int("not a number")  # a ValueError raised outside spatialgen: a bug, keeps its traceback
    except ValueError as bug:
        assert cli.user_error(bug) is None
    assert cli.user_error(RuntimeError("boom")) is None


def test_user_error_outside_configuration() -> None:
    from spatialgen.data.augment import Augment
    from spatialgen.training.visage import load_network_state

    try:
        Augment(rotate_prob=1.5)  # spatialgen's ValueError, but not while jsonargparse builds the config
    except ValueError as err:
        assert cli.user_error(err) is None  # during training this could be a bug: traceback kept
    try:
        load_network_state("missing.ckpt")  # a missing file is the user's, whenever it is found
    except FileNotFoundError as err:
        assert cli.user_error(err) is err and "init_from_mono: missing.ckpt does not exist" in str(err)


def test_lightning_shim_suggests_trainer_commands(capsys, monkeypatch) -> None:
    monkeypatch.setattr(entry.importlib.util, "find_spec", lambda name: None)
    assert entry.lightning_main(["fti", "--config", "x.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "lightning: unknown command 'fti' (did you mean 'fit'?)"
