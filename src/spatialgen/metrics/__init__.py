"""Evaluation metrics (torchmetrics): spatial (ViSAGe energy maps, DOA), binaural, semantic, audio-visual.

>>> from spatialgen.metrics import EnergyMapCC, EnergyMapAUC, FrechetDistance
>>> from spatialgen.metrics.functional import energy_map_cc, energy_map_auc, frechet_distance

Every Metric accumulates float64 sufficient statistics synced in DDP; embedders and scorers are held
outside ``state_dict``. Pure per-clip functions live in :mod:`spatialgen.metrics.functional`, audio
embedders in :mod:`spatialgen.metrics.embedders`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spatialgen.metrics.base import ClipMeanMetric
    from spatialgen.metrics.binaural import (
        BINAURAL_METRICS,
        SNR,
        BandILDError,
        BandIPDError,
        EnvelopeDistance,
        IACCError,
        ILDError,
        IPDError,
        ITDError,
        LeftRightConfusion,
        LRBalanceAgreement,
        MagnitudeDistance,
        PhaseDistance,
        STFTDistance,
        WaveformDistance,
        binaural_metrics,
    )
    from spatialgen.metrics.distribution import FrechetDistance, InceptionScore, KLDivergence
    from spatialgen.metrics.embedders import create_embedder, list_embedders
    from spatialgen.metrics.multimodal import (
        AV_SCORERS,
        DeSync,
        ImageBindScore,
        create_av_scorer,
        register_av_scorer,
    )
    from spatialgen.metrics.spatial import (
        DirectionError,
        DOAError,
        EnergyMapAUC,
        EnergyMapCC,
        direction_metrics,
    )

# Names are imported on first use (PEP 562): ``import spatialgen.metrics.protocols`` (the CLI's --help)
# must not pull in torchmetrics and every embedder.
_LAZY: dict[str, str] = {
    "AV_SCORERS": "spatialgen.metrics.multimodal",
    "BINAURAL_METRICS": "spatialgen.metrics.binaural",
    "BandILDError": "spatialgen.metrics.binaural",
    "BandIPDError": "spatialgen.metrics.binaural",
    "ClipMeanMetric": "spatialgen.metrics.base",
    "DOAError": "spatialgen.metrics.spatial",
    "DeSync": "spatialgen.metrics.multimodal",
    "DirectionError": "spatialgen.metrics.spatial",
    "EnergyMapAUC": "spatialgen.metrics.spatial",
    "EnergyMapCC": "spatialgen.metrics.spatial",
    "EnvelopeDistance": "spatialgen.metrics.binaural",
    "FrechetDistance": "spatialgen.metrics.distribution",
    "IACCError": "spatialgen.metrics.binaural",
    "ILDError": "spatialgen.metrics.binaural",
    "IPDError": "spatialgen.metrics.binaural",
    "ITDError": "spatialgen.metrics.binaural",
    "ImageBindScore": "spatialgen.metrics.multimodal",
    "InceptionScore": "spatialgen.metrics.distribution",
    "KLDivergence": "spatialgen.metrics.distribution",
    "LRBalanceAgreement": "spatialgen.metrics.binaural",
    "LeftRightConfusion": "spatialgen.metrics.binaural",
    "MagnitudeDistance": "spatialgen.metrics.binaural",
    "PhaseDistance": "spatialgen.metrics.binaural",
    "SNR": "spatialgen.metrics.binaural",
    "STFTDistance": "spatialgen.metrics.binaural",
    "WaveformDistance": "spatialgen.metrics.binaural",
    "binaural_metrics": "spatialgen.metrics.binaural",
    "create_av_scorer": "spatialgen.metrics.multimodal",
    "create_embedder": "spatialgen.metrics.embedders",
    "direction_metrics": "spatialgen.metrics.spatial",
    "list_embedders": "spatialgen.metrics.embedders",
    "register_av_scorer": "spatialgen.metrics.multimodal",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AV_SCORERS",
    "BINAURAL_METRICS",
    "SNR",
    "BandILDError",
    "BandIPDError",
    "ClipMeanMetric",
    "DOAError",
    "DeSync",
    "DirectionError",
    "EnergyMapAUC",
    "EnergyMapCC",
    "EnvelopeDistance",
    "FrechetDistance",
    "IACCError",
    "ILDError",
    "IPDError",
    "ITDError",
    "ImageBindScore",
    "InceptionScore",
    "KLDivergence",
    "LRBalanceAgreement",
    "LeftRightConfusion",
    "MagnitudeDistance",
    "PhaseDistance",
    "STFTDistance",
    "WaveformDistance",
    "binaural_metrics",
    "create_av_scorer",
    "create_embedder",
    "direction_metrics",
    "list_embedders",
    "register_av_scorer",
]
