"""Media in/out: audio files (soundfile), video decode (PyAV), MP4 muxing with spatial-audio metadata.

Every problem with a file (missing, unreadable, corrupt, wrong layout) raises
:class:`spatialgen.errors.MediaError` naming the file; every write is atomic.
"""

from spatialgen.io.audio import AudioInfo, audio_info, read_audio, resample_audio, write_audio
from spatialgen.io.mp4_spatial import SpatialAudioMetadata, add_spatial_audio_box, read_spatial_audio_box
from spatialgen.io.mux import mux_audio, write_video
from spatialgen.io.video import VideoInfo, iter_video_frames, probe_video, read_audio_track, read_video

__all__ = [
    "AudioInfo",
    "SpatialAudioMetadata",
    "VideoInfo",
    "add_spatial_audio_box",
    "audio_info",
    "iter_video_frames",
    "mux_audio",
    "probe_video",
    "read_audio",
    "read_audio_track",
    "read_spatial_audio_box",
    "read_video",
    "resample_audio",
    "write_audio",
    "write_video",
]
