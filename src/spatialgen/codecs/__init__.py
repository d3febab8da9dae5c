"""Audio codecs: discrete DAC tokens and continuous latents behind one interface and one registry.

``create_codec(name, pretrained=...)`` builds an entry; ``list_codecs()`` lists them:
``stft`` (analytic, exact inverse), ``dac_44khz`` / ``dac_24khz`` / ``dac_16khz`` (official DAC),
``dac_tiny`` (tests) and ``dac_synthetic`` (trained by the project's recipe). ``import dac`` happens
only when a DAC codec is built.
"""

from spatialgen.codecs.base import AudioCodec, DiscreteAudioCodec
from spatialgen.codecs.registry import CODECS, create_codec, list_codecs, register_codec
from spatialgen.codecs.stft import STFTCodec

from spatialgen.codecs.dac_codec import (  # isort: skip  (registers the DAC entries)
    DAC_CONFIGS,
    DACCodec,
    dac_weights_cache_path,
    dac_weights_url,
    load_dac_codec,
    save_dac_codec,
)

__all__ = [
    "CODECS",
    "DAC_CONFIGS",
    "AudioCodec",
    "DACCodec",
    "DiscreteAudioCodec",
    "STFTCodec",
    "create_codec",
    "dac_weights_cache_path",
    "dac_weights_url",
    "list_codecs",
    "load_dac_codec",
    "register_codec",
    "save_dac_codec",
]
