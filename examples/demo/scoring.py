"""Demo step 7: direction checks against meta.json and baselines, ``spatialgen evaluate``, figures."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import torch

from examples.demo.settings import BLOCK_SECONDS, LATERAL_DEG, DemoSettings


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
