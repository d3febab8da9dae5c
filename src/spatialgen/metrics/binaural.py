"""Binaural Metrics (``[B, 2, T]``, ``[L, R]``): distances of 2.5D Visual Sound / CCStereo and cue errors.

Each class is the clip mean of the function of the same name in
:mod:`spatialgen.metrics.functional.binaural` (formulas there). :data:`BINAURAL_METRICS` maps result
keys to classes, for the evaluate command and for logging all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from spatialgen.metrics.base import ClipMeanMetric
from spatialgen.metrics.functional import binaural as F
from spatialgen.metrics.functional import interaural as I

__all__ = [
    "BINAURAL_METRICS",
    "SNR",
    "BandILDError",
    "BandIPDError",
    "EnvelopeDistance",
    "IACCError",
    "ILDError",
    "IPDError",
    "ITDError",
    "LRBalanceAgreement",
    "LeftRightConfusion",
    "MagnitudeDistance",
    "PhaseDistance",
    "STFTDistance",
    "WaveformDistance",
    "binaural_metrics",
]


class _Binaural(ClipMeanMetric):
    fn: ClassVar[Callable[..., Tensor]]
    needs_rate: ClassVar[bool] = False
    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(self, sample_rate: int = 16000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip values ``[B]``."""
        fn = type(self).fn
        return fn(pred, target, self.sample_rate) if self.needs_rate else fn(pred, target)


class STFTDistance(_Binaural):
    """2.5D Visual Sound STFT distance (lower is better)."""

    fn = staticmethod(F.stft_distance)


class EnvelopeDistance(_Binaural):
    """2.5D Visual Sound envelope distance (lower is better)."""

    fn = staticmethod(F.envelope_distance)


class WaveformDistance(_Binaural):
    """CCStereo WAV distance ``Σ_ch mean Δ²`` (lower is better)."""

    fn = staticmethod(F.waveform_distance)


class MagnitudeDistance(_Binaural):
    """CCStereo "Mag" distance (complex STFT difference; lower is better)."""

    fn = staticmethod(F.magnitude_distance)


class PhaseDistance(_Binaural):
    """CCStereo phase distance of the L−R STFT, radians (lower is better)."""

    fn = staticmethod(F.phase_distance)


class SNR(_Binaural):
    """CCStereo SNR in dB over both channels (higher is better)."""

    fn = staticmethod(F.snr)
    higher_is_better = True
    plot_lower_bound = None


class ILDError(_Binaural):
    """Mean per-bin ``|ILD_p − ILD_g|`` in dB (lower is better)."""

    fn = staticmethod(F.ild_error)


class ITDError(_Binaural):
    """``|ITD_p − ITD_g|`` in seconds by GCC-PHAT (lower is better)."""

    fn = staticmethod(F.itd_error)
    needs_rate = True


class IPDError(_Binaural):
    """Magnitude-weighted wrapped IPD error in radians (lower is better)."""

    fn = staticmethod(F.ipd_error)


