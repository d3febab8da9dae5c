"""Demo steps 1-6: dataset, encoder pretraining, both trainings (patched recipes), codec, export, generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from examples.demo.settings import RECIPES, SPLITS, DemoSettings


def _write_recipe(src: Path, dst: Path, patch: dict[str, Any]) -> Path:
    """``src`` YAML with ``patch`` merged in (nested dicts merged, other values replaced) -> ``dst``."""

    def merge(base: Any, new: Any) -> Any:
        if isinstance(base, dict) and isinstance(new, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in new.items()}}
        return new

    config = merge(yaml.safe_load(src.read_text()), patch)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(config, sort_keys=False))
    return dst


def _checkpoint_callbacks(run: Path) -> list[dict[str, Any]]:
    return [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(run / "checkpoints"), "save_last": True, "save_top_k": 0},
        },
        {"class_path": "spatialgen.training.EMA", "init_args": {"decay": 0.99, "warmup_steps": 10}},
    ]


def _trainer_patch(
    s: DemoSettings, run: Path, steps: int, callbacks: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """The demo's ``trainer`` settings for a run of ``steps`` steps into ``run`` (no logger)."""
    return {
        "max_steps": steps,
        "default_root_dir": str(run),
        "logger": False,
        "callbacks": callbacks,
        "enable_progress_bar": not s.quick,
        **extra,
    }


def _fit(recipe: Path) -> None:
    from spatialgen.cli import lightning_cli

    lightning_cli(["fit", "--config", str(recipe)])


# ----------------------------------------------------------------------------------------- steps
def make_dataset(s: DemoSettings) -> Path:
    """Step 1: the synthetic dataset under ``out/data`` (reused when its manifest exists)."""
    from spatialgen.data.synthetic import generate_dataset

    root = s.out / "data"
    generate_dataset(
        root,
        s.clips,
        s.seed,
        duration=s.seconds,
        camera="fixed",
        max_sources=1,
        distractors=False,
        split_ratios=SPLITS,
        progress=not s.quick,
        overwrite=True,
    )
    return root


ENCODER_KWARGS = {"embed_dim": 32, "input_size": [64, 64]}


def pretrain_encoder(s: DemoSettings, data: Path) -> Path:
    """Step 2: the ``tiny`` visual encoder trained on the frame-direction task; returns its weights file."""
    run = s.out / "runs" / "encoder"
    weights = s.out / "encoder" / "tiny.safetensors"
    recipe = _write_recipe(
        RECIPES / "visual_direction_synthetic.yaml",
        s.out / "recipes" / "encoder.yaml",
        {
            "seed_everything": s.seed,
            "model": {
                "init_args": {
                    "export_path": str(weights),
                    "lr_scheduler": {"init_args": {"total_steps": s.steps_encoder}},
                }
            },
            "data": {"init_args": {"root": str(data), "synthesize": None, "progress": not s.quick}},
            "trainer": _trainer_patch(s, run, s.steps_encoder, _checkpoint_callbacks(run)[:1]),
        },
    )
    _fit(recipe)
    if not weights.is_file():
        raise FileNotFoundError(f"encoder pretraining did not write {weights}")
    return weights


def train_visaudio(s: DemoSettings, data: Path, encoder: Path) -> Path:
    """Step 3: fit ViSAudio from the patched recipe on top of ``encoder``; returns ``last.ckpt``."""
    run = s.out / "runs" / "visaudio"
    steps = s.steps_visaudio
    recipe = _write_recipe(
        RECIPES / "visaudio_synthetic.yaml",
        s.out / "recipes" / "visaudio.yaml",
        {
            "seed_everything": s.seed,
            "model": {
                "init_args": {
                    "clip_seconds": s.seconds,
                    "encoder_kwargs": {"tiny": {**ENCODER_KWARGS, "fps": 8.0}},
                    "encoder_pretrained": str(encoder),
                    "sample_every_n_epochs": 0,
                    # the exported pipeline samples with these Euler steps (quick: just prove the wiring)
                    "sample_steps": 2 if s.quick else 10,
                    "normalizer_batches": 2 if s.quick else 8,
                    "lr_scheduler": {"init_args": {"total_steps": steps}},
                }
            },
            "data": {
                "init_args": {
                    "root": str(data),
                    "synthesize": None,  # the demo made its own dataset (step 1)
                    "source": "raw",
                    "cache_dir": None,
                    "clip_seconds": s.seconds,
                    "batch_size": s.batch_size,
                }
            },
            "trainer": _trainer_patch(
                s, run, steps, _checkpoint_callbacks(run), limit_val_batches=1 if s.quick else 2
            ),
        },
    )
    _fit(recipe)
    return run / "checkpoints" / "last.ckpt"


