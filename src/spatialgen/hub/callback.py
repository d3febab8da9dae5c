"""``HubExportCallback``: write (and optionally push) a Hub export during and at the end of training.

Configured in a recipe::

    trainer:
      callbacks:
        - class_path: spatialgen.hub.HubExportCallback
          init_args: {dirpath: runs/x/export, every_n_epochs: 5, push_to: me/visage-synthetic}

Exports hold the EMA network weights when an :class:`~spatialgen.training.EMA` callback runs (else the
raw ones), the recipe LightningCLI saved in the log dir, and the latest ``val/``/``test/`` metrics.
Only global rank zero writes; the last export of the run goes to ``<dirpath>/final``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from spatialgen.hub.card import CardInfo, build_model_card
from spatialgen.hub.export import module_pipeline, with_network_weights
from spatialgen.hub.save import export_state, push_pipeline, save_pipeline
from spatialgen.training.ema import EMA

__all__ = ["HubExportCallback"]


class HubExportCallback(Callback):
    """Export the module's pipeline every ``every_n_epochs`` epochs and/or when fitting ends.

    Args:
        dirpath: folder of the exports: ``<dirpath>/epoch=NNNN`` (``keep_all``) or ``<dirpath>/latest``
            for periodic ones, ``<dirpath>/final`` at the end.
        every_n_epochs: period in epochs (0: only at the end).
        at_end: export when ``fit`` ends.
        push_to: Hub repo id to push each export to (token from ``HF_TOKEN`` / ``hf auth login``).
        private: create that repo private.
        use_ema: store the EMA weights when an EMA callback is present.
        keep_all: keep one folder per periodic export instead of overwriting ``latest``.
        card: further :class:`~spatialgen.hub.card.CardInfo` fields (``license``, ``model_name``, ...).
    """

    def __init__(
        self,
        dirpath: str = "export",
        every_n_epochs: int = 0,
        at_end: bool = True,
        push_to: str | None = None,
        private: bool | None = None,
        use_ema: bool = True,
        keep_all: bool = False,
        card: dict[str, Any] | None = None,
    ) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.dirpath = Path(dirpath)
        self.every_n_epochs = int(every_n_epochs)
        self.at_end = bool(at_end)
        self.push_to = push_to
        self.private = private
        self.use_ema = bool(use_ema)
        self.keep_all = bool(keep_all)
        self.card = dict(card or {})
        self.exported: list[Path] = []

    def _card_info(self, trainer: pl.Trainer, ema: bool) -> CardInfo:
        info = CardInfo(**self.card)
        recipe = Path(trainer.log_dir or "") / "config.yaml" if trainer.log_dir else None
        if recipe is not None and recipe.is_file():
            info.recipe = recipe.read_text()
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("val/", "test/")) and v.numel() == 1
        }
        if metrics:
            info.metrics, info.metrics_dataset = metrics, "validation set at export time"
        kind = "EMA weights" if ema else "raw (non-EMA) weights"
        info.weights_note = f"{kind}, epoch {trainer.current_epoch}, step {trainer.global_step}"
        info.repo_id = info.repo_id or self.push_to
        return info

    def export(self, trainer: pl.Trainer, pl_module: pl.LightningModule, folder: Path) -> Path:
        """Write one export of ``pl_module`` to ``folder`` (and push it); returns the folder."""
        pipeline = module_pipeline(pl_module)
        state = export_state(pipeline)
        ema_cb = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
        ema = bool(self.use_ema and ema_cb is not None and ema_cb.names)
        if ema:
            state = with_network_weights(state, ema_cb.state_dict()["ema"])
        card = build_model_card(pipeline, self._card_info(trainer, ema))
        save_pipeline(pipeline, folder, state=state, card=card)
        if self.push_to:
            push_pipeline(
                pipeline,
                self.push_to,
                state=state,
                card=card,
                private=self.private,
                commit_message=f"spatialgen export: epoch {trainer.current_epoch}, step {trainer.global_step}",
            )
        self.exported.append(folder)
        rank_zero_info(
            f"HubExportCallback: exported to {folder}" + (f" and {self.push_to}" if self.push_to else "")
        )
        return folder

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Periodic export (after the epoch's validation)."""
        epoch = trainer.current_epoch + 1
        if not self.every_n_epochs or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        if trainer.sanity_checking:
            return
        name = f"epoch={epoch:04d}" if self.keep_all else "latest"
        self.export(trainer, pl_module, self.dirpath / name)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Final export."""
        if self.at_end and trainer.is_global_zero:
            self.export(trainer, pl_module, self.dirpath / "final")
