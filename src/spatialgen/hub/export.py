"""``spatialgen export CKPT --out DIR [--push-to REPO] [--no-ema]``: Lightning checkpoint -> Hub export.

The checkpoint's LightningModule (a :class:`~spatialgen.training.base.SpatialAudioModule`: ``ViSAGeModule``
/ ``ViSAudioModule``, named by the class path LightningCLI stores in its hyperparameters, ``_class_path``,
or the one the module itself stores, ``spatialgen_module_class``) is rebuilt, its
:meth:`~spatialgen.training.base.SpatialAudioModule.export_pipeline` copy taken, and written as ``model.safetensors`` +
``config.json`` + ``README.md`` (:mod:`spatialgen.hub.save`). The network weights are the EMA weights
stored by the :class:`~spatialgen.training.EMA` callback unless ``--no-ema`` (a checkpoint without EMA
exports its raw weights, and the card says so). The card takes the run's recipe (LightningCLI's saved
``config.yaml`` next to the checkpoint, or ``--recipe``), its last metrics (``--metrics``: spatialgen
evaluate's ``metrics.json``, or the run's ``CSVLogger`` ``metrics.csv``) and a sample figure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spatialgen.errors import SpatialgenError
from spatialgen.hub.card import CardInfo, build_model_card, figure_caption, load_metrics, render_card_figure
from spatialgen.hub.load import InvalidExportError
from spatialgen.hub.save import export_state, push_pipeline, save_pipeline
from spatialgen.models.pipeline import GenerationPipeline
from spatialgen.weights import WeightsNotFoundError

__all__ = [
    "ExportedModel",
    "card_info_from_run",
    "export_checkpoint",
    "main",
    "module_pipeline",
    "pipeline_from_checkpoint",
]

FIGURE_NAME = "figures/sample.png"


@dataclass
class ExportedModel:
    """A pipeline with the weights to store and what the card says about them."""

    pipeline: GenerationPipeline
    state: dict[str, Tensor]
    ema: bool
    epoch: int | None
    global_step: int | None
    hparams: dict[str, Any]

    @property
    def weights_note(self) -> str:
        """e.g. ``EMA weights, epoch 3, step 120``."""
        where = ", ".join(
            f"{k} {v}" for k, v in (("epoch", self.epoch), ("step", self.global_step)) if v is not None
        )
        kind = "EMA weights" if self.ema else "raw (non-EMA) weights"
        return f"{kind}{', ' + where if where else ''}"


def _module_class(ckpt: Mapping[str, Any]) -> type:
    """The LightningModule class named in the checkpoint (LightningCLI's ``_class_path``, else the module's own)."""
    from spatialgen.training.base import MODULE_CLASS_KEY, SpatialAudioModule

    hparams = ckpt.get("hyper_parameters") or {}
    path = hparams.get("_class_path") or ckpt.get(MODULE_CLASS_KEY)
    if not isinstance(path, str) or "." not in path:
        raise InvalidExportError(
            "the checkpoint names no LightningModule class (neither hyper_parameters._class_path nor "
            f"{MODULE_CLASS_KEY}); export checkpoints written by spatialgen's training modules"
        )
    module_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise InvalidExportError(f"checkpoint of {path}, which cannot be imported ({exc})") from exc
    if not (isinstance(cls, type) and issubclass(cls, SpatialAudioModule)):
        raise InvalidExportError(
            f"checkpoint of {path}: export supports spatialgen's SpatialAudioModule subclasses"
        )
    return cls


def module_pipeline(module: Any) -> GenerationPipeline:
    """The inference pipeline of a training module: its ``export_pipeline()`` copy."""
    try:
        return module.export_pipeline()
    except ValueError as exc:  # e.g. a mono stage-1 ViSAGe network: trained, not served
        raise InvalidExportError(f"{type(module).__name__}: {exc}") from exc


def with_network_weights(state: Mapping[str, Tensor], network: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` (pipeline keys) with the ``network.*`` entries replaced by ``network`` (network keys)."""
    out = dict(state)
    unknown = sorted(f"network.{k}" for k in network if f"network.{k}" not in out)
    if unknown:
        raise InvalidExportError(f"EMA weights name parameters the network does not have: {unknown[:5]}")
    out.update({f"network.{k}": v for k, v in network.items()})
    return out


def pipeline_from_checkpoint(path: str | Path, *, use_ema: bool = True) -> ExportedModel:
    """Rebuild the pipeline of a Lightning checkpoint with its EMA (default) or raw network weights."""
    from spatialgen.training.ema import ema_state_dict_from_checkpoint

    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"checkpoint {p} not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged pickle raises anything from EOFError to RuntimeError
        raise InvalidExportError(
            f"{p} is not a readable Lightning checkpoint ({type(exc).__name__})"
        ) from exc
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise InvalidExportError(f"{p} is not a Lightning checkpoint (no 'state_dict')")
    hparams = dict(ckpt.get("hyper_parameters") or {})
    cls = _module_class(ckpt)
    module = cls.load_from_checkpoint(p, map_location="cpu", weights_only=False)
    pipeline = module_pipeline(module).cpu().eval()
    state = export_state(pipeline)
    ema = False
    if use_ema:
        try:
            state = with_network_weights(state, ema_state_dict_from_checkpoint(ckpt))
            ema = True
        except ValueError as exc:
            if isinstance(exc, InvalidExportError):
                raise
            print(
                f"spatialgen export: {p.name} has no EMA weights; exporting the raw weights", file=sys.stderr
            )
    return ExportedModel(pipeline, state, ema, ckpt.get("epoch"), ckpt.get("global_step"), hparams)


def _near(path: Path, name: str) -> Path | None:
    """``name`` in the checkpoint's folder or up to two levels above (LightningCLI's log_dir layout)."""
    return next((d / name for d in list(path.parents)[:3] if (d / name).is_file()), None)


