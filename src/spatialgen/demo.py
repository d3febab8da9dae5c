"""``spatialgen demo``: the end-to-end job on synthetic data (``make demo``).

Steps, all into ``--out`` (default ``demo_out``):

1. ``data/``: a synthetic dataset (train/val/test) of short clips with **one visible source, no
   off-screen distractors and a fixed camera** per clip: the sound's direction is then fully determined
   by the picture, which keeps the task learnable in a few CPU minutes.
2. ``encoder/tiny.safetensors``: the small ``tiny`` visual encoder pretrained with
   ``recipes/visual_direction_synthetic.yaml`` to predict, from one frame, the direction of the sound
   measured in the training clips' own FOA (no annotation used). Both generative models load it as
   their frozen visual encoder, as the published models load CLIP / Perception Encoder: a randomly
   initialised CNN does not know where things are in the picture, and neither model could learn
   directions on top of it in a few CPU minutes.
3. ``runs/visaudio``: ViSAudio trained with ``recipes/visaudio_synthetic.yaml`` (LightningCLI ``fit``),
   the recipe patched for the demo's paths, clip length and step count (``recipes/visaudio.yaml`` here).
4. ``codec/``: the ``stft_vq`` codec fitted by k-means on the training clips' FOA, then
   ``runs/visage``: ViSAGe trained on its tokens with ``recipes/visage_synthetic.yaml``.
5. ``models/{visaudio,visage}``: Hub-style exports (EMA weights) of both, loadable with
   ``spatialgen generate --model demo_out/models/visaudio``; ``export/{visaudio,visage}-synthetic`` are
   links to them (where the model zoo looks for the demo's models).
6. ``generated/<model>/<clip_id>/``: audio (.wav) and video (.mp4) for every held-out test clip.
7. ``eval/<model>/``: ``spatialgen evaluate`` reports, and the direction checks against the
   ground truth of ``meta.json`` and simple baselines (:func:`binaural_direction_table`,
   :func:`foa_direction_table`).
8. ``report.md``: settings, timings, the tables, figures and links.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

__all__ = ["DemoSettings", "binaural_direction_table", "foa_direction_table", "main", "run_demo"]

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
BLOCK_SECONDS = 0.5  # direction is scored per 0.5-s block of each test clip
LATERAL_DEG = 20.0  # a block is "clearly lateral" when the source is > 20° off the median plane
SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass
class DemoSettings:
    """Sizes of one demo run (defaults: the ``make demo`` size)."""

    out: Path
    clips: int = 160
    seconds: float = 1.0
    steps_encoder: int = 1000
    steps_visaudio: int = 600
    steps_visage: int = 1200
    codebook_size: int = 256
    batch_size: int = 8
    seed: int = 0
    quick: bool = False
    timings: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- helpers
def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


class _Step:
    """Times one demo step (wall and process CPU incl. children) into ``settings.timings``."""

    def __init__(self, settings: DemoSettings, name: str) -> None:
        self.settings, self.name = settings, name

    def __enter__(self) -> _Step:
        _log(f"{self.name} ...")
        self.t0, self.c0 = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall, cpu = time.perf_counter() - self.t0, _cpu_seconds() - self.c0
        self.settings.timings[self.name] = wall
        self.settings.timings[f"{self.name} (CPU)"] = cpu
        if exc[0] is None:
            _log(f"{self.name}: done in {wall:.1f} s wall, {cpu:.1f} s CPU")


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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
            "data": {"init_args": {"root": str(data), "progress": not s.quick}},
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


# ----------------------------------------------------------------------------------------- scoring
def _read(path: Path, channels: int) -> torch.Tensor:
    from spatialgen.io import read_audio

    return read_audio(path, channels=channels, sample_rate=16000, resample=True)[0].to(torch.float64)


def _blocks(x: torch.Tensor, sr: int) -> torch.Tensor:
    """``[C, T]`` -> ``[n_blocks, C, block]`` consecutive 0.5-s blocks (a short tail is dropped)."""
    n = int(BLOCK_SECONDS * sr)
    k = x.shape[-1] // n
    return x[..., : k * n].reshape(x.shape[0], k, n).transpose(0, 1)


def truth_directions(meta_path: Path, n_blocks: int) -> np.ndarray:
    """Unit vectors ``[n_blocks, 3]`` of the visible source per 0.5-s block (camera frame); NaN if silent."""
    from spatialgen.data.synthetic.metadata import read_meta

    meta = read_meta(meta_path)
    src = next((t for t in meta.sources if t.visible), None)
    out = np.full((n_blocks, 3), np.nan)
    if src is None:
        return out
    times = np.asarray(meta.frame_times)
    az, el = np.radians(src.camera_az_deg), np.radians(src.camera_el_deg)
    u = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    active = np.asarray(src.activity) > 0
    for b in range(n_blocks):
        sel = active & (times >= b * BLOCK_SECONDS) & (times < (b + 1) * BLOCK_SECONDS)
        if sel.any():
            v = u[sel].mean(0)
            out[b] = v / max(np.linalg.norm(v), 1e-12)
    return out


def binaural_direction_table(
    gt: dict[str, Path], pred: dict[str, dict[str, Path]], metas: dict[str, Path], seed: int
) -> dict[str, dict[str, float]]:
    """Left/right confusion per 0.5-s block for each system (``pred``) and the baselines.

    ``meta``: truth side from the source's camera azimuth (blocks > 20° off the median plane),
    predicted side from the sign of the generated ILD (0 dB = no side = confused).
    ``ILD``: :func:`spatialgen.metrics.functional.binaural.left_right_confusion` against the ground-truth
    binaural (decisive blocks: |ILD| > 1 dB, else |ITD| > 50 µs).
    Baselines: silence and mono centre-panned (equal ears: never a side), random side (seeded coin).
    """
    from spatialgen.metrics.functional.binaural import left_right_confusion
    from spatialgen.spatial.cues import ild

    sr = 16000
    rng = np.random.default_rng(seed)
    gts = {c: _blocks(_read(p, 2), sr) for c, p in gt.items()}
    systems: dict[str, dict[str, torch.Tensor]] = {
        name: {c: _blocks(_read(p, 2), sr) for c, p in files.items()} for name, files in pred.items()
    }
    systems["baseline: silence"] = {c: torch.zeros_like(g) for c, g in gts.items()}
    systems["baseline: mono centre-panned"] = {
        c: g.mean(1, keepdim=True).expand_as(g) for c, g in gts.items()
    }
    random_side = {}
    for c, g in gts.items():
        side = torch.as_tensor(rng.integers(0, 2, g.shape[0]), dtype=torch.bool)[:, None, None]
        mono = g.mean(1, keepdim=True)
        random_side[c] = torch.where(
            side, torch.cat([mono, 0.25 * mono], 1), torch.cat([0.25 * mono, mono], 1)
        )
    systems["baseline: random side"] = random_side
    table: dict[str, dict[str, float]] = {}
    for name, audio in systems.items():
        wrong_m = total_m = wrong_i = total_i = 0
        for c, g in gts.items():
            p = audio[c][: g.shape[0]]
            u = truth_directions(metas[c], g.shape[0])[: p.shape[0]]
            lateral = np.abs(u[:, 1]) > math.sin(math.radians(LATERAL_DEG))
            ild_p = ild(p, sr).numpy()
            total_m += int(lateral.sum())
            wrong_m += int((lateral & (np.sign(ild_p) != np.sign(u[:, 1]))).sum())
            confused, decisive = left_right_confusion(p, g[: p.shape[0]], sr)
            total_i += int(decisive.sum())
            wrong_i += int(confused.sum())
        table[name] = {
            "lr_confusion_meta": wrong_m / total_m if total_m else float("nan"),
            "lateral_blocks_meta": total_m,
            "lr_confusion_ild": wrong_i / total_i if total_i else float("nan"),
            "decisive_blocks_ild": total_i,
        }
    return table


def foa_direction_table(
    gt: dict[str, Path], pred: dict[str, Path], metas: dict[str, Path], seed: int
) -> dict[str, dict[str, float]]:
    """Median/mean great-circle DOA error (degrees) per 0.5-s block of the visible source.

    Direction of the audio: :func:`spatialgen.spatial.doa.intensity_doa` (energy-weighted PIV) per block;
    truth: the source's camera-frame direction from ``meta.json``. Rows: the model, the ground-truth FOA
    itself (the estimator's floor), and baselines: silence (no direction; counted as 90°, the expected
    error of a guess), mono/centre (front, az = el = 0) and random direction (uniform on the sphere).
    """
    from spatialgen.spatial.doa import intensity_doa

    sr = 16000
    rng = np.random.default_rng(seed)
    errors: dict[str, list[float]] = {
        k: []
        for k in (
            "ViSAGe",
            "ground-truth FOA (estimator floor)",
            "baseline: silence (no direction = 90°)",
            "baseline: mono / centre (front)",
            "baseline: random direction",
        )
    }

    def angles_to_vec(az: np.ndarray, el: np.ndarray) -> np.ndarray:
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)

    def err(v: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.degrees(np.arccos(np.clip((v * u).sum(-1), -1.0, 1.0)))

    for c, gpath in gt.items():
        g = _read(gpath, 4)
        p = _read(pred[c], 4)
        n = min(g.shape[-1], p.shape[-1]) // int(BLOCK_SECONDS * sr)
        if n == 0:
            continue
        u = truth_directions(metas[c], n)
        ok = ~np.isnan(u[:, 0])
        for key, audio in (("ViSAGe", p), ("ground-truth FOA (estimator floor)", g)):
            az, el = intensity_doa(audio[None, :, : n * int(BLOCK_SECONDS * sr)], sr, per_frame=BLOCK_SECONDS)
            v = angles_to_vec(az[0].numpy(), el[0].numpy())
            errors[key] += err(v, u)[ok].tolist()
        errors["baseline: silence (no direction = 90°)"] += [90.0] * int(ok.sum())
        front = np.tile([1.0, 0.0, 0.0], (n, 1))
        errors["baseline: mono / centre (front)"] += err(front, u)[ok].tolist()
        r = rng.normal(size=(n, 3))
        errors["baseline: random direction"] += err(r / np.linalg.norm(r, axis=1, keepdims=True), u)[
            ok
        ].tolist()
    return {
        k: {
            "median_doa_error_deg": float(np.median(v)) if v else float("nan"),
            "mean_doa_error_deg": float(np.mean(v)) if v else float("nan"),
            "blocks": len(v),
        }
        for k, v in errors.items()
    }


def _flat_copy(files: dict[str, Path], folder: Path) -> Path:
    """Copy ``{clip_id: wav}`` into ``folder/<clip_id>.wav`` (evaluate pairs files by stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    for c, p in files.items():
        shutil.copyfile(p, folder / f"{c}.wav")
    return folder


def run_evaluate(
    pred: dict[str, Path], gt: dict[str, Path], out: Path, metrics: str, s: DemoSettings
) -> Path:
    """``spatialgen evaluate`` on flat copies of the generated and ground-truth files; returns its folder."""
    from spatialgen.evaluate import main as evaluate_main

    rc = evaluate_main(
        [
            "--pred", str(_flat_copy(pred, out / "pred")),
            "--gt", str(_flat_copy(gt, out / "gt")),
            "--metrics", metrics,
            "--out", str(out / "report"),
            "--sample-rate", "16000",
            "--seconds", str(s.seconds),
            "--n-figures", "1" if s.quick else "2",
            "--no-progress",
        ]
    )  # fmt: skip
    if rc:
        raise RuntimeError(f"spatialgen evaluate failed for {out} (exit code {rc})")
    return out / "report"


def spectrogram_figure(pred: Path, gt: Path, out: Path, title: str) -> Path:
    """Generated vs ground-truth binaural spectrograms of one clip as a PNG."""
    from spatialgen.training.visaudio import plot_binaural_spectrograms

    fig = plot_binaural_spectrograms(_read(pred, 2).float(), _read(gt, 2).float(), 16000, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------- report
def _fmt(v: float, pct: bool = False) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return f"{100 * v:.1f} %" if pct else (f"{v:.1f}" if isinstance(v, float) else str(v))


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def write_report(s: DemoSettings, res: dict[str, Any]) -> Path:
    """Step 8: ``out/report.md`` (settings, timings, direction tables, evaluate tables, figures, links)."""
    out = s.out
    lines = [
        "# spatialgen demo report",
        "",
        "Synthetic data -> ViSAudio (binaural) and ViSAGe (FOA) trained on CPU -> generated audio for the "
        "held-out test clips -> scored against the ground truth and simple baselines.",
        "",
        "## What was run",
        "",
        f"- dataset: {s.clips} synthetic clips of {s.seconds:g} s (split {SPLITS}), one visible source, no "
        f"distractors, fixed camera per clip (seed {s.seed}); {res['n_test']} test clips",
        f"- visual encoder: `tiny` CNN pretrained with `recipes/visual_direction_synthetic.yaml` (patched to "
        f"`{_rel(res['encoder_recipe'], out)}`, {s.steps_encoder} steps) to predict each training frame's "
        "sound direction measured from the clip's own FOA (no annotation); both models use it frozen",
        f"- ViSAudio: `recipes/visaudio_synthetic.yaml` patched to `{_rel(res['visaudio_recipe'], out)}`, "
        f"{s.steps_visaudio} steps",
        f"- codec: `stft_vq` ({s.codebook_size} codes x 4 streams) fitted on the training FOA",
        f"- ViSAGe: `recipes/visage_synthetic.yaml` patched to `{_rel(res['visage_recipe'], out)}`, "
        f"{s.steps_visage} steps, camera-frame FOA",
        "- exports: `models/visaudio`, `models/visage` (use with `spatialgen generate --model ...`)",
        "",
        "| step | wall (s) | CPU (s) |",
        "|---|---|---|",
    ]
    for k, v in s.timings.items():
        if not k.endswith("(CPU)"):
            lines.append(f"| {k} | {v:.1f} | {s.timings.get(f'{k} (CPU)', float('nan')):.1f} |")
    lines += [
        "",
        "## ViSAudio (binaural): left/right confusion",
        "",
        f"Per {BLOCK_SECONDS:g}-s block of the test clips. *meta*: truth side from the source's camera "
        f"azimuth in meta.json (blocks > {LATERAL_DEG:g}° off the median plane), predicted side = sign of "
        "the ILD (0 dB counts as confused). *ILD*: truth from the ground-truth binaural "
        "(|ILD| > 1 dB, else |ITD| > 50 µs). Lower is better; chance is 50 %.",
        "",
        "| system | L/R confusion (meta) | lateral blocks | L/R confusion (ILD) | decisive blocks |",
        "|---|---|---|---|---|",
    ]
    for name, row in res["binaural_table"].items():
        lines.append(
            f"| {name} | {_fmt(row['lr_confusion_meta'], True)} | {row['lateral_blocks_meta']} | "
            f"{_fmt(row['lr_confusion_ild'], True)} | {row['decisive_blocks_ild']} |"
        )
    lines += [
        "",
        "## ViSAGe (FOA): direction of arrival of the visible source",
        "",
        f"Great-circle error per {BLOCK_SECONDS:g}-s block between the intensity-vector DOA of the audio and "
        "the source's camera-frame direction from meta.json. Silence has no direction: counted as 90°. "
        "Lower is better; a random direction gives 90° on average. The front baseline is a strong prior "
        "here: the visible source is mostly on screen, i.e. within the 90° field of view around the front.",
        "",
        "| system | median DOA error | mean DOA error | blocks |",
        "|---|---|---|---|",
    ]
    for name, row in res["foa_table"].items():
        lines.append(
            f"| {name} | {_fmt(row['median_doa_error_deg'])}° | {_fmt(row['mean_doa_error_deg'])}° | "
            f"{row['blocks']} |"
        )
    for model in ("visaudio", "visage"):
        md = res[f"{model}_eval"] / "metrics.md"
        lines += ["", f"## `spatialgen evaluate`: {model}", ""]
        # only its metric table: the rest (title, library warnings) is in the linked full report
        table = [ln for ln in md.read_text().splitlines() if ln.startswith("|")] if md.is_file() else []
        lines += (table or ["(no metrics.md)"]) + [""]
        lines += [f"Full report: [{_rel(md.parent, out)}]({_rel(md.parent, out)})"]
    lines += ["", "## Figures", ""]
    for fig in res["figures"]:
        lines.append(f"![{fig.stem}]({_rel(fig, out)})")
    lines += ["", "## Generated files", "", "| clip | ViSAudio | ViSAGe |", "|---|---|---|"]
    for c in res["test_ids"]:
        cells = []
        for model in ("visaudio", "visage"):
            files = sorted((out / "generated" / model / c).glob("*"))
            cells.append(" ".join(f"[{f.name}]({_rel(f, out)})" for f in files))
        lines.append(f"| {c} | {cells[0]} | {cells[1]} |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "binaural": res["binaural_table"],
                "foa": res["foa_table"],
                "timings_s": s.timings,
                "settings": {k: v for k, v in vars(s).items() if k not in ("timings", "out")},
            },
            indent=2,
        )
    )
    return path


