"""Audio-visual Metrics: ImageBind score and DeSync, wired to encoders through a registry.

A *scorer* is an ``nn.Module`` built by name from :data:`AV_SCORERS`:

- ImageBind-style: ``scorer.embed_audio(audio [B, C, T]) -> [B, D]``, ``scorer.embed_video(frames
  [B, T, 3, H, W]) -> [B, D]``; the score is the clip mean of their cosine.
- Synchformer-style: ``scorer.offset_logits(frames, audio) -> [B, windows, 21]`` over
  ``linspace(-2, 2, 21)`` s; DeSync is the mean ``|offset|``.

A scorer also states the rates it expects: ``scorer.sample_rate`` (audio) and ``scorer.video_fps``.

Registered here: ``imagebind`` (ImageBind-huge, 16 kHz / 0.5 fps) and ``synchformer`` (16 kHz / 25 fps),
see :mod:`spatialgen.metrics.scorers`; ``tiny_imagebind`` and ``tiny_sync`` (small random towers built on
``spatialgen.encoders``' tiny encoder, for tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spatialgen.metrics.base import ClipMeanMetric, attach_module
from spatialgen.metrics.embedders.registry import create_embedder
from spatialgen.metrics.functional.multimodal import DESYNC_GRID, desync, imagebind_score
from spatialgen.registry import Registry

__all__ = ["AV_SCORERS", "DeSync", "ImageBindScore", "TinyAVScorer", "create_av_scorer", "register_av_scorer"]

AV_SCORERS: Registry[Callable[..., nn.Module]] = Registry("audio-visual scorer")


def register_av_scorer(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register ``factory(**kwargs) -> scorer`` (see the module doc for the scorer protocol)."""
    AV_SCORERS.register(name, factory)


def create_av_scorer(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered audio-visual scorer in eval mode."""
    return AV_SCORERS.get(name)(**kwargs).eval()


class TinyAVScorer(nn.Module):
    """Tiny random towers: the ``tiny`` visual encoder and the ``tiny`` audio embedder, projected to a
    shared space; also an offset head over ``n_offsets`` classes for DeSync. For tests only; always seeded
    random (``pretrained`` is accepted for a uniform factory signature and ignored, like ``tiny`` embedders)."""

    sample_rate, video_fps = 16000, 8.0

    def __init__(
        self,
        dim: int = 16,
        n_offsets: int = DESYNC_GRID[2],
        windows: int = 2,
        seed: int = 0,
        pretrained: bool | str = False,
    ) -> None:
        super().__init__()
        from spatialgen.encoders import create_encoder  # lazy: timm is heavy, only the towers need it

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.video = create_encoder("tiny", pretrained=False, embed_dim=dim, input_size=(32, 32))
            self.audio = create_embedder("tiny", pretrained=False, embed_dim=dim, seed=seed)
            self.head = nn.Linear(2 * dim, n_offsets)
        self.windows = windows

    @torch.no_grad()
    def embed_video(self, frames: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` -> ``[B, D]`` (mean over frames)."""
        return self.video(frames).global_features.mean(1)

    @torch.no_grad()
    def embed_audio(self, audio: Tensor) -> Tensor:
        """``[B, C, T]`` -> ``[B, D]`` from the first channel (ImageBind uses channel 0 too)."""
        return self.audio(audio[:, 0]).embeddings.mean(1)

    @torch.no_grad()
    def offset_logits(self, frames: Tensor, audio: Tensor) -> Tensor:
        """``[B, windows, n_offsets]``: the same joint head on ``windows`` equal time splits."""
        t_v, t_a = frames.shape[1] // self.windows, audio.shape[-1] // self.windows
        out = []
        for w in range(self.windows):
            v = self.embed_video(frames[:, w * t_v : (w + 1) * t_v])
            a = self.embed_audio(audio[..., w * t_a : (w + 1) * t_a])
            out.append(self.head(torch.cat((v, a), -1)))
        return torch.stack(out, 1)


register_av_scorer("tiny_imagebind", TinyAVScorer)
register_av_scorer("tiny_sync", TinyAVScorer)


def _imagebind(**kwargs: Any) -> nn.Module:
    from spatialgen.metrics.scorers.imagebind import imagebind_scorer  # lazy: large module, rarely needed

    return imagebind_scorer(**kwargs)


def _synchformer(**kwargs: Any) -> nn.Module:
    from spatialgen.metrics.scorers.synchformer import synchformer_scorer

    return synchformer_scorer(**kwargs)


register_av_scorer("imagebind", _imagebind)
register_av_scorer("synchformer", _synchformer)


class _AVMetric(ClipMeanMetric):
    def __init__(self, scorer: str | nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        attach_module(self, "scorer", create_av_scorer(scorer) if isinstance(scorer, str) else scorer)

    def _scorer(self, device: torch.device) -> nn.Module:
        return self.scorer.to(device)


class ImageBindScore(_AVMetric):
    """Mean cosine between the scorer's audio and video embeddings (×100 in papers; here raw)."""

    higher_is_better = True
    plot_lower_bound, plot_upper_bound = -1.0, 1.0

    def __init__(self, scorer: str | nn.Module = "tiny_imagebind", **kwargs: Any) -> None:
        super().__init__(scorer, **kwargs)

    def scores(self, audio: Tensor, frames: Tensor) -> Tensor:
        """Per-clip cosine ``[B]`` of predicted audio ``[B, C, T]`` with its video ``[B, T, 3, H, W]``."""
        s = self._scorer(audio.device)
        return imagebind_score(s.embed_audio(audio), s.embed_video(frames))


class DeSync(_AVMetric):
    """Mean absolute audio-visual offset (seconds) predicted by a Synchformer-style scorer."""

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(self, scorer: str | nn.Module = "tiny_sync", **kwargs: Any) -> None:
        super().__init__(scorer, **kwargs)

    def scores(self, audio: Tensor, frames: Tensor) -> Tensor:
        """Per-clip DeSync ``[B]`` of predicted audio with the ground-truth video frames."""
        return desync(self._scorer(audio.device).offset_logits(frames, audio))
