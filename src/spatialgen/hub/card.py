"""Model cards for exports: Hub metadata (``ModelCardData``), description, use and limits, training data
with the exact recipe YAML, the metrics table of the last evaluation, a figure, licence and citation.

The metadata block is valid Hub YAML (``library_name``, ``license``, ``tags``, ``datasets``,
``base_model``, ``model-index`` from :class:`huggingface_hub.EvalResult`); ``ModelCard.validate`` needs
the network and is not called here.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import Tensor

from spatialgen.models.pipeline import GenerationPipeline

__all__ = [
    "CITATIONS",
    "CardInfo",
    "build_model_card",
    "card_sections",
    "figure_caption",
    "load_metrics",
    "metrics_table",
    "probe_frames",
    "render_card_figure",
]

SPATIALGEN_CITATION = """@software{spatialgen,
  title  = {spatialgen: video-to-spatial-audio training framework and model zoo},
  year   = {2025},
  note   = {Re-implementation of ViSAGe and ViSAudio}
}"""

#: Citation of the method each pipeline kind implements.
CITATIONS: dict[str, str] = {
    "visage": """@inproceedings{kim2025visage,
  title     = {{ViSAGe}: Video-to-Spatial Audio Generation},
  author    = {Kim, Jaeyeon and Yun, Heeseung and Kim, Gunhee},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2025}
}""",
    "visaudio": """@misc{visaudio2025,
  title         = {{ViSAudio}: binaural audio generation from video},
  year          = {2025},
  eprint        = {2512.03036},
  archivePrefix = {arXiv}
}""",
}

_KIND_TAGS = {
    "visage": ["visage", "ambisonics", "foa"],
    "visaudio": ["visaudio", "binaural", "flow-matching"],
}
_FORMATS = {
    "foa": "first-order ambisonics, AmbiX (ACN [W, Y, Z, X], SN3D), 4 channels",
    "binaural": "binaural [L, R], 2 channels",
}
_INTENDED = (
    "Research on video-to-spatial-audio generation: generating plausible spatial soundtracks for silent "
    "video clips, as a baseline for new methods, and for studying spatial-audio metrics."
)
_LIMITS = (
    "Generated audio reflects the training data and can be wrong about which objects sound and where "
    "they are; it is not a measurement of a real sound field. Do not use it to mislead listeners about "
    "real recordings (deepfakes), for safety-critical localisation, or on people without their consent."
)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

| | |
|---|---|
| Model | `{{ kind }}` ({{ output }}) |
| Sample rate | {{ sample_rate }} Hz |
| Window | {{ clip_seconds }} s per generation pass (longer videos are windowed) |
| Visual input | {{ frame_rates }} |
| Weights | {{ weights_note }} |

## Usage

```python
from pathlib import Path

from zoo import load_pretrained
from spatialgen.generate import GenerateOptions, generate_video

pipeline = load_pretrained("{{ load_name }}")
generate_video(Path("clip.mp4"), pipeline, GenerateOptions(out_dir=Path("out")))
```

or `spatialgen generate clip.mp4 --model {{ load_name }} --out out`.

## Intended use

{{ intended_use }}

## Limitations and out-of-scope use

{{ limitations }}

## Training data

{{ training_data }}
{% if recipe %}
Training recipe (the exact YAML this model was trained with):

```yaml
{{ recipe }}
```
{% endif %}
## Evaluation
{% if metrics_table %}
Metrics of the last evaluation ({{ metrics_dataset }}):

{{ metrics_table }}
{% else %}
No evaluation results were recorded for this export.
{% endif %}{% if figure %}
![{{ figure_caption }}]({{ figure }})

*{{ figure_caption }}*
{% endif %}
## Licence

{{ license_text }}

## Citation

```bibtex
{{ citation }}
```
"""


