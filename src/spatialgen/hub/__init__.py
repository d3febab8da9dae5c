"""Hub I/O: export folders (safetensors + config.json + model card), push, strict loading, the export
command and callback, and the official ViSAGe release converter.

Submodules are imported on first use (``lightning`` only for the callback and checkpoint export).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_state": "spatialgen.hub.save",
    "load_export_state": "spatialgen.hub.save",
    "save_pipeline": "spatialgen.hub.save",
    "push_pipeline": "spatialgen.hub.save",
    "InvalidExportError": "spatialgen.hub.load",
    "is_export_dir": "spatialgen.hub.load",
    "load_export": "spatialgen.hub.load",
    "CardInfo": "spatialgen.hub.card",
    "build_model_card": "spatialgen.hub.card",
    "render_card_figure": "spatialgen.hub.card",
    "export_checkpoint": "spatialgen.hub.export",
    "pipeline_from_checkpoint": "spatialgen.hub.export",
    "HubExportCallback": "spatialgen.hub.callback",
    "is_official_visage": "spatialgen.hub.official",
    "load_official_visage": "spatialgen.hub.official",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spatialgen.hub' has no attribute {name!r}")
