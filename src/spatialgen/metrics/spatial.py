"""Spatial Metrics for FOA: ViSAGe's energy-map CC / AUC-Judd (and the corrected SN3D variant), DOA error.

>>> cc = EnergyMapCC(sample_rate=16000, fps=1)        # "corr_1fps"
>>> cc.update(pred_foa, gt_foa); cc.compute()        # doctest: +SKIP

Use ``fps=None`` / 1 / 5 for ViSAGe's ``*_all`` / ``*_1fps`` / ``*_5fps``; ``beam="sn3d"`` is the corrected
variant, to be reported separately from the published protocol.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from spatialgen.metrics.base import ClipMeanMetric
from spatialgen.metrics.functional.binaural import lateral_error
from spatialgen.metrics.functional.spatial import ENERGY_MAP_BEAMS, doa_error, energy_map_auc, energy_map_cc

__all__ = ["DOAError", "EnergyMapAUC", "EnergyMapCC"]


class _EnergyMapMetric(ClipMeanMetric):
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        sample_rate: int = 16000,
        fps: int | None = None,
        *,
        beam: str = "visage",
        seconds: float | None = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if beam not in ENERGY_MAP_BEAMS:
            raise ValueError(f"beam must be one of {ENERGY_MAP_BEAMS}, got {beam!r}")
        if fps is not None and not 0 < fps <= sample_rate:
            raise ValueError(f"fps must be None (whole clip) or a positive int like 1 or 5, got {fps}")
        self.sample_rate, self.fps, self.beam, self.seconds = int(sample_rate), fps, beam, seconds

    @property
    def key(self) -> str:
        """ViSAGe's result key (``corr_all``, ``auc_j_5fps``, ...), ``_sn3d`` appended for the corrected beam."""
        base = f"{self._key_prefix}_{'all' if self.fps is None else f'{self.fps}fps'}"
        return base if self.beam == "visage" else f"{base}_sn3d"


class EnergyMapCC(_EnergyMapMetric):
    """ViSAGe's energy-map correlation (Pearson CC) of FOA ``pred`` vs ``target`` ``[B, 4, T]``."""

    higher_is_better = True
    _key_prefix = "corr"

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip CC ``[B]``."""
        return energy_map_cc(
            pred, target, self.sample_rate, fps=self.fps, beam=self.beam, seconds=self.seconds
        )


class EnergyMapAUC(_EnergyMapMetric):
    """ViSAGe's energy-map AUC-Judd of FOA ``pred`` (saliency) vs ``target`` (fixations), seeded jitter."""

    higher_is_better = True
    plot_lower_bound = 0.0
    _key_prefix = "auc_j"

    def __init__(
        self,
        sample_rate: int = 16000,
        fps: int | None = None,
        *,
        beam: str = "visage",
        seconds: float | None = 5.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(sample_rate, fps, beam=beam, seconds=seconds, **kwargs)
        self.seed = seed

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip AUC ``[B]``."""
        return energy_map_auc(
            pred, target, self.sample_rate, fps=self.fps, beam=self.beam, seconds=self.seconds, seed=self.seed
        )


class DOAError(ClipMeanMetric):
    """Mean direction error in degrees per frame of ``frame`` seconds.

    ``mode="foa"``: great-circle angle between intensity DOAs of FOA ``pred``/``target`` ``[B, 4, T]``
    (silent ground-truth frames skipped). ``mode="binaural"``: ``|lateral_p − lateral_g|`` from the ITD of
    ``[B, 2, T]`` (Woodworth head), since a binaural pair only fixes the lateral angle.
    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(
        self, sample_rate: int = 16000, *, mode: str = "foa", frame: float | None = 0.2, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if mode not in ("foa", "binaural"):
            raise ValueError(f"mode must be 'foa' or 'binaural', got {mode!r}")
        self.sample_rate, self.mode, self.frame = int(sample_rate), mode, frame

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip mean error in degrees ``[B]``."""
        if self.mode == "foa":
            err = doa_error(pred, target, self.sample_rate, frame=self.frame)
        else:
            err = lateral_error(pred, target, self.sample_rate, frame=self.frame)
        return err.rad2deg()
