"""Codec registry: ``create_codec("dac_44khz", pretrained=True)``, ``list_codecs("dac_*")``.

An entry is a factory ``(pretrained=False, **kwargs) -> AudioCodec``. ``pretrained`` is False (random
init / analytic), True (the entry's official weights) or a weights spec (local path, folder,
``hf://owner/repo/file[@rev]``, URL) resolved through :func:`spatialgen.weights.resolve_weights`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from spatialgen.codecs.base import AudioCodec
from spatialgen.registry import Registry

__all__ = ["CODECS", "create_codec", "list_codecs", "register_codec"]

CodecFactory = Callable[..., AudioCodec]

CODECS: Registry[CodecFactory] = Registry("codec")


def register_codec(name: str, *, overwrite: bool = False) -> Callable[[CodecFactory], CodecFactory]:
    """Decorator registering a codec factory ``(pretrained=False, **kwargs) -> AudioCodec`` as ``name``."""
    return CODECS.register(name, overwrite=overwrite)


def create_codec(name: str, pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> AudioCodec:
    """Build the codec ``name``; unknown names raise ``UnknownNameError`` with close matches.

    Args:
        name: a registered name (see :func:`list_codecs`).
        pretrained: False (random init; the default, as in timm), True (official weights) or a
            weights spec (path / folder / ``hf://`` / URL).
        kwargs: entry-specific options (e.g. ``n_quantizers``, ``frozen``, STFT ``n_fft``).
    """
    codec = CODECS.get(name)(pretrained=pretrained, **kwargs)
    codec.name = name
    return codec


def list_codecs(pattern: str = "*") -> list[str]:
    """Sorted registered codec names matching the shell-style glob ``pattern``."""
    return CODECS.list(pattern)


@register_codec("stft_vq")
def _stft_vq_factory(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> AudioCodec:
    """Gain–shape residual-VQ STFT codec fitted by k-means (:mod:`spatialgen.codecs.stft_vq`)."""
    from spatialgen.codecs.stft_vq import create_stft_vq_codec  # lazy: keeps `python -m ...stft_vq` clean

    return create_stft_vq_codec(pretrained, **kwargs)