def card_info_from_run(
    ckpt: Path,
    *,
    recipe: str | Path | None = None,
    metrics: str | Path | None = None,
    **fields: Any,
) -> CardInfo:
    """Card fields from the run next to ``ckpt``: recipe YAML, last metrics, training-data summary."""
    recipe_path = Path(recipe) if recipe else _near(ckpt, "config.yaml")
    if recipe_path is not None and not recipe_path.is_file():
        raise WeightsNotFoundError(f"recipe {recipe_path} not found")
    metrics_path = Path(metrics) if metrics else _near(ckpt, "metrics.csv")
    info = CardInfo(**{k: v for k, v in fields.items() if v is not None})
    if recipe_path is not None:
        info.recipe = recipe_path.read_text()
        info.training_data = info.training_data or _data_summary(info.recipe)
    if metrics_path is not None:
        info.metrics = load_metrics(metrics_path)
        info.metrics_dataset = f"{metrics_path.name} of the run"
    return info


def _data_summary(recipe: str) -> str | None:
    import yaml

    try:
        data = (yaml.safe_load(recipe) or {}).get("data") or {}
    except yaml.YAMLError:
        return None
    args = data.get("init_args", {}) if isinstance(data, Mapping) else {}
    if not args:
        return None
    parts = [f"`{k}: {args[k]}`" for k in ("dataset", "root", "format", "clip_seconds") if k in args]
    return (
        f"Data module `{data.get('class_path', '?')}` with " + ", ".join(parts) + " (see the recipe below)."
    )


def export_checkpoint(
    ckpt: str | Path,
    out: str | Path,
    *,
    use_ema: bool = True,
    push_to: str | None = None,
    private: bool | None = None,
    recipe: str | Path | None = None,
    metrics: str | Path | None = None,
    figure: bool = True,
    sample_video: str | Path | None = None,
    **card_fields: Any,
) -> Path:
    """Write the export of ``ckpt`` into ``out`` (and push it to ``push_to``); returns ``out``.

    Args:
        ckpt: Lightning checkpoint (``.ckpt``).
        out: export folder.
        use_ema: store the EMA network weights (default) instead of the raw ones.
        push_to: Hub repo id to upload to (token from ``HF_TOKEN`` / ``hf auth login``).
        private: create the Hub repo private.
        recipe, metrics: files for the card (default: found next to the checkpoint).
        figure: add a generated sample figure (energy map / spectrograms) to the card.
        sample_video: video for that figure (default: a synthetic probe clip).
        card_fields: further :class:`CardInfo` fields (``license``, ``model_name``, ``datasets``, ...).
    """
    ckpt = Path(ckpt)
    model = pipeline_from_checkpoint(ckpt, use_ema=use_ema)
    info = card_info_from_run(ckpt, recipe=recipe, metrics=metrics, **card_fields)
    info.weights_note = model.weights_note
    info.repo_id = info.repo_id or push_to or str(out)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        if figure:
            # the figure shows the exported weights: render it from a copy loaded with them
            from spatialgen.hub.save import load_export_state
            from spatialgen.models.pipeline import build_pipeline

            shown = build_pipeline(model.pipeline.pipeline_config())
            load_export_state(shown, model.state)
            files[FIGURE_NAME] = render_card_figure(
                shown.eval(), Path(tmp) / "sample.png", video=sample_video
            )
            info.figure, info.figure_caption = FIGURE_NAME, figure_caption(shown, sample_video)
        card = build_model_card(model.pipeline, info)
        save_pipeline(model.pipeline, out, state=model.state, card=card, files=files)
        if push_to:
            push_pipeline(model.pipeline, push_to, state=model.state, card=card, files=files, private=private)
    return Path(out)


def build_parser(prog: str = "spatialgen export") -> argparse.ArgumentParser:
    """The ``spatialgen export`` argument parser."""
    p = argparse.ArgumentParser(
        prog=prog, description="Export a Lightning checkpoint as a Hub model (safetensors + config + card)."
    )
    p.add_argument("ckpt", type=Path, help="Lightning checkpoint (.ckpt)")
    p.add_argument("--out", required=True, type=Path, help="export folder")
    p.add_argument("--push-to", metavar="REPO", help="also upload to this Hub repo (owner/name)")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA ones")
    p.add_argument("--recipe", type=Path, help="recipe YAML for the card (default: config.yaml of the run)")
    p.add_argument("--metrics", type=Path, help="metrics.json of spatialgen evaluate (or a metrics.csv)")
    p.add_argument("--sample-video", type=Path, help="video for the card figure (default: synthetic clip)")
    p.add_argument("--no-figure", action="store_true", help="no generated figure in the card")
    p.add_argument("--name", help="model name in the card")
    p.add_argument("--description", help="one paragraph describing the model")
    p.add_argument(
        "--license", default=None, help="Hub licence id you chose or the weights' source has (default: none)"
    )
    p.add_argument("--dataset", action="append", default=[], help="Hub dataset id (repeatable)")
    p.add_argument("--base-model", help="Hub id of the model this one was fine-tuned from")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spatialgen export``; returns the exit code (2 and one line on user errors)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        out = export_checkpoint(
            args.ckpt,
            args.out,
            use_ema=not args.no_ema,
            push_to=args.push_to,
            private=args.private or None,
            recipe=args.recipe,
            metrics=args.metrics,
            figure=not args.no_figure,
            sample_video=args.sample_video,
            model_name=args.name,
            description=args.description,
            license=args.license,
            datasets=args.dataset or None,
            base_model=args.base_model,
        )
    except (SpatialgenError, FileNotFoundError) as err:
        print(f"spatialgen export: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
