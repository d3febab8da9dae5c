"""Export directory <- pipeline: ``model.safetensors`` + ``config.json`` + ``README.md`` via the pipeline's Hub mixin.

An export is the Hub layout of one :class:`~spatialgen.models.pipeline.GenerationPipeline`:

* ``config.json``: exactly :meth:`GenerationPipeline.pipeline_config` (``{"kind": ..., ...}``), which
  :func:`~spatialgen.models.pipeline.build_pipeline` turns back into the architecture;
* ``model.safetensors``: the pipeline's *export state* (:func:`export_state`): the trained network and
  every part built without published weights; parts with published weights (official CLIP, DAC) are
  referenced by name in the config and rebuilt from their registries;
* ``README.md``: the model card (:mod:`spatialgen.hub.card`), plus any card figure.

The Hub mixin (``huggingface_hub.ModelHubMixin``) is on :class:`GenerationPipeline` itself: its
``save_pretrained``/``push_to_hub`` write this layout and its ``from_pretrained`` loads it *strictly*.
:func:`save_pipeline` and :func:`push_pipeline` add what one export may carry besides the pipeline's own
weights: other weights (EMA), a model card and card figures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import ModelCard
from torch import Tensor

from spatialgen.models.pipeline import CONFIG_NAME, WEIGHTS_NAME, GenerationPipeline

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "export_state",
    "load_export_state",
    "push_pipeline",
    "save_pipeline",
]


def export_state(pipeline: GenerationPipeline) -> dict[str, Tensor]:
    """The weights an export stores: :meth:`GenerationPipeline.export_state_dict`."""
    return dict(pipeline.export_state_dict())


def load_export_state(pipeline: GenerationPipeline, state: Mapping[str, Tensor]) -> None:
    """Load :func:`export_state` output strictly (:meth:`GenerationPipeline.load_export_state_dict`)."""
    pipeline.load_export_state_dict(state)


@contextmanager
def _overridden(
    pipeline: GenerationPipeline,
    state: Mapping[str, Tensor] | None,
    card: ModelCard | None,
    files: Mapping[str, str | os.PathLike] | None,
) -> Iterator[GenerationPipeline]:
    """The pipeline with ``state``/``card``/``files`` set for one ``save_pretrained``/``push_to_hub`` call."""
    if card is None:
        from spatialgen.hub.card import CardInfo, build_model_card

        card = build_model_card(pipeline, CardInfo())
    pipeline._export_override = {
        "state": None if state is None else dict(state),
        "card": card,
        "files": files,
    }
    try:
        yield pipeline
    finally:
        pipeline._export_override = None


def save_pipeline(
    pipeline: GenerationPipeline,
    out_dir: str | os.PathLike,
    *,
    state: Mapping[str, Tensor] | None = None,
    card: ModelCard | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the export of ``pipeline`` into ``out_dir`` (created); returns ``out_dir``.

    Args:
        pipeline: what to export (its ``pipeline_config()`` and export state).
        out_dir: target folder; an existing README.md is replaced by ``card`` when ``overwrite``.
        state: weights to store instead of the pipeline's own (e.g. EMA weights).
        card: model card (default: a minimal one built from the config).
        files: extra files (card figures), ``{relative name: local path}``.
        overwrite: replace an existing export's files; False raises if ``out_dir`` holds one.
    """
    out = Path(out_dir)
    if (out / WEIGHTS_NAME).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds an export; pass overwrite=True or another folder")
    if overwrite:
        (out / "README.md").unlink(missing_ok=True)  # the mixin never replaces an existing card
    with _overridden(pipeline, state, card, files) as p:
        p.save_pretrained(out)
    return out


def push_pipeline(
    pipeline: GenerationPipeline,
    repo_id: str,
    *,
    state: Mapping[str, Tensor] | None = None,
    card: ModelCard | None = None,
    files: Mapping[str, str | os.PathLike] | None = None,
    private: bool | None = None,
    token: str | None = None,
    branch: str | None = None,
    commit_message: str = "Upload spatialgen export",
) -> str:
    """Upload the export of ``pipeline`` to the Hub repo ``repo_id`` in one commit; returns the commit URL.

    The token comes from ``token``, else ``HF_TOKEN`` or the stored ``hf auth login`` credentials.
    """
    with _overridden(pipeline, state, card, files) as p:
        return str(
            p.push_to_hub(repo_id, private=private, token=token, branch=branch, commit_message=commit_message)
        )