# ----------------------------------------------------------------------------------------- driver
def run_demo(s: DemoSettings) -> Path:
    """Run the eight steps into ``s.out``; returns the report path."""
    from spatialgen.data.synthetic.metadata import read_manifest

    s.out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    res: dict[str, Any] = {}
    with _Step(s, "1 synthetic dataset"):
        data = make_dataset(s)
    test = read_manifest(data).split("test")
    if not test or not read_manifest(data).split("val"):
        raise ValueError(f"--clips {s.clips} leaves no val/test clip; use at least 10")
    ids = [e.clip_id for e in test]
    videos = {e.clip_id: data / e.path / "video.mp4" for e in test}
    metas = {e.clip_id: data / e.path / "meta.json" for e in test}
    res["n_test"], res["test_ids"] = len(ids), ids
    with _Step(s, "2 pretrain visual encoder"):
        encoder = pretrain_encoder(s, data)
        res["encoder_recipe"] = s.out / "recipes" / "encoder.yaml"
    with _Step(s, "3 train ViSAudio"):
        ckpt = train_visaudio(s, data, encoder)
        res["visaudio_recipe"] = s.out / "recipes" / "visaudio.yaml"
        export_model(ckpt, s.out / "models" / "visaudio")
    with _Step(s, "4 fit stft_vq codec"):
        codec = fit_codec(s, data)
    with _Step(s, "5 train ViSAGe"):
        ckpt = train_visage(s, data, codec, encoder)
        res["visage_recipe"] = s.out / "recipes" / "visage.yaml"
        export_model(ckpt, s.out / "models" / "visage")
    gen = s.out / "generated"
    with _Step(s, "6 generate test clips"):
        generate_tests(s.out / "models" / "visaudio", videos, gen / "visaudio", "binaural", s.seed)
        generate_tests(s.out / "models" / "visage", videos, gen / "visage", "both", s.seed)
    with _Step(s, "7 evaluate"):
        gt_bin = {c: data / e.path / "binaural.wav" for c, e in zip(ids, test, strict=True)}
        gt_foa = {c: data / e.path / "foa.wav" for c, e in zip(ids, test, strict=True)}
        va = {c: gen / "visaudio" / c / "video.binaural.wav" for c in ids}
        vg_foa = {c: gen / "visage" / c / "video.foa.wav" for c in ids}
        vg_bin = {c: gen / "visage" / c / "video.binaural.wav" for c in ids}
        res["binaural_table"] = binaural_direction_table(
            gt_bin, {"ViSAudio": va, "ViSAGe (FOA rendered binaural)": vg_bin}, metas, s.seed
        )
        res["foa_table"] = foa_direction_table(gt_foa, vg_foa, metas, s.seed)
        res["visaudio_eval"] = run_evaluate(va, gt_bin, s.out / "eval" / "visaudio", "binaural", s)
        res["visage_eval"] = run_evaluate(vg_foa, gt_foa, s.out / "eval" / "visage", "spatial,doa", s)
        figs = [
            spectrogram_figure(va[ids[0]], gt_bin[ids[0]], s.out / "figures" / "visaudio_spectrogram.png",
                               f"ViSAudio, {ids[0]}"),
        ]  # fmt: skip
        figs += sorted((s.out / "eval").rglob("*.png"))
        res["figures"] = figs
    s.timings["total"] = time.perf_counter() - t0
    s.timings["total (CPU)"] = _cpu_seconds() - c0
    path = write_report(s, res)
    _log(f"report: {path} ({s.timings['total']:.0f} s wall, {s.timings['total (CPU)']:.0f} s CPU)")
    return path


