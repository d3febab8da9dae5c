"""Batch helpers of :class:`~spatialgen.training.visaudio.ViSAudioModule`: ear layout, equal lengths, and the
clips and codec mode the latent normaliser is fitted with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["as_binaural", "in_order", "posterior_mean", "require_full"]


def as_binaural(x: Tensor, what: str) -> Tensor:
    """``[B, C, ...]`` with C = 2 as is, C = 1 duplicated to identical L = R (mono pretraining)."""
    if x.shape[1] == 2:
        return x
    if x.shape[1] == 1:
        return torch.cat((x, x), dim=1)
    raise ValueError(
        f"ViSAudio trains on binaural [L, R] (or mono, duplicated) {what}; got {x.shape[1]} channels. "
        "Set data.format to 'binaural' or 'mono'."
    )


def require_full(batch: Mapping[str, Any], key: str) -> None:
    mask = batch.get(key)
    if isinstance(mask, Tensor) and not bool(mask.all()):
        raise ValueError(
            f"ViSAudio needs equal-length clips in a batch ({key} has padding); set data.clip_seconds"
        )


@contextlib.contextmanager
def posterior_mean(codec: nn.Module) -> Iterator[None]:
    """Within the block a posterior-sampling codec (``sample_posterior``, MMAudio's VAE) encodes to the mean."""
    sampling = getattr(codec, "sample_posterior", None)
    if sampling:
        codec.sample_posterior = False
    try:
        yield
    finally:
        if sampling:
            codec.sample_posterior = sampling


def in_order(loader: Any) -> Any:
    """The training clips in dataset order, for the normaliser: a separate unshuffled loader over the same
    map-style dataset, so fitting neither depends on the shuffle nor advances the training loader (whose
    position is part of a resumable checkpoint). Streams (iterable datasets) are read as they come."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None or isinstance(dataset, torch.utils.data.IterableDataset):
        return loader
    return torch.utils.data.DataLoader(
        dataset, batch_size=loader.batch_size, shuffle=False, collate_fn=loader.collate_fn, num_workers=0
    )
