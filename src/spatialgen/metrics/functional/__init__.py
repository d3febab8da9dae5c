"""Pure metric functions (per clip where it makes sense, float64); the Metric classes accumulate them.

>>> from spatialgen.metrics.functional import energy_map_cc, energy_map_auc, frechet_distance
"""

from spatialgen.metrics.functional.binaural import (
    analytic_envelope,
    envelope_distance,
    ild_error,
    ipd_error,
    itd_error,
    lateral_angle,
    lateral_error,
    left_right_confusion,
    magnitude_distance,
    phase_distance,
    snr,
    stft,
    stft_distance,
    waveform_distance,
)
from spatialgen.metrics.functional.distribution import (
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kl_divergence,
    mean_cov,
)
from spatialgen.metrics.functional.multimodal import DESYNC_GRID, desync, imagebind_score
from spatialgen.metrics.functional.spatial import (
    ENERGY_MAP_BEAMS,
    auc_judd,
    doa_error,
    energy_map_auc,
    energy_map_cc,
    energy_map_vectors,
    pearson_cc,
)

__all__ = [
    "DESYNC_GRID",
    "ENERGY_MAP_BEAMS",
    "analytic_envelope",
    "auc_judd",
    "desync",
    "doa_error",
    "energy_map_auc",
    "energy_map_cc",
    "energy_map_vectors",
    "envelope_distance",
    "frechet_distance",
    "frechet_distance_from_stats",
    "ild_error",
    "imagebind_score",
    "inception_score",
    "ipd_error",
    "itd_error",
    "kl_divergence",
    "lateral_angle",
    "lateral_error",
    "left_right_confusion",
    "magnitude_distance",
    "mean_cov",
    "pearson_cc",
    "phase_distance",
    "snr",
    "stft",
    "stft_distance",
    "waveform_distance",
]
