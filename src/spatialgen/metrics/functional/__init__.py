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
from spatialgen.metrics.functional.direction import direction_errors, foa_direction
from spatialgen.metrics.functional.distribution import (
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kl_divergence,
    mean_cov,
)
from spatialgen.metrics.functional.interaural import (
    band_ild_error,
    band_ipd_error,
    iacc,
    iacc_error,
    lr_balance,
    lr_balance_agreement,
)
from spatialgen.metrics.functional.multimodal import DESYNC_GRID, desync, imagebind_score
from spatialgen.metrics.functional.resample import sinc_resample
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
    "band_ild_error",
    "band_ipd_error",
    "desync",
    "direction_errors",
    "doa_error",
    "energy_map_auc",
    "energy_map_cc",
    "energy_map_vectors",
    "envelope_distance",
    "foa_direction",
    "frechet_distance",
    "frechet_distance_from_stats",
    "iacc",
    "iacc_error",
    "ild_error",
    "imagebind_score",
    "inception_score",
    "ipd_error",
    "itd_error",
    "kl_divergence",
    "lateral_angle",
    "lateral_error",
    "left_right_confusion",
    "lr_balance",
    "lr_balance_agreement",
    "magnitude_distance",
    "mean_cov",
    "pearson_cc",
    "phase_distance",
    "sinc_resample",
    "snr",
    "stft",
    "stft_distance",
    "waveform_distance",
]