def build_parser(prog: str = "spatialgen demo") -> argparse.ArgumentParser:
    """The ``spatialgen demo`` options."""
    p = argparse.ArgumentParser(prog=prog, description="End-to-end demo on synthetic data (see demo.py).")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--clips", type=int, default=None, help="synthetic clips (default 160; --quick 10)")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length in s (default 1)")
    p.add_argument(
        "--steps-encoder", type=int, default=None, help="encoder pretraining steps (default 1000; --quick 2)"
    )
    p.add_argument("--steps-visaudio", type=int, default=None, help="ViSAudio steps (default 600; --quick 2)")
    p.add_argument("--steps-visage", type=int, default=None, help="ViSAGe steps (default 1200; --quick 2)")
    p.add_argument("--quick", action="store_true", help="tiny test-size run (seconds)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def main(argv: Sequence[str] | None = None) -> int:
    """``spatialgen demo [--out DIR] [--quick] ...``; returns the exit code."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    quick = bool(args.quick)
    s = DemoSettings(
        out=Path(args.out),
        clips=_default(args.clips, 10 if quick else 160),
        seconds=args.seconds,
        steps_encoder=_default(args.steps_encoder, 2 if quick else 1000),
        steps_visaudio=_default(args.steps_visaudio, 2 if quick else 600),
        steps_visage=_default(args.steps_visage, 2 if quick else 1200),
        codebook_size=16 if quick else 256,
        batch_size=2 if quick else 8,
        seed=args.seed,
        quick=quick,
    )
    for name in ("clips", "steps_encoder", "steps_visaudio", "steps_visage"):
        if getattr(s, name) < 1:
            raise SystemExit(f"spatialgen demo: --{name.replace('_', '-')} must be >= 1")
    if s.seconds < BLOCK_SECONDS:
        raise SystemExit(f"spatialgen demo: --seconds must be >= {BLOCK_SECONDS}")
    run_demo(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