def fit_codec(s: DemoSettings, data: Path) -> Path:
    """Step 4a: the ``stft_vq`` codec fitted on the training clips' FOA; returns its folder."""
    from spatialgen.data.codec_fit import fit_stft_vq

    out = s.out / "codec"
    fit_stft_vq(
        data, out, split="train", codebook_size=s.codebook_size, num_codebooks=4, seed=s.seed, iters=10
    )
    return out


def train_visage(s: DemoSettings, data: Path, codec_dir: Path, encoder: Path) -> Path:
    """Step 4b: fit ViSAGe on ``stft_vq`` tokens (camera-frame FOA) on top of ``encoder``; returns ``last.ckpt``."""
    run = s.out / "runs" / "visage"
    recipe = _write_recipe(
        RECIPES / "visage_synthetic.yaml",
        s.out / "recipes" / "visage.yaml",
        {
            "seed_everything": s.seed,
            "model": {
                "init_args": {
                    "config_overrides": {
                        "clip_seconds": s.seconds,
                        "codebook_size": s.codebook_size,
                        "codec_sample_rate": 16000,
                        "codec_hop_length": 320,
                        "energy_map_dim": 64,  # the 64x64 tiny encoder's 8x8 patch grid
                    },
                    "codec_name": "stft_vq",
                    "codec_pretrained": str(codec_dir),
                    "encoder_kwargs": {**ENCODER_KWARGS, "fps": 4.0},
                    "encoder_pretrained": str(encoder),
                    "sample_every_n_epochs": 0,
                    "lr_scheduler": {"init_args": {"total_iters": max(1, min(50, s.steps_visage // 4))}},
                }
            },
            # camera-frame FOA: generated audio is then directly comparable with meta.json's camera angles
            "data": {
                "init_args": {
                    "root": str(data),
                    "synthesize": None,
                    "video_size": ENCODER_KWARGS["input_size"],
                    "foa_frame": "camera",
                    "rotate_prob": 0.0,
                    "clip_seconds": s.seconds,
                    "batch_size": s.batch_size,
                    "seed": s.seed,
                }
            },
            "trainer": _trainer_patch(
                s,
                run,
                s.steps_visage,
                _checkpoint_callbacks(run),
                max_epochs=-1,
                check_val_every_n_epoch=1000,
            ),
        },
    )
    _fit(recipe)
    return run / "checkpoints" / "last.ckpt"


def export_model(ckpt: Path, out: Path) -> Path:
    """Step 5: Hub-style export (EMA weights) of a checkpoint into ``out``."""
    from spatialgen.hub.export import export_checkpoint

    if not ckpt.is_file():
        raise FileNotFoundError(f"training did not write {ckpt}")
    export_checkpoint(ckpt, out, figure=False)
    # the model zoo finds the demo's models as <demo_out>/export/<name>-synthetic
    alias = out.parent.parent / "export" / f"{out.name}-synthetic"
    alias.parent.mkdir(parents=True, exist_ok=True)
    if alias.is_symlink() or alias.exists():
        alias.unlink()
    alias.symlink_to(Path("..") / out.parent.name / out.name, target_is_directory=True)
    return out


def generate_tests(
    model_dir: Path, videos: dict[str, Path], out: Path, fmt: str, seed: int
) -> dict[str, Path]:
    """Step 6: generate for every test video into ``out/<clip_id>/``; returns ``{clip_id: folder}``."""
    from spatialgen.generate import GenerateOptions, generate_video
    from spatialgen.hub import load_export

    pipeline = load_export(model_dir)
    folders = {}
    for clip_id, video in videos.items():
        folders[clip_id] = out / clip_id
        generate_video(video, pipeline, GenerateOptions(out_dir=folders[clip_id], format=fmt, seed=seed))
    return folders
