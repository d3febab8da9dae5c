"""Name -> audio-embedder registry: ``create_embedder("vggish", pretrained=True)``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from spatialgen.metrics.embedders.base import AudioEmbedder
from spatialgen.metrics.embedders.panns import CNN14_16K, CNN14_32K, Cnn14, Cnn14Config
from spatialgen.metrics.embedders.passt import PASST_URL, PaSST
from spatialgen.metrics.embedders.tiny import TinyEmbedder
from spatialgen.metrics.embedders.vggish import VGGISH_URL, VGGish
from spatialgen.registry import Registry

__all__ = ["EMBEDDERS", "create_embedder", "list_embedders", "register_embedder"]

EmbedderFactory = Callable[..., AudioEmbedder]
EMBEDDERS: Registry[tuple[EmbedderFactory, str | None, str | None]] = Registry("audio embedder")


def register_embedder(
    name: str, factory: EmbedderFactory, url: str | None = None, cache_name: str | None = None
) -> None:
    """Register ``factory(**kwargs) -> AudioEmbedder`` with the URL of its official weights (or None)."""
    EMBEDDERS.register(name, (factory, url, cache_name))


def list_embedders(pattern: str = "*") -> list[str]:
    """Sorted registered embedder names matching the glob ``pattern``."""
    return EMBEDDERS.list(pattern)


def create_embedder(name: str, pretrained: bool | str | os.PathLike = False, **kwargs) -> AudioEmbedder:
    """Build a registered audio embedder in eval mode.

    Args:
        name: "panns_cnn14" (32 kHz), "panns_cnn14_16k" (av-benchmark), "vggish", "tiny".
        pretrained: False (the default, as in every spatialgen registry and timm) keeps random weights;
            True downloads / reuses the official weights (cached under ``$SPATIALGEN_CACHE`` or
            ``~/.cache/spatialgen/weights``; offline, a :class:`~spatialgen.weights.WeightsNotFoundError`
            says which file to fetch and where to put it); a path or ``hf://``/URL spec loads that file
            (official key layouts are converted). "tiny" is always seeded.
        **kwargs: constructor options of the embedder.
    """
    factory, url, cache_name = EMBEDDERS.get(name)
    if pretrained is False or (pretrained is True and url is None):
        return factory(**kwargs).eval()
    from spatialgen.weights import default_cache_dir, resolve_weights

    # resolve the file before building, so a missing download fails fast

    if pretrained is True:
        cache = default_cache_dir() / cache_name if cache_name else None
        path = resolve_weights(url, cache_path=cache, what=f"{name} embedder weights")
    else:
        text = os.fspath(pretrained)
        remote = text.startswith(("hf://", "http://", "https://"))
        path = resolve_weights(text, what=f"{name} embedder weights") if remote else Path(text)
    return factory(**kwargs).load_weights(path).eval()


def _cnn14(config: Cnn14Config) -> EmbedderFactory:
    return lambda **kw: Cnn14(config, **kw)


register_embedder("panns_cnn14", _cnn14(CNN14_32K), CNN14_32K.url, CNN14_32K.weights_file)
register_embedder("panns_cnn14_16k", _cnn14(CNN14_16K), CNN14_16K.url, CNN14_16K.weights_file)
register_embedder("vggish", VGGish, VGGISH_URL, None)
register_embedder("passt", PaSST, PASST_URL, "passt-s-f128-p16-s10-ap.476-swa.pt")
register_embedder("tiny", TinyEmbedder)
