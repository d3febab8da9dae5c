"""Spatial Metrics for FOA: ViSAGe's energy-map CC / AUC-Judd (and the corrected SN3D variant), DOA and
direction (azimuth / elevation / angular) errors.

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
from spatialgen.metrics.functional.direction import DIRECTION_ERRORS, DIRECTION_METHODS, direction_errors
from spatialgen.metrics.functional.spatial import ENERGY_MAP_BEAMS, doa_error, energy_map_auc, energy_map_cc

__all__ = ["DOAError", "DirectionError", "EnergyMapAUC", "EnergyMapCC", "direction_metrics"]


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


class DirectionError(ClipMeanMetric):
    """Azimuth, elevation or angular error (degrees) of the dominant direction of FOA ``[B, 4, T]``.

    ``method``: "intensity" (pseudo-intensity vector sum) or "map" (max-rE energy-map peak);
    ``frame``: None (one direction per clip) or seconds per block (1.0: per second, errors averaged over
    the blocks audible in both signals). Silent clips are NaN (see
    :func:`spatialgen.metrics.functional.direction.direction_errors`).
    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        error: str = "angular",
        method: str = "intensity",
        frame: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if error not in DIRECTION_ERRORS:
            raise ValueError(f"error must be one of {DIRECTION_ERRORS}, got {error!r}")
        if method not in DIRECTION_METHODS:
            raise ValueError(f"method must be one of {DIRECTION_METHODS}, got {method!r}")
        if frame is not None and not frame > 0:
            raise ValueError(f"frame must be None or seconds > 0, got {frame}")
        self.sample_rate, self.error, self.method, self.frame = int(sample_rate), error, method, frame
        self._shared: _SharedErrors | None = None  # set by direction_metrics()

    @property
    def key(self) -> str:
        """Result key, e.g. ``azimuth_error_deg_map_clip`` or ``angular_error_deg_intensity_1s``."""
        span = "clip" if self.frame is None else f"{self.frame:g}s"
        return f"{self.error}_error_deg_{self.method}_{span}"

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip error in degrees ``[B]``."""
        if self._shared is not None:
            errors = self._shared.get(pred, target, self.sample_rate, self.method, self.frame)
        else:
            errors = direction_errors(pred, target, self.sample_rate, method=self.method, frame=self.frame)
        return errors[self.error].rad2deg()


class _SharedErrors:
    """The three errors of one (method, frame) computed once per batch for the metrics sharing it:
    the last batch is recognised by identity (the same tensor objects), never by value."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._errors: dict[str, Tensor] = {}

    def get(
        self, pred: Tensor, target: Tensor, sample_rate: int, method: str, frame: float | None
    ) -> dict[str, Tensor]:
        key = (id(pred), pred._version, id(target), target._version, sample_rate, method, frame)
        if key != self._key:
            self._errors = direction_errors(pred, target, sample_rate, method=method, frame=frame)
            self._key = key
            self._refs = (pred, target)  # keep them alive so their ids are not reused meanwhile
        return self._errors


def direction_metrics(
    sample_rate: int, frames: tuple[float | None, ...] = (None, 1.0)
) -> dict[str, DirectionError]:
    """Every :class:`DirectionError` (3 errors × 2 methods × ``frames``) keyed by its result key; the three
    errors of one (method, frame) share one direction estimate per batch."""
    out = {}
    for method in DIRECTION_METHODS:
        for frame in frames:
            shared = _SharedErrors()
            for error in DIRECTION_ERRORS:
                m = DirectionError(sample_rate, error=error, method=method, frame=frame)
                object.__setattr__(m, "_shared", shared)  # not a state: kept out of state_dict
                out[m.key] = m
    return out
