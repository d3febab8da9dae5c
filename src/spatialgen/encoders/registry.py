"""Name -> encoder factory registry: ``create_encoder("clip_vit_b32", pretrained=False)``."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from spatialgen.encoders.base import VisualEncoder
from spatialgen.encoders.loading import RECIPE_PREFIX
from spatialgen.registry import Registry

__all__ = ["ENCODERS", "EncoderFactory", "create_encoder", "list_encoders", "register_encoder"]

#: A factory builds an encoder; ``pretrained=True`` loads its published weights.
EncoderFactory = Callable[..., VisualEncoder]

ENCODERS: Registry[EncoderFactory] = Registry("encoder")


def register_encoder(name: str, factory: EncoderFactory | None = None, *, overwrite: bool = False):
    """Register ``factory(pretrained: bool, **kwargs) -> VisualEncoder`` under ``name``.

    Without ``factory`` it works as a decorator.
    """
    return ENCODERS.register(name, factory, overwrite=overwrite)


def list_encoders(pattern: str = "*") -> list[str]:
    """Sorted names of registered encoders matching the glob ``pattern``."""
    return ENCODERS.list(pattern)


def create_encoder(
    name: str,
    pretrained: bool | str | os.PathLike = False,
    *,
    device: str | torch.device | None = None,
    **kwargs,
) -> VisualEncoder:
    """Build a registered encoder.

    Args:
        name: a registered name (see :func:`list_encoders`); unknown names get close-match suggestions.
        pretrained: False (the default, as in timm and :func:`~spatialgen.codecs.create_codec`) builds
            random weights; True loads the published weights (Hugging Face Hub / official URL, cached; a clear
            :class:`~spatialgen.weights.WeightsNotFoundError` when offline and not cached), a path (or an ``hf://owner/repo/file`` / URL spec, fetched and cached)
            loads a ``.safetensors``/``.pth`` file strictly (official key layouts are converted);
            ``recipe:NAME`` loads the file recipe NAME exports, made by ``spatialgen fit`` on first use
            (:mod:`spatialgen.encoders.recipe_weights`).
        device: build directly on this device (``"meta"`` builds without allocating memory).
        **kwargs: encoder options (``frozen``, ``chunk_size``, ``patch_tokens``, size options).
    """
    factory = ENCODERS.get(name)
    path = None
    if not isinstance(pretrained, bool):
        text = os.fspath(pretrained)
        if text.startswith(("hf://", "http://", "https://")):
            from spatialgen.weights import resolve_weights

            path = resolve_weights(text, what=f"weights for encoder {name!r}")
        elif not text.startswith(RECIPE_PREFIX):
            path = Path(text)
    with torch.device(device) if device is not None else nullcontext():
        encoder = factory(pretrained=pretrained is True, **kwargs)
        if path is None and not isinstance(pretrained, bool):
            # recipe:NAME, the file that recipe exports, made on first use; resolved after the encoder is
            # built so its options are checked before a training run starts
            from spatialgen.encoders.recipe_weights import ensure_recipe_weights

            ref = os.fspath(pretrained)[len(RECIPE_PREFIX) :]
            path = ensure_recipe_weights(ref, what=f"weights for encoder {name!r}")
        if path is not None:
            encoder.load_weights(path)
    return encoder
