"""Export directory <- pipeline: ``model.safetensors`` + ``config.json`` + ``README.md`` via ``PyTorchModelHubMixin``.

An export is the Hub layout of one :class:`~spatialgen.models.pipeline.GenerationPipeline`:

* ``config.json``: exactly :meth:`GenerationPipeline.pipeline_config` (``{"kind": ..., ...}``), which
  :func:`~spatialgen.models.pipeline.build_pipeline` turns back into the architecture;
* ``model.safetensors``: the pipeline's *export state* (:func:`export_state`): the trained network and
  every part built without published weights; parts with published weights (official CLIP, DAC) are
  referenced by name in the config and rebuilt from their registries;
* ``README.md``: the model card (:mod:`spatialgen.hub.card`), plus any card figure.

:class:`HubPipeline` carries the pipeline through ``PyTorchModelHubMixin`` so that ``save_pretrained``,
``push_to_hub`` and ``from_pretrained`` are the library's own; it overrides the weight I/O to store the
export state under the pipeline's own key names and to load it *strictly* (the mixin's default is
``strict=False``, which would silently keep random weights).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import Tensor, nn

from spatialgen.models.pipeline import GenerationPipeline

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "HubPipeline",
    "export_state",
    "load_export_state",
    "push_pipeline",
    "save_pipeline",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LIBRARY_NAME = "spatialgen"
REPO_URL = "https://github.com/spatialgen/spatialgen"
BASE_TAGS = ["spatialgen", "spatial-audio", "video-to-audio"]


def export_state(pipeline: GenerationPipeline) -> dict[str, Tensor]:
    """The weights an export stores: :meth:`GenerationPipeline.export_state_dict`."""
    return dict(pipeline.export_state_dict())


def load_export_state(pipeline: GenerationPipeline, state: Mapping[str, Tensor]) -> None:
    """Load :func:`export_state` output strictly (:meth:`GenerationPipeline.load_export_state_dict`)."""
    pipeline.load_export_state_dict(state)


def _safetensors_ready(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; tied weights (shared storage) get their own copy, which
    safetensors requires (loading copies the same values into both parameters again)."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ident in seen and t.numel():
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[key] = t
    return out


class HubPipeline(
    nn.Module,
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    repo_url=REPO_URL,
    tags=list(BASE_TAGS),
):
    """A :class:`GenerationPipeline` with the Hub mixin's ``save_pretrained``/``push_to_hub``/``from_pretrained``.

    Args:
        pipeline: the pipeline to save (held as ``self.pipeline``; never named ``module``, which the
            mixin would save instead of the whole object).
        state: weights to store instead of ``export_state(pipeline)`` (e.g. with EMA network weights).
        card: the model card to write as ``README.md`` (default: a minimal generated card).
        files: extra files to place next to the weights, ``{name in the export: local path}`` (card figures).
    """

    def __init__(
        self,
        pipeline: GenerationPipeline,
        state: Mapping[str, Tensor] | None = None,
        card: ModelCard | None = None,
        files: Mapping[str, str | os.PathLike] | None = None,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self._state = None if state is None else dict(state)
        self._card = card
        self._files = {k: Path(v) for k, v in (files or {}).items()}

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors``, ``config.json`` and extra files (the mixin then adds README.md)."""
        from safetensors.torch import save_file

        state = self._state if self._state is not None else export_state(self.pipeline)
        save_file(_safetensors_ready(state), str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})
        config = self.pipeline.pipeline_config()
        (save_directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name, src in self._files.items():
            dst = save_directory / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The card given at construction, else one built from the pipeline config (:func:`build_model_card`)."""
        if self._card is not None:
            return self._card
        from spatialgen.hub.card import CardInfo, build_model_card

        return build_model_card(self.pipeline, CardInfo(**kwargs))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: Mapping[str, Any] | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **_: Any,
    ) -> HubPipeline:
        """Rebuild the pipeline from ``config.json`` and load ``model.safetensors`` strictly (eval mode)."""
        from spatialgen.hub.load import load_export

        if not strict:
            raise ValueError("HubPipeline loads strictly only: a partial load would keep random weights")
        pipeline = load_export(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
        )
        return cls(pipeline)


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
    HubPipeline(pipeline, state, card, files).save_pretrained(out)
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
    wrapper = HubPipeline(pipeline, state, card, files)
    return str(
        wrapper.push_to_hub(
            repo_id, private=private, token=token, branch=branch, commit_message=commit_message
        )
    )
