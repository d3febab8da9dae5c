"""ViSAudio recipes: settings, fast_dev_run on the synthetic set, and (slow) the left/right learning check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import yaml

from spatialgen.cli import main
from tests.training.test_visaudio_module import visaudio_synthetic_root  # noqa: F401  (session fixture)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
FAST = str(RECIPES / "debug" / "fast_dev_run.yaml")
# The full-size recipes at CPU test size (no published weights offline): ordinary CLI flags.
SMALL = [
    "--model.init_args.config=tiny",
    "--model.init_args.codec_name=stft",
    '--model.init_args.codec_kwargs={"sample_rate": 8000, "n_fft": 64, "hop_length": 32}',
    "--model.init_args.codec_pretrained=false",
    "--model.init_args.clip_encoder=tiny",
    "--model.init_args.sync_encoder=tiny",
    "--model.init_args.pe_encoder=tiny",
    '--model.init_args.encoder_kwargs={"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0}}',
    "--model.init_args.encoder_pretrained=false",
    "--model.init_args.clip_seconds=1.0",
    "--model.init_args.sample_steps=2",
    "--model.init_args.init_mmaudio=null",
    "--model.init_args.label_prompts=false",  # the published text tower is not offline (unit-tested apart)
    "--data.init_args.dataset=synthetic",
    "--data.init_args.clip_seconds=1.0",
    "--data.init_args.sample_rate=8000",
    "--data.init_args.batch_size=2",
    "--data.init_args.num_workers=0",
    "--trainer.accelerator=cpu",
    "--trainer.precision=32-true",
    "--trainer.devices=1",
]


def _load(name: str) -> dict:
    return yaml.safe_load((RECIPES / name).read_text())


def test_recipes_hold_their_settings():
    pre, fine, syn = (_load(f"visaudio_{n}.yaml") for n in ("pretrain_vggsound", "finetune", "synthetic"))
    assert pre["data"]["init_args"]["format"] == "mono" and pre["data"]["init_args"]["dataset"] == "vggsound"
    assert fine["data"]["init_args"]["format"] == "binaural" and fine["data"]["init_args"]["swap_prob"] == 0.5
    for r in (pre, fine):  # MMAudio's latent space and init; the synthetic recipe keeps its small codec
        assert r["model"]["init_args"]["init_mmaudio"] == MMAUDIO_INIT
    for r in (pre, fine):
        m = r["model"]["init_args"]
        assert (m["config"], m["clip_encoder"], m["sync_encoder"], m["pe_encoder"]) == (
            "S_16k", "clip_vit_h14_384", "synchformer", "pe_spatial"
        )  # fmt: skip
        assert m["optimizer"]["init_args"]["betas"] == [0.9, 0.95] and m["cfg_scale"] == 4.5
        assert r["data"]["init_args"]["fps"] == 25.0  # Synchformer's rate; 8-fps encoders take nearest frames
    m = syn["model"]["init_args"]
    assert m["codec_name"] == "stft" and {m["clip_encoder"], m["sync_encoder"], m["pe_encoder"]} == {"tiny"}
    assert syn["trainer"]["accelerator"] == "cpu"


MMAUDIO_INIT = "hf://hkchengrex/MMAudio/weights/mmaudio_small_16k.pth"


@pytest.mark.parametrize("recipe", ["visaudio_pretrain_vggsound.yaml", "visaudio_finetune.yaml"])
def test_published_recipes_resolve_to_mmaudio_latents_and_init(recipe, capsys):
    """``fit --print_config``: MMAudio's 16 kHz VAE (posterior sampled), the exact-MMAudio network options
    and the init from MMAudio's released S-16k network; nothing is built or downloaded."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(RECIPES / recipe), "--print_config"])
    assert exit_info.value.code == 0
    m = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert m["codec_name"] == "mmaudio_vae_16k" and m["codec_kwargs"] == {"sample_posterior": True}
    assert m["init_mmaudio"] == MMAUDIO_INIT and m["config"] == "S_16k" and m["label_prompts"] is True
    assert m["config_overrides"] == {
        "sync_align": "index",
        "ear_attention": "joint_offset",
        "final_cond": "global",
    }