@dataclass
class CardInfo:
    """What the card says beyond the pipeline itself; every field is optional.

    Attributes:
        model_name: title (and ``model-index`` name).
        repo_id: Hub repo id or zoo name shown in the usage snippet.
        description: one paragraph about the model.
        intended_use, limitations: override the default texts.
        training_data: what the model was trained on.
        datasets: Hub dataset ids for the metadata.
        base_model: Hub id of the model it was fine-tuned from.
        recipe: the exact training recipe YAML text.
        metrics: ``{name: value}`` of the last evaluation.
        metrics_dataset: name of the evaluation set.
        figure: path of the figure inside the export (e.g. ``figures/sample.png``).
        figure_caption: its caption.
        license: Hub licence id (``mit``, ``cc-by-nc-4.0``, ``other``, ...); license_name/link for ``other``.
        citation: BibTeX; default: the method's paper and spatialgen.
        weights_note: e.g. "EMA weights (decay 0.999) at step 12000".
        tags: extra tags.
    """

    model_name: str | None = None
    repo_id: str | None = None
    description: str | None = None
    intended_use: str | None = None
    limitations: str | None = None
    training_data: str | None = None
    datasets: list[str] = field(default_factory=list)
    base_model: str | None = None
    recipe: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_dataset: str = "held-out evaluation set"
    figure: str | None = None
    figure_caption: str = "Sample output"
    license: str = "mit"
    license_name: str | None = None
    license_link: str | None = None
    citation: str | None = None
    weights_note: str = "trained weights"
    tags: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def metrics_table(metrics: Mapping[str, float]) -> str:
    """Markdown ``| metric | value |`` table (empty string for no metrics)."""
    if not metrics:
        return ""
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {name} | {_fmt(float(value))} |" for name, value in metrics.items()]
    return "\n".join(rows)


def build_model_card(pipeline: GenerationPipeline, info: CardInfo | None = None) -> ModelCard:
    """The rendered model card of ``pipeline`` (kind, format, rate and window come from the pipeline)."""
    info = info or CardInfo()
    config = pipeline.pipeline_config()
    kind = str(config.get("kind", pipeline.kind))
    name = info.model_name or info.repo_id or f"spatialgen-{kind}"
    metrics = {k: float(v) for k, v in info.metrics.items()}
    eval_results = [
        EvalResult(
            task_type="video-to-audio",
            task_name="Video-to-spatial-audio generation",
            dataset_type=info.metrics_dataset,
            dataset_name=info.metrics_dataset,
            metric_type=key,
            metric_name=key,
            metric_value=value,
        )
        for key, value in metrics.items()
        if math.isfinite(value)
    ]
    tags = sorted({"spatialgen", "spatial-audio", "video-to-audio", *_KIND_TAGS.get(kind, []), *info.tags})
    data = ModelCardData(
        library_name="spatialgen",
        license=info.license,
        license_name=info.license_name,
        license_link=info.license_link,
        tags=tags,
        datasets=list(info.datasets) or None,
        base_model=info.base_model,
        model_name=name,
        eval_results=eval_results or None,
    )
    citation = info.citation or "\n\n".join(c for c in (CITATIONS.get(kind), SPATIALGEN_CITATION) if c)
    license_text = f"`{info.license}`" + (
        f" ({info.license_name}: {info.license_link})" if info.license_link else ""
    )
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        title=name,
        description=info.description
        or f"A spatialgen `{kind}` model: silent video in, {_FORMATS.get(pipeline.output_format, '')} out.",
        kind=kind,
        output=_FORMATS.get(pipeline.output_format, pipeline.output_format),
        sample_rate=pipeline.sample_rate,
        clip_seconds=f"{pipeline.clip_seconds:g}",
        frame_rates=", ".join(f"`{k}` at {v:g} fps" for k, v in pipeline.frame_rates.items()),
        weights_note=info.weights_note,
        load_name=info.repo_id or "path/to/export",
        intended_use=info.intended_use or _INTENDED,
        limitations=info.limitations or _LIMITS,
        training_data=info.training_data or "Not recorded for this export.",
        recipe=(info.recipe or "").strip("\n"),
        metrics_table=metrics_table(metrics),
        metrics_dataset=info.metrics_dataset,
        figure=info.figure,
        figure_caption=info.figure_caption,
        license_text=license_text,
        citation=citation,
    )


