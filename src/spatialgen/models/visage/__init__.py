"""ViSAGe (ICLR 2025): video -> FOA via a BART-style encoder-decoder over DAC tokens.

``ViSAGe(get_config("visage_small"))`` builds a network; ``generate(model, visual, energy_map, direction)``
samples codes ``[B, C, Q, F]`` with batched classifier-free guidance; ``codes_to_audio`` decodes them;
``load_official`` reads the released checkpoint; ``init_foa_from_mono`` starts stage 2 from stage 1.
"""

from spatialgen.models.visage.config import VISAGE_CONFIGS, ViSAGeConfig, get_config, list_configs
from spatialgen.models.visage.convert import config_from_official, convert_official, load_official
from spatialgen.models.visage.decoder import DecodingState, StreamHeads, ViSAGeDecoder
from spatialgen.models.visage.encoder import ViSAGeEncoder
from spatialgen.models.visage.generation import codes_to_audio, generate, guidance_branches, sample_logits
from spatialgen.models.visage.init import init_foa_from_mono
from spatialgen.models.visage.model import ViSAGe, ViSAGeOutput, stream_cross_entropy
from spatialgen.models.visage.patterns import (
    PATTERNS,
    CodePattern,
    create_pattern,
    delay_pattern,
    flat_pattern,
    visage_pattern,
)

__all__ = [
    "PATTERNS",
    "VISAGE_CONFIGS",
    "CodePattern",
    "DecodingState",
    "StreamHeads",
    "ViSAGe",
    "ViSAGeConfig",
    "ViSAGeDecoder",
    "ViSAGeEncoder",
    "ViSAGeOutput",
    "codes_to_audio",
    "config_from_official",
    "convert_official",
    "create_pattern",
    "delay_pattern",
    "flat_pattern",
    "generate",
    "get_config",
    "guidance_branches",
    "init_foa_from_mono",
    "list_configs",
    "load_official",
    "sample_logits",
    "stream_cross_entropy",
    "visage_pattern",
]
