"""ViSAudio: binaural audio from video by dual-branch conditional flow matching (arXiv 2512.03036).

Plain ``nn.Module`` parts; the trainer lives in ``spatialgen.training``.
"""

from spatialgen.models.visaudio.conditioning import Conditions, SpacetimeConditioning, flip_patches
from spatialgen.models.visaudio.config import VISAUDIO_CONFIGS, ViSAudioConfig, visaudio_config
from spatialgen.models.visaudio.convert import (
    ConversionReport,
    config_from_mmaudio,
    convert_mmaudio_state_dict,
    load_mmaudio_weights,
)
from spatialgen.models.visaudio.flow import (
    cfg_velocity,
    flow_matching_loss,
    generate,
    interpolate,
    logit_normal_t,
    sample_ode,
    velocity_target,
)
from spatialgen.models.visaudio.latents import BinauralLatentCoder, LatentNormalizer, joint_peak_normalize
from spatialgen.models.visaudio.network import ViSAudioNet
from spatialgen.models.visaudio.pipeline import ViSAudioPipeline

__all__ = [
    "VISAUDIO_CONFIGS",
    "BinauralLatentCoder",
    "Conditions",
    "ConversionReport",
    "LatentNormalizer",
    "SpacetimeConditioning",
    "ViSAudioConfig",
    "ViSAudioNet",
    "ViSAudioPipeline",
    "cfg_velocity",
    "config_from_mmaudio",
    "convert_mmaudio_state_dict",
    "flip_patches",
    "flow_matching_loss",
    "generate",
    "interpolate",
    "joint_peak_normalize",
    "load_mmaudio_weights",
    "logit_normal_t",
    "sample_ode",
    "velocity_target",
    "visaudio_config",
]
