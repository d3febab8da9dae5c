"""Distribution Metrics over audio embedders: Fréchet distance, KL(gt‖pred), Inception score.

The embedder (any :class:`~spatialgen.metrics.embedders.AudioEmbedder`, or a registered name) is held
outside ``state_dict``; inputs are audio ``[B, C, T]`` at ``sample_rate`` (resampled to the embedder's
rate) reduced per :data:`~spatialgen.metrics.embedders.CHANNEL_REDUCTIONS`. With ``embedder=None`` the
metrics take precomputed embeddings / logits instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from spatialgen.metrics.base import ClipMeanMetric, attach_module
from spatialgen.metrics.embedders.base import AudioEmbedder, EmbedderOutput, reduce_channels
from spatialgen.metrics.embedders.registry import create_embedder
from spatialgen.metrics.functional.distribution import (
    frechet_distance_from_stats,
    inception_score,
    kl_divergence,
)
from spatialgen.metrics.functional.resample import sinc_resample

__all__ = ["FrechetDistance", "InceptionScore", "KLDivergence"]


class _EmbedderMixin:
    """Resolve, hold (outside state_dict) and run an embedder on multi-channel audio."""

    embedder: AudioEmbedder | None

    def _setup_embedder(
        self,
        embedder: str | AudioEmbedder | None,
        pretrained: bool | str,
        sample_rate: int | None,
        reduction: str,
    ) -> None:
        if isinstance(embedder, str):
            embedder = create_embedder(embedder, pretrained=pretrained)
        attach_module(self, "embedder", embedder)  # type: ignore[arg-type]
        reduce_channels(torch.zeros(1, 1, 1), reduction)  # validates the name
        self.reduction = reduction
        self.sample_rate = sample_rate if sample_rate is not None else getattr(embedder, "sample_rate", None)

    def _embed(self, audio: Tensor) -> EmbedderOutput:
        """``[B, C, T]`` -> embeddings ``[B, C', K, D]`` and logits ``[B, C', classes]`` (or None)."""
        if self.embedder is None:
            raise TypeError(f"{type(self).__name__} was built with embedder=None: pass embeddings / logits")
        x = reduce_channels(audio, self.reduction)
        if self.sample_rate != self.embedder.sample_rate:
            # torchaudio's sinc-Hann filter, as av-benchmark, on the audio's device
            x = sinc_resample(x, int(self.sample_rate), self.embedder.sample_rate)
        b, c = x.shape[:2]
        self.embedder.to(audio.device)
        out = self.embedder(x.flatten(0, 1))
        logits = None if out.logits is None else out.logits.reshape(b, c, -1)
        return EmbedderOutput(out.embeddings.reshape(b, c, *out.embeddings.shape[1:]), logits)

    def _logits(self, x: Tensor) -> Tensor:
        """Audio ``[B, C, T]`` or logits ``[B, classes]`` / ``[B, C', classes]`` -> ``[B, C', classes]``."""
        if self.embedder is None:
            return x[:, None] if x.ndim == 2 else x
        logits = self._embed(x).logits
        if logits is None:
            raise ValueError(f"embedder {self.embedder.name!r} has no classifier; use panns_cnn14 or tiny")
        return logits


class FrechetDistance(_EmbedderMixin, Metric):
    """Fréchet distance between the embedding distributions of predictions and ground truth (unpaired).

    States are float64 sums ``Σx``, ``Σxxᵀ`` and counts per side (and per channel for
    ``reduction="mean_channels"``, where the FD is computed per channel and averaged, as ViSAGe does), so
    DDP needs only a sum all-reduce. Every example of every clip counts (VGGish: one per 0.96 s).

    Args:
        embedder: a registered name ("vggish", "panns_cnn14", ...), an embedder, or None to feed
            embeddings ``[N, D]`` (or ``[N, C, D]``) directly.
        sample_rate: rate of the audio given to ``update`` (default: the embedder's).
        reduction: "mean_channels", "first" (W / mid) or "all" (channels pooled as samples).
        channels: channel count for "mean_channels" (4 for FOA, 2 for binaural).
        num_features: embedding size when ``embedder=None``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        embedder: str | AudioEmbedder | None = "vggish",
        *,
        pretrained: bool | str = True,
        sample_rate: int | None = None,
        reduction: str = "mean_channels",
        channels: int = 1,
        num_features: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._setup_embedder(embedder, pretrained, sample_rate, reduction)
        dim = self.embedder.embed_dim if self.embedder is not None else num_features
        if not dim:
            raise ValueError("FrechetDistance: pass num_features when embedder=None")
        self.channels = channels if reduction == "mean_channels" else 1
        for side in ("pred", "target"):
            self.add_state(
                f"{side}_sum", torch.zeros(self.channels, dim, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(
                f"{side}_outer",
                torch.zeros(self.channels, dim, dim, dtype=torch.float64),
                dist_reduce_fx="sum",
            )
            self.add_state(f"{side}_n", torch.zeros(self.channels, dtype=torch.float64), dist_reduce_fx="sum")

    def _features(self, x: Tensor) -> Tensor:
        """Audio or embeddings -> ``[C, M, D]`` samples per channel group."""
        if self.embedder is None:
            emb = x[:, None, None] if x.ndim == 2 else x[:, :, None]  # [B, C, 1, D]
        else:
            emb = self._embed(x).embeddings  # [B, C, K, D]
        if self.reduction == "all":
            return emb.reshape(1, -1, emb.shape[-1])
        if emb.shape[1] != self.channels:
            raise ValueError(
                f"FrechetDistance: got {emb.shape[1]} channel(s), built for channels={self.channels}; "
                "set channels= to the audio's channel count"
            )
        return emb.transpose(0, 1).flatten(1, 2)

    def update(self, pred: Tensor | None, target: Tensor | None) -> None:
        """Add predictions and/or ground truth (either may be None; batches need not be paired)."""
        for side, x in (("pred", pred), ("target", target)):
            if x is None:
                continue
            f = self._features(x).to(torch.float64).to(self.pred_sum.device)
            getattr(self, f"{side}_sum").add_(f.sum(1))
            getattr(self, f"{side}_outer").add_(f.transpose(1, 2) @ f)
            getattr(self, f"{side}_n").add_(f.shape[1])

    def _stats(self, side: str) -> tuple[Tensor, Tensor]:
        n = getattr(self, f"{side}_n")
        if bool((n < 2).any()):
            raise ValueError(f"FrechetDistance: need >= 2 {side} embeddings per channel, got {n.tolist()}")
        mu = getattr(self, f"{side}_sum") / n[:, None]
        outer = getattr(self, f"{side}_outer") - n[:, None, None] * mu[:, :, None] * mu[:, None, :]
        return mu, outer / (n[:, None, None] - 1)

    def compute(self) -> Tensor:
        """FD (mean over channel groups for "mean_channels"), float64."""
        return frechet_distance_from_stats(*self._stats("pred"), *self._stats("target")).mean()

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot a value or a sequence of values."""
        return self._plot(val, ax)


class KLDivergence(_EmbedderMixin, ClipMeanMetric):
    """Paired KL(gt‖pred) of classifier softmax probabilities, summed over classes, averaged over clips
    (av-benchmark / ViSAGe's "kullback_leibler_divergence_softmax"); channel groups are averaged.

    ``classifier``: an embedder with logits ("panns_cnn14", "tiny", ...), or None to pass logits;
    ``eps``: see :func:`~spatialgen.metrics.functional.distribution.kl_divergence` (ViSAGe: 1e-6).
    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        classifier: str | AudioEmbedder | None = "panns_cnn14",
        *,
        pretrained: bool | str = True,
        sample_rate: int | None = None,
        reduction: str = "mean_channels",
        eps: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._setup_embedder(classifier, pretrained, sample_rate, reduction)
        self.eps = eps

    def scores(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-clip KL ``[B]`` (mean over channel groups)."""
        p, g = self._logits(pred), self._logits(target)
        return kl_divergence(p, g, self.eps).mean(-1)


class InceptionScore(_EmbedderMixin, Metric):
    """Inception score of the predictions' class distribution (10 splits after a RandomState(2020)
    shuffle, as av-benchmark); channel groups are averaged. Logits are gathered (``cat``) in DDP."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        classifier: str | AudioEmbedder | None = "panns_cnn14",
        *,
        pretrained: bool | str = True,
        sample_rate: int | None = None,
        reduction: str = "mean_channels",
        splits: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._setup_embedder(classifier, pretrained, sample_rate, reduction)
        self.splits = splits
        self.add_state("logits", [], dist_reduce_fx="cat")

    def update(self, pred: Tensor) -> None:
        """Add predicted audio ``[B, C, T]`` (or logits when built with ``classifier=None``)."""
        logits = self._logits(pred).to(torch.float64)
        if self.reduction == "all":
            logits = logits.reshape(-1, 1, logits.shape[-1])
        self.logits.append(logits)

    def compute(self) -> Tensor:
        """Mean IS over splits (and channel groups)."""
        logits = torch.cat(self.logits) if isinstance(self.logits, list) else self.logits
        return torch.stack(
            [inception_score(logits[:, c], self.splits)[0] for c in range(logits.shape[1])]
        ).mean()
