"""Evaluation protocols: everything a published table's numbers depend on besides the audio itself.

A number is only comparable with a paper's if the audio reaches the embedder the way it did there:
same resampler, channel handling, clip length, DC removal, embedders, classifiers and IS splits.

- ``av-benchmark`` (hkchengrex/av-benchmark ``av_bench/data/audio_dataset.py``, ``extract.py``,
  ``extraction_models.py``, ``evaluate.py``; the metric code of MMAudio and the 2025–26 video-to-audio
  tables): each file is mixed to mono (``waveform.mean(dim=0)``), its DC removed, resampled with
  torchaudio's sinc-Hann filter to the embedder's rate and truncated (never padded) to 8 s. FD with
  PaSST (32 kHz), PANNs CNN14 16 kHz (``2048`` layer) and VGGish; KL(gt‖pred) softmax with PANNs 16 kHz
  and PaSST; IS with both classifiers, 10 splits after a ``RandomState(2020)`` shuffle.
- ``visage`` (jaeyeonkim99/visage ``evaluate_spatial.py``, ``evaluate_semantic.py`` with audioldm_eval):
  spatial metrics on 16 kHz FOA padded / truncated to 5 s; FD with VGGish and KL with PaSST computed
  per channel (W, Y, Z, X) and averaged; VGGish input DC-removed and padded to at least 2 s; KL with
  ``log(q + 1e-6)``. ViSAGe reports no IS.
- ``spatialgen``: this project's own defaults, every option settable: ``--sample-rate`` / ``--seconds``
  (padded / truncated), ``--embedder`` / ``--classifier`` / ``--reduction``, IS with 10 splits.

All resampling on the metric path is :func:`spatialgen.metrics.functional.resample.sinc_resample`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spatialgen.errors import SpatialgenError

if TYPE_CHECKING:  # torch is imported on use: the CLI lists protocols without loading it
    from torch import Tensor

__all__ = ["PROTOCOLS", "AudioPrep", "Protocol", "get_protocol"]


@dataclass(frozen=True)
class AudioPrep:
    """How a file becomes one metric's input ``[C', T']``.

    Attributes:
        sample_rate: target rate (0: the embedder's own rate, filled in by :meth:`at`).
        mix: "channels" keeps every channel, "mono" averages them.
        dc: "none", "before" (remove each channel's mean before resampling: av-benchmark) or "after"
            (after resampling: audioldm_eval).
        seconds: cut to this many seconds (None: keep the length).
        pad: zero-pad clips shorter than ``seconds`` up to it.
        min_seconds: zero-pad shorter clips up to this (audioldm_eval's 32,000 samples for VGGish).
    """

    sample_rate: int = 0
    mix: str = "channels"
    dc: str = "none"
    seconds: float | None = None
    pad: bool = False
    min_seconds: float = 0.0

    def at(self, sample_rate: int) -> AudioPrep:
        """This prep at ``sample_rate`` when it has none of its own."""
        return self if self.sample_rate else replace(self, sample_rate=int(sample_rate))

    def __call__(self, audio: Tensor, sample_rate: int) -> Tensor:
        """``[C, T]`` at ``sample_rate`` -> the metric's input (float32 in, dtype kept), on its device."""
        import torch

        from spatialgen.metrics.functional.resample import sinc_resample

        x = audio.mean(0, keepdim=True) if self.mix == "mono" else audio
        if self.dc == "before":
            x = x - x.mean(-1, keepdim=True)
        x = sinc_resample(x, int(sample_rate), self.sample_rate)
        if self.dc == "after":
            x = x - x.mean(-1, keepdim=True)
        if self.seconds is not None:
            n = round(self.seconds * self.sample_rate)
            x = x[..., :n]
            if self.pad and x.shape[-1] < n:
                x = torch.nn.functional.pad(x, (0, n - x.shape[-1]))
        n_min = round(self.min_seconds * self.sample_rate)
        if x.shape[-1] < n_min:
            x = torch.nn.functional.pad(x, (0, n_min - x.shape[-1]))
        return x


@dataclass(frozen=True)
class Protocol:
    """One protocol's fixed settings (see the module doc)."""

    name: str
    summary: str
    spatial: AudioPrep
    fd: AudioPrep
    kl: AudioPrep
    fd_embedders: tuple[str, ...]
    kl_classifiers: tuple[str, ...]
    is_classifiers: tuple[str, ...]
    reduction: str = "mean_channels"
    kl_eps: float | None = None
    is_splits: int = 10
    is_seed: int = 2020
    configurable: bool = False

    def settings(self) -> dict[str, object]:
        """JSON-ready description for the report."""
        out = {k: v for k, v in vars(self).items() if k not in ("spatial", "fd", "kl")}
        out.update({k: vars(getattr(self, k)) for k in ("spatial", "fd", "kl")})
        return out


_AV_BENCH = AudioPrep(mix="mono", dc="before", seconds=8.0)
PROTOCOLS: dict[str, Protocol] = {
    "av-benchmark": Protocol(
        name="av-benchmark",
        summary="MMAudio-era video-to-audio tables: mono mix, DC removed, sinc-Hann resampling, cut to 8 s; "
        "FD PaSST/PANNs-16k/VGGish, KL and IS (10 splits, seed 2020) with PANNs-16k and PaSST",
        spatial=AudioPrep(16000, seconds=8.0, pad=True),
        fd=_AV_BENCH,
        kl=_AV_BENCH,
        fd_embedders=("passt", "panns_cnn14_16k", "vggish"),
        kl_classifiers=("panns_cnn14_16k", "passt"),
        is_classifiers=("panns_cnn14_16k", "passt"),
        reduction="mean_channels",
    ),
    "visage": Protocol(
        name="visage",
        summary="ViSAGe's tables: CC/AUC on 16 kHz FOA padded/cut to 5 s; FD (VGGish) and KL (PaSST, "
        "log(q+1e-6)) per channel W/Y/Z/X, averaged",
        spatial=AudioPrep(16000, seconds=5.0, pad=True),
        fd=AudioPrep(dc="after", min_seconds=2.0),
        kl=AudioPrep(),
        fd_embedders=("vggish",),
        kl_classifiers=("passt",),
        is_classifiers=(),
        reduction="mean_channels",
        kl_eps=1e-6,
    ),
    "spatialgen": Protocol(
        name="spatialgen",
        summary="this project's defaults, every option settable (--sample-rate, --seconds, --embedder, "
        "--classifier, --reduction); adds direction and interaural metrics",
        spatial=AudioPrep(16000, seconds=5.0, pad=True),
        fd=AudioPrep(16000, seconds=5.0, pad=True),
        kl=AudioPrep(16000, seconds=5.0, pad=True),
        fd_embedders=("vggish",),
        kl_classifiers=("panns_cnn14",),
        is_classifiers=("panns_cnn14",),
        configurable=True,
    ),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; one clear error line for an unknown one."""
    if name not in PROTOCOLS:
        raise SpatialgenError(f"--protocol: unknown {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
