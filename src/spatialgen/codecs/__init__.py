"""Audio codecs: discrete DAC tokens and continuous latents behind one interface and one registry.

``create_codec(name, pretrained=...)`` builds an entry; ``list_codecs()`` lists them:
``stft`` (analytic, exact inverse), ``dac_44khz`` / ``dac_24khz`` / ``dac_16khz`` (official DAC),
``dac_tiny`` (tests), ``dac_synthetic`` (trained by the project's recipe) and MMAudio's mel-VAE latent
spaces ``mmaudio_vae_16k`` / ``mmaudio_vae_44k`` (``mmaudio_vae_tiny`` for tests). ``import dac`` happens
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
from spatialgen.codecs.mmaudio_codec import (  # isort: skip  (registers the MMAudio latent-space entries)
    MMAUDIO_CODECS,
    MMAudioVAECodec,
    load_mmaudio_codec,
    sample_posterior,
)

__all__ = [
    "CODECS",
    "DAC_CONFIGS",
    "MMAUDIO_CODECS",
    "AudioCodec",
    "DACCodec",
    "DiscreteAudioCodec",
    "MMAudioVAECodec",
    "STFTCodec",
    "create_codec",
    "dac_weights_cache_path",
    "dac_weights_url",
    "list_codecs",
    "load_dac_codec",
    "load_mmaudio_codec",
    "register_codec",
    "sample_posterior",
    "save_dac_codec",
]
