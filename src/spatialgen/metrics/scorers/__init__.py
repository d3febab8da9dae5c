"""Official audio-visual scorers: ImageBind-huge (IB-score) and Synchformer (DeSync).

Registered in :data:`spatialgen.metrics.multimodal.AV_SCORERS` as ``imagebind`` and ``synchformer``;
``create_av_scorer("imagebind", pretrained=True)`` loads the official checkpoints (converted).
"""

from spatialgen.metrics.scorers.imagebind import (
    IMAGEBIND_URL,
    ImageBindConfig,
    ImageBindScorer,
    convert_imagebind_state_dict,
    imagebind_scorer,
)
from spatialgen.metrics.scorers.synchformer import (
    SyncHead,
    SynchformerAudio,
    SynchformerAudioConfig,
    SynchformerScorer,
    SynchformerScorerConfig,
    convert_synchformer_full_state_dict,
    synchformer_scorer,
)

__all__ = [
    "IMAGEBIND_URL",
    "ImageBindConfig",
    "ImageBindScorer",
    "SyncHead",
    "SynchformerAudio",
    "SynchformerAudioConfig",
    "SynchformerScorer",
    "SynchformerScorerConfig",
    "convert_imagebind_state_dict",
    "convert_synchformer_full_state_dict",
    "imagebind_scorer",
    "synchformer_scorer",
]
