"""Our SA3D box against FFmpeg's own writer (movenc ``mov_write_SA3D_tag``, driven by stream metadata)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from spatialgen.io.mp4_spatial import SpatialAudioMetadata, add_spatial_audio_box, read_spatial_audio_box


def _write_foa(path: Path) -> None:
    """A 4-channel AAC track tagged the way FFmpeg's muxer takes ambisonic metadata."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="quad")
        stream.metadata["SA3D"] = "ambisonic 1"
        x = np.random.default_rng(0).uniform(-0.1, 0.1, (4, 4096)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="quad")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_ffmpeg_sa3d_box_equals_ours_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "ffmpeg.mp4"
    _write_foa(path)
    assert read_spatial_audio_box(path) == SpatialAudioMetadata()  # first order, ACN, SN3D, map 0..3
    before = path.read_bytes()
    add_spatial_audio_box(path)  # replaces FFmpeg's box with ours: nothing may change
    assert path.read_bytes() == before


def test_ffmpeg_writes_no_sa3d_in_mov_so_the_box_writer_stays(tmp_path: Path) -> None:
    path = tmp_path / "ffmpeg.mov"
    _write_foa(path)
    assert read_spatial_audio_box(path) is None  # movenc writes SA3D in MP4 mode only
    add_spatial_audio_box(path)
    assert read_spatial_audio_box(path) == SpatialAudioMetadata()