class LeftRightConfusion(Metric):
    """Fraction of clearly lateral clips (by ILD, else ITD) whose predicted side is wrong (lower is better)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound, plot_upper_bound = 0.0, 1.0
    confused: Tensor
    decisive: Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        ild_threshold_db: float = 1.0,
        itd_threshold_s: float = 50e-6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sample_rate, self.ild_threshold_db, self.itd_threshold_s = (
            int(sample_rate),
            ild_threshold_db,
            itd_threshold_s,
        )
        self.add_state("confused", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("decisive", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per clip: 1.0 confused, 0.0 correct, NaN when the truth is not clearly lateral."""
        confused, decisive = F.left_right_confusion(
            pred,
            target,
            self.sample_rate,
            ild_threshold_db=self.ild_threshold_db,
            itd_threshold_s=self.itd_threshold_s,
        )
        out = confused.to(torch.float64)
        return torch.where(decisive, out, torch.full_like(out, float("nan")))

    def accumulate(self, values: Tensor) -> None:
        """Add per-clip values from :meth:`scores`."""
        values = values.detach().to(self.confused.device, torch.float64)
        decisive = ~values.isnan()
        self.confused += values[decisive].sum()
        self.decisive += decisive.sum()

    def update(
        self, pred: Tensor | None = None, target: Tensor | None = None, *, scores: Tensor | None = None
    ) -> None:
        """Score and accumulate a batch (or per-clip ``scores`` from :meth:`scores`)."""
        if scores is None:
            if pred is None or target is None:
                raise TypeError("LeftRightConfusion.update needs pred and target, or scores=")
            scores = self.scores(pred, target)
        self.accumulate(scores)

    def compute(self) -> Tensor:
        """Confusion rate; NaN with a warning when no clip was clearly lateral."""
        if self.decisive == 0:
            import warnings

            warnings.warn(
                "LeftRightConfusion: no clearly lateral ground-truth clip; rate is NaN",
                RuntimeWarning,
                stacklevel=2,
            )
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.confused / self.decisive

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot a value or a sequence of values."""
        return self._plot(val, ax)


class IACCError(_Binaural):
    """``|IACC_p − IACC_g|`` (interaural cross-correlation, ±1 ms; lower is better)."""

    fn = staticmethod(I.iacc_error)
    needs_rate = True


class LRBalanceAgreement(_Binaural):
    """Per-second left/right balance agreement on clearly lateral truth seconds (higher is better).

    A clip with no clearly lateral second (a centred source) has no agreement to score: such clips are
    left out of the mean (``skip_nan=True`` by default, still warned), as :class:`LeftRightConfusion` leaves
    out undecided clips; the result is NaN only when no clip has a lateral second.
    """

    fn = staticmethod(I.lr_balance_agreement)
    needs_rate = True
    higher_is_better = True
    plot_upper_bound = 1.0

    def __init__(self, sample_rate: int = 16000, *, skip_nan: bool = True, **kwargs: Any) -> None:
        super().__init__(sample_rate, skip_nan=skip_nan, **kwargs)


class _BandMetric(_Binaural):
    def __init__(
        self, sample_rate: int = 16000, band: tuple[float, float | None] = (0.0, 500.0), **kwargs: Any
    ) -> None:
        super().__init__(sample_rate, **kwargs)
        self.band = band

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip values ``[B]``."""
        return type(self).fn(pred, target, self.sample_rate, self.band)


class BandILDError(_BandMetric):
    """Mean per-bin ``|ILD_p − ILD_g|`` dB within one frequency band (lower is better)."""

    fn = staticmethod(I.band_ild_error)


class BandIPDError(_BandMetric):
    """Magnitude-weighted wrapped IPD error (radians) within one frequency band (lower is better)."""

    fn = staticmethod(I.band_ipd_error)


#: result key -> Metric class (all take ``sample_rate``)
BINAURAL_METRICS: dict[str, type[Metric]] = {
    "stft_distance": STFTDistance,
    "envelope_distance": EnvelopeDistance,
    "waveform_distance": WaveformDistance,
    "magnitude_distance": MagnitudeDistance,
    "phase_distance": PhaseDistance,
    "snr": SNR,
    "ild_error_db": ILDError,
    "itd_error_s": ITDError,
    "ipd_error_rad": IPDError,
    "lr_confusion": LeftRightConfusion,
    "iacc_error": IACCError,
    "lr_balance_agreement": LRBalanceAgreement,
}


def binaural_metrics(sample_rate: int = 16000) -> dict[str, Metric]:
    """Every binaural metric keyed by result key: :data:`BINAURAL_METRICS` plus ILD / IPD errors per band
    of :data:`~spatialgen.metrics.functional.interaural.BANDS` (``ild_error_db_500_1500hz``, ...)."""
    out: dict[str, Metric] = {k: cls(sample_rate) for k, cls in BINAURAL_METRICS.items()}
    for band in I.BANDS:
        if band[0] < sample_rate / 2:
            out[f"ild_error_db_{I.band_key(band)}"] = BandILDError(sample_rate, band)
            out[f"ipd_error_rad_{I.band_key(band)}"] = BandIPDError(sample_rate, band)
    return out
