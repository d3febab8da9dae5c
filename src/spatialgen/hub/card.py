"""Model cards for exports: Hub metadata (``ModelCardData``), description, use and limits, training data
with the exact recipe YAML, the metrics table of the last evaluation, a figure, licence and citation.

The metadata block is valid Hub YAML (``library_name``, ``pipeline_tag``, ``tags``, ``datasets``,
``base_model``, ``model-index`` from :class:`huggingface_hub.EvalResult` when metrics are given, and
``license`` only when one was chosen: nobody picks a licence for trained weights by default);
``ModelCard.validate`` needs the network and is not called here. The Hub has no video-to-audio task,
so ``pipeline_tag`` is ``any-to-any`` (the multimodal task list: huggingface/huggingface.js,
``packages/tasks/src/pipelines.ts``).

The figure shows the sound moving over time, as its caption says: an azimuth-time map of the generated
FOA (ViSAGe energy map per 0.25-s block, maximum over elevation, with the intensity-vector DOA) or the
interaural level difference of the generated binaural audio per 0.25-s block.
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
    "FIGURE_BLOCK_SECONDS",
    "PIPELINE_TAG",
    "CardInfo",
    "azimuth_time",
    "build_model_card",
    "card_sections",
    "figure_caption",
    "ild_time",
    "load_metrics",
    "metrics_table",
    "probe_frames",
    "render_card_figure",
]

#: Hub pipeline type of every spatialgen model (video in, audio out).
PIPELINE_TAG = "any-to-any"
#: block length of the figure's time axis (s)
FIGURE_BLOCK_SECONDS = 0.25

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
        license: Hub licence id (``mit``, ``cc-by-nc-4.0``, ``other``, ...) chosen by the user or taken
            from the weights' source; None (default): no licence is claimed. license_name/link for ``other``.
        pipeline_tag: Hub pipeline type (default ``any-to-any``: the Hub has no video-to-audio task).
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
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    citation: str | None = None
    weights_note: str = "trained weights"
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str = PIPELINE_TAG


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
            task_type=info.pipeline_tag,
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
        pipeline_tag=info.pipeline_tag,
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
    if info.license:
        license_text = f"`{info.license}`" + (
            f" ({info.license_name}: {info.license_link})" if info.license_link else ""
        )
    else:
        license_text = "No licence was chosen for these weights: ask their author before reusing them."
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


def _blocks(n_samples: int, sample_rate: int, block: float) -> tuple[int, int]:
    """``(block length in samples, number of whole blocks)``; at least one block (the whole clip)."""
    size = max(1, round(block * sample_rate))
    return (size, n_samples // size) if n_samples >= size else (n_samples, 1)


def azimuth_time(
    foa: Tensor, sample_rate: int, block: float = FIGURE_BLOCK_SECONDS
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Azimuth over time of FOA ``[4, T]`` (AmbiX): ``(times s [n], azimuths deg [180], map [n, 180], doa deg [n])``.

    ``map`` is ViSAGe's energy map (:func:`~spatialgen.spatial.energy_map.visage_energy_map`) of each
    ``block``-second block, maximum over elevation, normalised per block; ``doa`` is the block's
    intensity-vector azimuth (:func:`~spatialgen.spatial.doa.intensity_doa`). Azimuth + = left.
    """
    from spatialgen.spatial.doa import intensity_doa
    from spatialgen.spatial.energy_map import visage_energy_map, visage_grid

    x = foa.double()
    size, n = _blocks(x.shape[-1], sample_rate, block)
    chunks = x[..., : n * size].unflatten(-1, (n, size)).movedim(-2, 0)  # [n, 4, size]
    energy = visage_energy_map(chunks, sample_rate).amax(dim=-2)  # [n, 180]
    energy = energy / energy.amax(dim=-1, keepdim=True).clamp_min(1e-12)
    az, _ = intensity_doa(x[..., : n * size], sample_rate, per_frame=size / sample_rate)
    times = (torch.arange(n, dtype=torch.float64) + 0.5) * size / sample_rate
    return times, torch.rad2deg(visage_grid()[0]), energy, torch.rad2deg(az.reshape(n))


def ild_time(
    binaural: Tensor, sample_rate: int, block: float = FIGURE_BLOCK_SECONDS
) -> tuple[Tensor, Tensor]:
    """Interaural level difference over time of ``[L, R]`` audio: ``(times s [n], ILD dB [n])``, + = left."""
    x = binaural.double()
    size, n = _blocks(x.shape[-1], sample_rate, block)
    energy = x[..., : n * size].unflatten(-1, (n, size)).square().sum(-1) + 1e-12  # [2, n]
    times = (torch.arange(n, dtype=torch.float64) + 0.5) * size / sample_rate
    return times, 10.0 * torch.log10(energy[0] / energy[1])


def render_card_figure(
    pipeline: GenerationPipeline,
    path: str | os.PathLike,
    *,
    video: str | os.PathLike | None = None,
    seed: int = 0,
    sampling: Mapping[str, Any] | None = None,
) -> Path:
    """Generate one window (from ``video`` or :func:`probe_frames`) and plot it over time to ``path`` (PNG).

    FOA: azimuth-time map (:func:`azimuth_time`); binaural: ILD over time (:func:`ild_time`). Both show
    whether the sound follows the picture (the probe's disc moves from left to right).
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
    fig, ax = plt.subplots(figsize=(6, 3))
    if pipeline.output_format == "foa":
        times, azimuths, energy, doa = azimuth_time(audio, pipeline.sample_rate)
        half = float(times[0]) if len(times) else 0.0
        extent = (float(azimuths[0]) + 1, float(azimuths[-1]) - 1, float(times[-1]) + half, 0.0)
        ax.imshow(energy.numpy(), extent=extent, aspect="auto", cmap="magma")
        ax.plot(doa.numpy(), times.numpy(), "c.-", lw=1, label="intensity DOA")
        ax.set_xlim(extent[0], extent[1])
        ax.set_xlabel("azimuth (deg, + = left)")
        ax.set_ylabel("time (s)")
        ax.legend(loc="lower right", fontsize=7)
        ax.set_title(f"generated FOA, direction over time: {source}", fontsize=9)
    else:
        times, ild = ild_time(audio, pipeline.sample_rate)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.plot(times.numpy(), ild.numpy(), "o-", lw=1.5)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("ILD (dB, + = left louder)")
        ax.set_title(f"generated binaural, level difference over time: {source}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def figure_caption(pipeline: GenerationPipeline, video: str | os.PathLike | None) -> str:
    """Caption of :func:`render_card_figure`'s output."""
    what = (
        "Azimuth over time of the generated FOA (energy map per 0.25-s block, intensity DOA in cyan)"
        if pipeline.output_format == "foa"
        else "Interaural level difference over time of the generated binaural audio (+ = left)"
    )
    src = (
        f"for `{Path(video).name}`"
        if video is not None
        else "for a synthetic probe clip whose disc moves from left to right (a model that follows the "
        "picture goes from + to −)"
    )
    return f"{what} {src}"


def card_sections(card: ModelCard) -> Sequence[str]:
    """Level-2 headings of a rendered card (used by tests and checks)."""
    return [line[3:].strip() for line in str(card.content).splitlines() if line.startswith("## ")]