def test_finetune_recipe_without_weights_names_every_missing_file(tmp_path, monkeypatch, capsys):
    """Offline with empty caches, ``fit`` stops (exit 2) with one line naming all seven files and how to get them."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path / "spatialgen"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["fit", "--config", str(RECIPES / "visaudio_finetune.yaml"), "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("spatialgen fit: error: 7 weights file(s) missing:")
    for needed in ("ext_weights/v1-16.pth", "ext_weights/best_netG.pt", "vit_huge_patch14_clip_378.dfn5b",
                   "synchformer_state_dict.pth", "vit_pe_spatial_large_patch14_448", "weights/mmaudio_small_16k.pth",
                   "DFN5B-CLIP-ViT-H-14-384/open_clip_pytorch_model.bin"):  # fmt: skip
        assert needed in err
    assert (
        err.count("hf download") == 6 and str(tmp_path / "spatialgen" / "synchformer_state_dict.pth") in err
    )


def _cache(root: str, out: Path) -> Path:
    if not (out / "train" / "index.json").exists():
        assert main(["data", "features", "--dataset", "synthetic", "--root", root, "--out", str(out),
                     "--splits", "train,val", "--encoders", "tiny", "--codec", "stft", "--format", "binaural",
                     "--patch-tokens", "--random-weights", "--quiet"]) == 0  # fmt: skip
    return out


def test_synthetic_recipe_fast_dev_run(visaudio_synthetic_root, tmp_path):  # noqa: F811
    cache = _cache(visaudio_synthetic_root, tmp_path / "cache")
    args = ["fit", "--config", str(RECIPES / "visaudio_synthetic.yaml"), "--config", FAST,
            f"--data.init_args.root={visaudio_synthetic_root}", f"--data.init_args.cache_dir={cache}",
            "--data.init_args.source=cache", "--model.init_args.encoder_pretrained=false",
            "--data.init_args.batch_size=2", "--model.init_args.sample_every_n_epochs=1",
            "--model.init_args.sample_steps=2", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
            "--trainer.callbacks=[]"]  # fmt: skip
    assert main(args) == 0


@pytest.mark.parametrize("recipe", ["visaudio_pretrain_vggsound.yaml", "visaudio_finetune.yaml"])
def test_full_recipes_fast_dev_run_on_synthetic(recipe, visaudio_synthetic_root, tmp_path):  # noqa: F811
    args = ["fit", "--config", str(RECIPES / recipe), "--config", FAST, *SMALL,
            f"--data.init_args.root={visaudio_synthetic_root}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false", "--trainer.callbacks=[]", "--trainer.plugins=[]"]  # fmt: skip
    assert main(args) == 0


@pytest.mark.slow
def test_synthetic_recipe_learns_the_side(tmp_path, monkeypatch):
    """The issue's learning check, run as the recipes document it: 80 one-source clips -> pretrain the tiny
    encoder (visual_direction_synthetic) -> fit ViSAudio; clips of another seed come out on the correct side.

    Baselines: centre-panned output (L = R, ILD 0) is confused on every lateral clip (100%); a random
    side is 50%. The trained model must be well below 50%.
    """
    from spatialgen.data.clips import ClipOptions
    from spatialgen.data.collate import collate_items
    from spatialgen.data.registry import create_dataset
    from spatialgen.io.audio import resample_audio
    from spatialgen.metrics.functional.binaural import left_right_confusion
    from spatialgen.training.ema import ema_state_dict_from_checkpoint
    from spatialgen.training.visaudio import ViSAudioModule

    monkeypatch.chdir(tmp_path)  # the recipes' own relative paths (data/..., runs/...)
    synth = ["--duration", "2", "--max-sources", "1", "--no-distractors", "--quiet", "--workers", "2"]
    assert (
        main(["data", "synth", "--out", "data/synthetic_visaudio", "--n-clips", "80", "--seed", "0", *synth])
        == 0
    )
    assert main(["data", "synth", "--out", "held", "--n-clips", "24", "--seed", "1", *synth]) == 0
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
    start = time.time()
    assert main(["fit", "--config", str(RECIPES / "visual_direction_synthetic.yaml"), *quiet,
                 "--data.init_args.progress=false"]) == 0  # fmt: skip
    assert main(["fit", "--config", str(RECIPES / "visaudio_synthetic.yaml"), *quiet]) == 0
    print(f"training took {time.time() - start:.0f} s")
    ckpt_path = tmp_path / "runs" / "visaudio_synthetic" / "checkpoints" / "last.ckpt"
    module = ViSAudioModule.load_from_checkpoint(ckpt_path, map_location="cpu")
    pipe = module.export_pipeline(ema_state_dict_from_checkpoint(torch.load(ckpt_path, weights_only=False)))
    options = ClipOptions(clip_seconds=2.0, sample_rate=16000, fps=8.0, format="binaural")
    held = create_dataset("synthetic", "held", "train", options)
    batch = collate_items([held[i] for i in range(len(held))])
    truth = resample_audio(batch["audio"], 16000, pipe.sample_rate)
    pred = pipe.generate_from_features(module.batch_features(batch), seconds=2.0, seed=0)
    confused, decisive = left_right_confusion(pred, truth[..., : pred.shape[-1]], pipe.sample_rate)
    rate = float(confused[decisive].float().mean())
    print(f"left/right confusion on {int(decisive.sum())} lateral held-out clips: {rate:.1%}")
    assert int(decisive.sum()) >= 12
    assert rate < 0.3


@pytest.mark.slow
def test_finetune_recipe_runs_unchanged_under_ddp(visaudio_synthetic_root, tmp_path):  # noqa: F811
    """The finetune recipe with only `--trainer.strategy/devices` changed trains on 2 CPU processes (gloo)."""
    args = ["fit", "--config", str(RECIPES / "visaudio_finetune.yaml"), *SMALL,
            f"--data.init_args.root={visaudio_synthetic_root}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.strategy=ddp_spawn", "--trainer.devices=2", "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"]  # fmt: skip
    assert main([a for a in args if a != "--trainer.devices=1"]) == 0
