"""`spatialgen export`: Lightning checkpoint -> export with EMA (default) or raw weights, card from the
run; the export callback; the rendered card's metadata and metrics table."""

from __future__ import annotations

import types
from pathlib import Path

import lightning
import pytest
import torch
from huggingface_hub import ModelCard

from spatialgen.cli import main as cli_main
from spatialgen.hub.callback import HubExportCallback
from spatialgen.hub.card import CardInfo, build_model_card, card_sections, load_metrics
from spatialgen.training import EMA
from spatialgen.training.visage import ViSAGeModule
from zoo import load_pretrained

RECIPE = """seed_everything: 1
model:
  class_path: spatialgen.training.visage.ViSAGeModule
  init_args: {config: visage_tiny}
data:
  class_path: spatialgen.data.datamodule.SpatialDataModule
  init_args: {dataset: synthetic, root: data/synthetic, format: foa, clip_seconds: 1.0}
"""


def tiny_module() -> ViSAGeModule:
    return ViSAGeModule(
        config="visage_tiny",
        encoder="tiny",
        encoder_kwargs={"embed_dim": 16, "input_size": [56, 56], "fps": 800.0},
        encoder_pretrained=False,
        codec_pretrained=False,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as LightningCLI leaves it: version_0/{config.yaml, metrics.csv, checkpoints/last.ckpt}."""
    root = tmp_path_factory.mktemp("run") / "version_0"
    (root / "checkpoints").mkdir(parents=True)
    module = tiny_module()
    raw = {k: v.clone() for k, v in module.network.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    ema = {
        n: p.detach() + 0.1 * torch.randn(p.shape, generator=g) for n, p in module.network.named_parameters()
    }
    ckpt = {
        "state_dict": {k: v for k, v in module.state_dict().items() if not k.startswith("frozen.")},
        "hyper_parameters": dict(module.hparams),
        "callbacks": {"EMA": {"ema": ema, "num_updates": 7, "decay": 0.9}},
        "epoch": 3,
        "global_step": 42,
        "pytorch-lightning_version": lightning.__version__,
    }
    module.on_save_checkpoint(ckpt)  # what Lightning calls: names the module class for export
    torch.save(ckpt, root / "checkpoints" / "last.ckpt")
    (root / "config.yaml").write_text(RECIPE)
    (root / "metrics.csv").write_text(
        "epoch,step,train/loss,val/loss,val/acc\n0,10,5.0,,\n0,10,,4.5,0.1\n3,42,,3.25,0.5\n"
    )
    return types.SimpleNamespace(ckpt=root / "checkpoints" / "last.ckpt", raw=raw, ema=ema)


def _network_equal(pipe, weights) -> bool:
    sd = pipe.network.state_dict()
    return all(torch.equal(sd[k], v) for k, v in weights.items())


def test_export_cli_writes_ema_weights_and_card(run, tmp_path):
    out = tmp_path / "export"
    assert cli_main(["export", str(run.ckpt), "--out", str(out), "--name", "visage-tiny"]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "config.json", "figures/sample.png", "model.safetensors"]
    pipe = load_pretrained(out)
    assert _network_equal(pipe, run.ema) and not _network_equal(pipe, run.raw)
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "spatialgen" and card.data.model_name == "visage-tiny"
    assert RECIPE.strip() in card.content  # the exact recipe YAML
    assert "| val/loss | 3.25 |" in card.content and "| val/acc | 0.5 |" in card.content
    assert "EMA weights, epoch 3, step 42" in card.content and "![" in card.content
    assert "`dataset: synthetic`" in card.content

    raw_out = tmp_path / "raw"
    assert cli_main(["export", str(run.ckpt), "--out", str(raw_out), "--no-ema", "--no-figure"]) == 0
    assert _network_equal(load_pretrained(raw_out), run.raw)
    assert not (raw_out / "figures").exists()
    # the checkpoint itself also loads (EMA weights)
    assert _network_equal(load_pretrained(run.ckpt), run.ema)


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spatialgen export: error:") and "nope.ckpt" in err and "\n" not in err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    assert cli_main(["export", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable Lightning checkpoint" in capsys.readouterr().err


def test_callback_exports_periodically_and_at_end(tmp_path):
    module = tiny_module()
    ema = EMA(decay=0.9)
    ema.names = [n for n, _ in module.network.named_parameters()]
    ema.ema = [p.detach() + 1.0 for _, p in module.network.named_parameters()]
    trainer = types.SimpleNamespace(
        callbacks=[ema],
        log_dir=None,
        callback_metrics={"val/loss": torch.tensor(2.5), "train/loss": torch.tensor(3.0)},
        current_epoch=1,
        global_step=20,
        is_global_zero=True,
        sanity_checking=False,
    )
    cb = HubExportCallback(
        dirpath=str(tmp_path / "exports"), every_n_epochs=2, card={"license": "apache-2.0"}
    )
    cb.on_train_epoch_end(trainer, module)  # epoch 2 of every 2
    trainer.current_epoch = 2
    cb.on_train_epoch_end(trainer, module)  # epoch 3: nothing
    cb.on_fit_end(trainer, module)
    assert cb.exported == [tmp_path / "exports" / "latest", tmp_path / "exports" / "final"]
    pipe = load_pretrained(tmp_path / "exports" / "final")
    assert _network_equal(pipe, dict(zip(ema.names, ema.ema)))
    card = ModelCard.load(tmp_path / "exports" / "final" / "README.md")
    assert card.data.license == "apache-2.0" and "| val/loss | 2.5 |" in card.content
    assert "train/loss" not in card.content


def test_rendered_card_metadata_and_metrics_table(tmp_path):
    from zoo.entries import build_visage_debug

    pipe = build_visage_debug()
    info = CardInfo(
        model_name="visage-demo",
        repo_id="me/visage-demo",
        datasets=["me/synthetic-360"],
        base_model="jaeyeonkim99/visage",
        recipe=RECIPE,
        metrics={"energy_map_cc": 0.61234, "energy_map_auc": 0.8, "doa_error_deg": 14.5},
        metrics_dataset="synthetic test split",
        figure="figures/sample.png",
        license="cc-by-nc-4.0",
        tags=["demo"],
    )
    card = build_model_card(pipe, info)
    path = tmp_path / "README.md"
    card.save(path)
    loaded = ModelCard.load(path)
    data = loaded.data
    assert data.library_name == "spatialgen" and data.license == "cc-by-nc-4.0"
    assert {"spatialgen", "spatial-audio", "video-to-audio", "visage", "foa", "demo"} <= set(data.tags)
    assert data.datasets == ["me/synthetic-360"] and data.base_model == "jaeyeonkim99/visage"
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"energy_map_cc": 0.61234, "energy_map_auc": 0.8, "doa_error_deg": 14.5}
    assert all(r.dataset_name == "synthetic test split" for r in data.eval_results)
    lines = loaded.content.splitlines()
    start = lines.index("| metric | value |")
    assert lines[start + 1 : start + 5] == [
        "|---|---|",
        "| energy_map_cc | 0.6123 |",
        "| energy_map_auc | 0.8 |",
        "| doa_error_deg | 14.5 |",
    ]
    assert card_sections(loaded) == [
        "Usage",
        "Intended use",
        "Limitations and out-of-scope use",
        "Training data",
        "Evaluation",
        "Licence",
        "Citation",
    ]
    assert "ViSAGe: Video-to-Spatial Audio Generation" in loaded.content.replace("{", "").replace("}", "")
    assert 'load_pretrained("me/visage-demo")' in loaded.content and "16000 Hz" in loaded.content
    assert "![Sample output](figures/sample.png)" in loaded.content


def test_load_metrics_formats(tmp_path):
    report = tmp_path / "metrics.json"
    report.write_text('{"n_clips": 3, "metrics": {"fd": 1.5, "kl": 0.25}, "per_clip": {}}')
    assert load_metrics(report) == {"fd": 1.5, "kl": 0.25}
    flat = tmp_path / "flat.json"
    flat.write_text('{"a": 1, "b": "x"}')
    assert load_metrics(flat) == {"a": 1.0}
    with pytest.raises(FileNotFoundError, match="metrics file"):
        load_metrics(Path(tmp_path / "missing.json"))
