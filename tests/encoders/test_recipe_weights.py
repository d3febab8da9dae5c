"""``recipe:NAME`` weight specs: the file a recipe exports, made by ``spatialgen fit`` on first use.

The chained run is replaced here by a runner that writes a seeded ``tiny`` encoder where the recipe
exports (seconds); the real child process runs in tests/recipes/test_synthetic_recipes_fresh.py (slow).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import spatialgen.encoders.recipe_weights as chain
from spatialgen.encoders import EncoderWeightsError, create_encoder
from spatialgen.training.visage import ViSAGeModule
from spatialgen.training.visaudio import ViSAudioModule
from tests.training.test_visage_module import ENCODER as VISAGE_ENCODER
from tests.training.test_visage_module import SMALL as VISAGE_SMALL
from tests.training.test_visaudio_module import MODEL as VISAUDIO_MODEL

TINY = {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(folder: Path, export: str | None = "runs/pre/enc.safetensors", name: str = "pre") -> Path:
    """A recipe file whose model exports ``export`` (relative to the current folder)."""
    args = f"\n    export_path: {export}" if export else ""
    path = folder / f"{name}.yaml"
    path.write_text(
        "model:\n  class_path: spatialgen.training.visual_direction.VisualDirectionModule\n"
        f"  init_args:\n    encoder: tiny{args}\n"
    )
    return path


class FakeFit:
    """Stands in for ``spatialgen fit``: writes a seeded tiny encoder (of ``kwargs``) to ``target``."""

    def __init__(self, target: Path | None, code: int = 0, **kwargs) -> None:
        self.target, self.code, self.kwargs, self.calls = target, code, kwargs or TINY, []

    def __call__(self, cmd, env) -> int:
        self.calls.append((list(cmd), dict(env)))
        if self.target is not None and self.code == 0:
            torch.manual_seed(7)
            enc = create_encoder("tiny", pretrained=False, **self.kwargs)
            with torch.no_grad():  # non-default values everywhere, norms and biases included
                for p in enc.parameters():
                    p.add_(torch.randn_like(p))
            self.target.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(self.target))
        return self.code


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(chain._ACTIVE_ENV, raising=False)

    def install(target: Path | None, code: int = 0, **kwargs) -> FakeFit:
        runner = FakeFit(target, code, **kwargs)
        monkeypatch.setattr(chain, "_run_child", runner)
        return runner

    return install


def test_missing_file_is_made_once_by_the_recipe_then_loaded(tmp_path, fake, capsys) -> None:
    recipe = _recipe(tmp_path)
    target = Path("runs/pre/enc.safetensors")
    runner = fake(tmp_path / target)
    enc = create_encoder("tiny", pretrained=f"recipe:{recipe}", **TINY)
    # exactly `spatialgen fit --config <recipe>` with this interpreter, importing this spatialgen
    ((cmd, env),) = runner.calls
    assert cmd == [sys.executable, "-m", "spatialgen", "fit", "--config", str(recipe)]
    assert env["PYTHONPATH"].split(":")[0] == str(Path(chain.__file__).resolve().parents[2])
    err = capsys.readouterr().err
    assert f"spatialgen: {target} (weights for encoder 'tiny') not found; making it now with " in err
    assert "`spatialgen fit --config pre.yaml`" in err and f"made {target}" in err
    assert not list(target.parent.glob("*.lock"))  # the lock is cleaned up
    # the loaded weights are the file's
    from safetensors.torch import load_file

    stored = load_file(str(target))
    for key, value in enc.state_dict().items():
        torch.testing.assert_close(value, stored[key], rtol=0, atol=0)
    # second use: the file exists, nothing runs, nothing is announced
    create_encoder("tiny", pretrained=f"recipe:{recipe}", **TINY)
    assert len(runner.calls) == 1 and capsys.readouterr().err == ""


def test_a_missing_plain_path_is_an_error_and_never_a_training_run(tmp_path, fake) -> None:
    runner = fake(tmp_path / "runs/visual_direction/tiny.safetensors")
    with pytest.raises(EncoderWeightsError) as info:
        create_encoder("tiny", pretrained="runs/visual_direction/tiny.safetensors", **TINY)
    assert str(info.value) == (
        "runs/visual_direction/tiny.safetensors: weight file not found; make it with `spatialgen fit "
        "--config recipes/visual_direction_synthetic.yaml` (CPU, ~1 min), or give "
        "`recipe:visual_direction_synthetic` instead of the path to have it made on first use"
    )
    with pytest.raises(
        EncoderWeightsError, match=r"mine\.safetensors: weight file not found; pass an existing"
    ):
        create_encoder("tiny", pretrained="mine.safetensors", **TINY)
    assert runner.calls == [] and not Path("runs").exists()


def test_recipe_names_resolve_in_the_checkout(fake) -> None:
    path = chain.resolve_recipe("visual_direction_synthetic")
    assert path == chain.recipes_dir() / "visual_direction_synthetic.yaml" and path.is_file()
    assert chain.recipe_output(path) == Path("runs/visual_direction/tiny.safetensors")
    with pytest.raises(EncoderWeightsError, match=r"did you mean 'visual_direction_synthetic'\?"):
        chain.resolve_recipe("visual_direction_synthetc")
    with pytest.raises(EncoderWeightsError, match="needs a recipe name"):
        chain.resolve_recipe("")
    with pytest.raises(EncoderWeightsError, match=r"recipe:nowhere\.yaml: recipe file not found"):
        chain.resolve_recipe("nowhere.yaml")


def test_errors_are_one_line_and_checked_before_any_run(tmp_path, fake) -> None:
    runner = fake(None)
    # a recipe that exports nothing
    with pytest.raises(EncoderWeightsError, match=r"sets no model\.init_args\.export_path"):
        create_encoder("tiny", pretrained=f"recipe:{_recipe(tmp_path, export=None)}", **TINY)
    with pytest.raises(EncoderWeightsError, match=r"sets no model\.init_args\.export_path"):
        create_encoder("tiny", pretrained="recipe:visaudio_synthetic", **TINY)
    # bad encoder options fail before the chained run starts
    with pytest.raises(ValueError, match="multiples of 8"):
        create_encoder("tiny", pretrained=f"recipe:{_recipe(tmp_path)}", input_size=[30, 30])
    assert runner.calls == []
    # a run that finishes without writing the file
    with pytest.raises(EncoderWeightsError, match=r"finished without writing it; check that recipe's"):
        create_encoder("tiny", pretrained=f"recipe:{_recipe(tmp_path)}", **TINY)
    # a run that fails
    fake(None, code=3)
    with pytest.raises(EncoderWeightsError, match=r"`spatialgen fit --config pre\.yaml` failed \(exit 3;"):
        create_encoder("tiny", pretrained=f"recipe:{_recipe(tmp_path)}", **TINY)
    # weights of another architecture than asked for: the loader's shape error
    fake(tmp_path / "runs/pre/enc.safetensors", embed_dim=8, input_size=[32, 32], fps=8.0)
    with pytest.raises(EncoderWeightsError, match="wrong shape"):
        create_encoder("tiny", pretrained=f"recipe:{_recipe(tmp_path)}", **TINY)


def test_a_recipe_needing_its_own_output_is_a_cycle(tmp_path, fake, monkeypatch) -> None:
    recipe = _recipe(tmp_path)
    runner = fake(tmp_path / "runs/pre/enc.safetensors")
    monkeypatch.setenv(chain._ACTIVE_ENV, str(recipe.resolve()))
    with pytest.raises(
        EncoderWeightsError, match=r"needs its own output runs/pre/enc\.safetensors \(a cycle\)"
    ):
        chain.ensure_recipe_weights(str(recipe))
    assert runner.calls == []
    # the child of a chained run is told which recipes are running
    monkeypatch.delenv(chain._ACTIVE_ENV)
    chain.ensure_recipe_weights(str(recipe))
    assert runner.calls[0][1][chain._ACTIVE_ENV] == str(recipe.resolve())


@pytest.mark.parametrize("model", ["visaudio", "visage"])
def test_both_models_take_the_same_spec(tmp_path, fake, model) -> None:
    """Both modules' ``encoder_pretrained`` chain the same way."""
    recipe = _recipe(tmp_path)
    kwargs = VISAUDIO_MODEL["encoder_kwargs"]["tiny"] if model == "visaudio" else VISAGE_ENCODER
    runner = fake(tmp_path / "runs/pre/enc.safetensors", **kwargs)
    if model == "visaudio":
        m = ViSAudioModule(**{**VISAUDIO_MODEL, "encoder_pretrained": f"recipe:{recipe}"})
        enc = m.frozen["encoders"]["tiny"]
    else:
        m = ViSAGeModule(
            config="visage_small",
            config_overrides=VISAGE_SMALL,
            encoder="tiny",
            encoder_kwargs=VISAGE_ENCODER,
            encoder_pretrained=f"recipe:{recipe}",
            codec_pretrained=False,
        )
        enc = m.frozen["encoder"]
    assert len(runner.calls) == 1
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "runs/pre/enc.safetensors"))
    for key, value in enc.state_dict().items():
        torch.testing.assert_close(value, stored[key], rtol=0, atol=0)