def load_metrics(path: str | os.PathLike) -> dict[str, float]:
    """Metrics of the last evaluation from ``spatialgen evaluate``'s ``metrics.json``, a flat JSON
    ``{name: value}``, or a Lightning ``CSVLogger`` ``metrics.csv`` (last logged ``val/``/``test/`` values)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"metrics file {p} not found; give spatialgen evaluate's metrics.json")
    if p.suffix == ".csv":
        last: dict[str, float] = {}
        with p.open(newline="") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if key and key.startswith(("val/", "test/")) and value not in ("", None):
                        last[key] = float(value)
        return last
    data = json.loads(p.read_text())
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        data = data["metrics"]
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object of metrics")
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


def probe_frames(pipeline: GenerationPipeline, size: int = 112) -> dict[str, Tensor]:
    """One window of a synthetic probe video per encoder: a bright disc crossing a dark frame from
    left to right, uint8 ``[1, T, 3, size, size]`` at each encoder's rate."""
    frames = {}
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for name, fps in pipeline.frame_rates.items():
        n = max(1, round(pipeline.clip_seconds * fps))
        video = torch.full((1, n, 3, size, size), 20, dtype=torch.uint8)
        for t in range(n):
            cx = size * (0.2 + 0.6 * t / max(1, n - 1))
            disc = (xx - cx) ** 2 + (yy - size / 2) ** 2 <= (size / 8) ** 2
            video[0, t, :, disc] = 230
        frames[name] = video
    return frames


def _window_from_video(pipeline: GenerationPipeline, video: str | os.PathLike) -> dict[str, Tensor]:
    from spatialgen.io import read_video

    frames = {}
    for name, fps in pipeline.frame_rates.items():
        clip, _ = read_video(video, fps=fps, duration=pipeline.clip_seconds)
        need = max(1, round(pipeline.clip_seconds * fps))
        if clip.shape[0] < need:
            clip = torch.cat([clip, clip[-1:].expand(need - clip.shape[0], *clip.shape[1:])])
        frames[name] = clip[:need][None]
    return frames


def render_card_figure(
    pipeline: GenerationPipeline,
    path: str | os.PathLike,
    *,
    video: str | os.PathLike | None = None,
    seed: int = 0,
    sampling: Mapping[str, Any] | None = None,
) -> Path:
    """Generate one window (from ``video`` or :func:`probe_frames`) and plot it to ``path`` (PNG).

    FOA: the ViSAGe energy map of the generated clip (azimuth + = left); binaural: L/R spectrograms.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = _window_from_video(pipeline, video) if video is not None else probe_frames(pipeline)
    frames = {k: v.to(pipeline.device) for k, v in frames.items()}
    with torch.inference_mode():
        audio = pipeline.generate(frames, seed=seed, **dict(sampling or {}))[0].float().cpu()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(video).name if video is not None else "synthetic probe clip (disc moving left to right)"
    if pipeline.output_format == "foa":
        from spatialgen.spatial.energy_map import visage_energy_map

        energy = visage_energy_map(audio.double(), pipeline.sample_rate)
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.imshow(energy.numpy(), extent=(179.0, -181.0, -91.0, 89.0), aspect="auto", cmap="magma")
        ax.set_xlabel("azimuth (deg, + = left)")
        ax.set_ylabel("elevation (deg)")
        ax.set_title(f"energy map of generated FOA: {source}", fontsize=9)
        fig.tight_layout()
    else:
        from spatialgen.training.visaudio import plot_binaural_spectrograms

        fig = plot_binaural_spectrograms(audio, None, pipeline.sample_rate, title=f"generated: {source}")
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def figure_caption(pipeline: GenerationPipeline, video: str | os.PathLike | None) -> str:
    """Caption of :func:`render_card_figure`'s output."""
    what = (
        "Energy map of generated FOA"
        if pipeline.output_format == "foa"
        else "Generated binaural spectrograms"
    )
    src = (
        f"for `{Path(video).name}`"
        if video is not None
        else "for a synthetic probe clip (disc moving left to right)"
    )
    return f"{what} {src}"


def card_sections(card: ModelCard) -> Sequence[str]:
    """Level-2 headings of a rendered card (used by tests and checks)."""
    return [line[3:].strip() for line in str(card.content).splitlines() if line.startswith("## ")]
