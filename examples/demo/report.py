"""Demo step 8: ``report.md`` and ``results.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from examples.demo.settings import BLOCK_SECONDS, LATERAL_DEG, SPLITS, DemoSettings


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
