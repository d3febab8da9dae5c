"""Audio embedders for the semantic metrics (FD, KL, IS), behind one interface and a registry.

>>> from spatialgen.metrics.embedders import create_embedder
>>> emb = create_embedder("tiny")                 # doctest: +SKIP
>>> out = emb(wave)          # [N, T] mono at emb.sample_rate -> out.embeddings [N, K, D], out.logits [N, C]

Registered: ``panns_cnn14`` (2048-d + 527 logits, 32 kHz), ``panns_cnn14_16k`` (av-benchmark's 16 kHz
CNN14), ``vggish`` (128-d per 0.96 s, 16 kHz), ``tiny`` (tests).
"""

from spatialgen.metrics.embedders.base import (
    CHANNEL_REDUCTIONS,
    AudioEmbedder,
    EmbedderOutput,
    reduce_channels,
)
from spatialgen.metrics.embedders.panns import CNN14_16K, CNN14_32K, Cnn14, Cnn14Config
from spatialgen.metrics.embedders.registry import (
    EMBEDDERS,
    create_embedder,
    list_embedders,
    register_embedder,
)
from spatialgen.metrics.embedders.tiny import TinyEmbedder
from spatialgen.metrics.embedders.vggish import VGGish

__all__ = [
    "CHANNEL_REDUCTIONS",
    "CNN14_16K",
    "CNN14_32K",
    "EMBEDDERS",
    "AudioEmbedder",
    "Cnn14",
    "Cnn14Config",
    "EmbedderOutput",
    "TinyEmbedder",
    "VGGish",
    "create_embedder",
    "list_embedders",
    "reduce_channels",
    "register_embedder",
]
