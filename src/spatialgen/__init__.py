"""spatialgen: video to spatial audio (ViSAGe FOA, ViSAudio binaural)."""

from spatialgen.errors import InvalidAudioError, MediaError, SpatialgenError

__version__ = "0.1.0"
__all__ = ["InvalidAudioError", "MediaError", "SpatialgenError", "__version__"]
