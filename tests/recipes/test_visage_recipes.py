"""ViSAGe recipes: they parse with the paper's settings, and fast_dev_run trains on the synthetic set."""

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import save_file

from spatialgen.cli import main
from spatialgen.models.visage import ViSAGe, get_config
from tests.recipes import synthetic_root

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
FAST = str(RECIPES / "debug" / "fast_dev_run.yaml")
# The real recipes at CPU test size on the synthetic data: every override is an ordinary CLI flag.
SMALL_OVERRIDES = [
    "--model.init_args.encoder=tiny",
    '--model.init_args.encoder_kwargs={"embed_dim": 32, "input_size": [56, 56], "fps": 4.0}',
    "--model.init_args.encoder_pretrained=false",
    "--model.init_args.codec_name=dac_synthetic",
    "--model.init_args.codec_pretrained=false",
    "--model.init_args.val_num_clips=1",
    "--data.init_args.dataset=synthetic",
    "--data.init_args.sample_rate=16000",
    "--data.init_args.clip_seconds=1.0",
    "--data.init_args.batch_size=2",
    "--data.init_args.num_workers=0",
    "--trainer.precision=32-true",
    "--trainer.devices=1",
]
TINY_WIDTH = json.dumps(
    {"clip_seconds": 1.0, "d_model": 32, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}
    | {"encoder_heads": 2, "decoder_heads": 2}
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic_root(tmp_path_factory)


def _load(name: str) -> dict:
    return yaml.safe_load((RECIPES / name).read_text())


def test_real_recipes_hold_the_paper_settings():
    for name, config, epochs, dataset, fmt in (
        ("visage_pretrain_vggsound.yaml", "visage_mono", 50, "vggsound", "mono"),
        ("visage_finetune.yaml", "visage", 80, "ytambigen", "foa"),
    ):
        r = _load(name)
        model, data, trainer = r["model"]["init_args"], r["data"]["init_args"], r["trainer"]
        assert r["seed_everything"] == 1115 and model["config"] == config
        assert model["optimizer"]["class_path"] == "torch.optim.AdamW"
        assert model["optimizer"]["init_args"]["lr"] == 1e-4
        assert model["optimizer"]["init_args"]["weight_decay"] == 0.01
        assert model["visual_dropout"] == 0.1 and model["dropout_scope"] == "batch"
        assert model["sampling"] == {
            "guidance": "joint",
            "cfg_scale": 2.5,
            "top_k": 256,
            "temperature": 1.0,
        }
        assert (data["dataset"], data["format"], data["batch_size"], data["fps"]) == (dataset, fmt, 64, 4.0)
        assert data["clip_seconds"] == 5.0 and data["sample_rate"] == 44100
        assert trainer["max_epochs"] == epochs and trainer["gradient_clip_val"] == 1.0
        checkpoint = next(c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint"))
        assert checkpoint["init_args"]["save_last"] is True
    pre, fine = _load("visage_pretrain_vggsound.yaml"), _load("visage_finetune.yaml")
    warmup = pre["model"]["init_args"]["lr_scheduler"]["init_args"]
    assert warmup["total_iters"] == 4000 and warmup["start_factor"] == 1 / 4000  # constant_with_warmup
    assert fine["model"]["init_args"]["lr_scheduler"] is None  # constant
    f = fine["model"]["init_args"]
    assert f["direction_dropout"] == 0.1 and f["init_from_mono"].endswith("last.ckpt")
    d = fine["data"]["init_args"]
    assert (d["foa_frame"], d["rotate_prob"], d["rotate_angles_deg"]) == ("world", 0.5, [90.0])


@pytest.mark.parametrize(
    "name", ["visage_synthetic.yaml", "visage_pretrain_vggsound.yaml", "visage_finetune.yaml"]
)
def test_recipes_parse(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(RECIPES / name), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "spatialgen.training.visage.ViSAGeModule"
    assert printed["data"]["class_path"] == "spatialgen.data.datamodule.SpatialDataModule"


def test_synthetic_recipe_fast_dev_run(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(RECIPES / "visage_synthetic.yaml"), "--config", FAST]
    args += [f"--data.init_args.root={root}", "--model.init_args.sample_every_n_epochs=1"]
    args += [f"--model.init_args.config_overrides={TINY_WIDTH}", "--data.init_args.batch_size=2"]
    assert main(args) == 0
    generated = list((tmp_path / "runs" / "visage_synthetic").rglob("*_generated.wav"))
    assert generated  # validation generated (fast_dev_run runs one validation batch)


@pytest.mark.slow
def test_pretrain_and_finetune_recipes_fast_dev_run(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = [*SMALL_OVERRIDES, f"--data.init_args.root={root}", f"--trainer.default_root_dir={tmp_path}"]
    pre = ["fit", "--config", str(RECIPES / "visage_pretrain_vggsound.yaml"), "--config", FAST, *common]
    pre += ["--model.init_args.config=visage_small_mono", f"--model.init_args.config_overrides={TINY_WIDTH}"]
    assert main(pre) == 0
    # stage 2 starts from a stage-1 export of the same width
    mono = ViSAGe(get_config("visage_small_mono", **yaml.safe_load(TINY_WIDTH)))
    export = tmp_path / "mono.safetensors"
    save_file({f"network.{k}": v.contiguous() for k, v in mono.state_dict().items()}, str(export))
    fine = ["fit", "--config", str(RECIPES / "visage_finetune.yaml"), "--config", FAST, *common]
    fine += ["--model.init_args.config=visage_small", f"--model.init_args.config_overrides={TINY_WIDTH}"]
    fine += [f"--model.init_args.init_from_mono={export}"]
    assert main(fine) == 0
