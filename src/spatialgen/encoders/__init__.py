"""Visual encoders behind one interface and a name registry.

>>> from spatialgen.encoders import create_encoder, list_encoders
>>> enc = create_encoder("clip_vit_b32", pretrained=False)   # doctest: +SKIP
>>> out = enc(frames)  # frames [B, T, 3, H, W] uint8 at enc.fps -> out.global_features [B, T, 512]

Registered: ``clip_vit_b32`` (ViSAGe), ``clip_vit_h14_384`` (MMAudio), ``pe_spatial*`` (Perception
Encoder spatial), ``synchformer`` (MMAudio sync features), ``tiny`` (tests / CPU demo).
Text prompts have their own registry (``spatialgen.encoders.text``: ``clip_text_h14_384``, MMAudio's
CLIP text tower, and ``clip_text_tiny``).
"""

from spatialgen.encoders import synchformer as _synchformer  # noqa: F401  (registers)
from spatialgen.encoders import timm_encoders as _timm_encoders  # noqa: F401  (registers)
from spatialgen.encoders import tiny as _tiny  # noqa: F401  (registers)
from spatialgen.encoders.base import EncoderOutput, VisualEncoder
from spatialgen.encoders.loading import EncoderWeightsError
from spatialgen.encoders.registry import ENCODERS, create_encoder, list_encoders, register_encoder
from spatialgen.encoders.synchformer import SynchformerConfig, SynchformerEncoder
from spatialgen.encoders.synchformer_convert import convert_synchformer_state_dict
from spatialgen.encoders.timm_encoders import TimmImageEncoder
from spatialgen.encoders.tiny import TinyEncoder

__all__ = [
    "ENCODERS",
    "EncoderOutput",
    "EncoderWeightsError",
    "SynchformerConfig",
    "SynchformerEncoder",
    "TimmImageEncoder",
    "TinyEncoder",
    "VisualEncoder",
    "convert_synchformer_state_dict",
    "create_encoder",
    "list_encoders",
    "register_encoder",
]
