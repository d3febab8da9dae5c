"""Evaluation metrics (torchmetrics): spatial (ViSAGe energy maps, DOA), binaural, semantic, audio-visual.

>>> from spatialgen.metrics import EnergyMapCC, EnergyMapAUC, FrechetDistance
>>> from spatialgen.metrics.functional import energy_map_cc, energy_map_auc, frechet_distance

Every Metric accumulates float64 sufficient statistics synced in DDP; embedders and scorers are held
outside ``state_dict``. Pure per-clip functions live in :mod:`spatialgen.metrics.functional`, audio
embedders in :mod:`spatialgen.metrics.embedders`.
"""

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
from spatialgen.metrics.spatial import DirectionError, DOAError, EnergyMapAUC, EnergyMapCC, direction_metrics

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
