"""spatialgen.io.mux / mp4_spatial: remuxing keeps the video bit-exact, new audio, SA3D box, length policy."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from spatialgen.errors import InvalidAudioError, MediaError
from spatialgen.io import (
    SpatialAudioMetadata,
    add_spatial_audio_box,
    mux_audio,
    probe_video,
    read_audio_track,
    read_spatial_audio_box,
    read_video,
    write_video,
)

FPS, SECONDS, H, W, SR = 25, 2.0, 48, 64, 16000
AAC_FRAME = 1024 / SR


def _video_frames(n: int = int(FPS * SECONDS)) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (
        torch.randint(0, 256, (n, 3, H // 8, W // 8), generator=g, dtype=torch.uint8)
        .repeat_interleave(8, 2)
        .repeat_interleave(8, 3)
    )


def _tones(channels: int, seconds: float = SECONDS) -> torch.Tensor:
    """One sine per channel at distinct frequencies: channel identity survives AAC."""
    t = torch.arange(round(seconds * SR), dtype=torch.float64) / SR
    return torch.stack([0.3 * torch.sin(2 * torch.pi * (300 + 400 * c) * t) for c in range(channels)])


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("mux") / "silent.mp4"
    write_video(path, _video_frames(), FPS)
    return path


def _video_packets(path) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return vs.codec_context.name, [bytes(p) for p in c.demux(vs) if p.size]


def _walk(buf: bytes, start: int, end: int, depth: int = 0) -> dict[bytes, list[tuple[int, int]]]:
    """Independent MP4 box walker: {type: [(start, end)]}, asserting every child tiles its parent."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        assert size >= 8 and pos + size <= end, f"bad box {kind!r} at {pos}"
        found.setdefault(kind, []).append((pos, pos + size))
        body = pos + 8
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            for k, v in _walk(buf, body, pos + size, depth + 1).items():
                found.setdefault(k, []).extend(v)
        elif kind == b"stsd":
            for k, v in _walk(buf, body + 8, pos + size, depth + 1).items():
                found.setdefault(k, []).extend(v)
        elif kind == b"mp4a":  # v0 SoundSampleEntry: 28 bytes of fields, then child boxes
            for k, v in _walk(buf, body + 28, pos + size, depth + 1).items():
                found.setdefault(k, []).extend(v)
        pos += size
    assert pos == end
    return found


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


@pytest.mark.parametrize(("layout", "channels"), [("stereo", 2), ("foa", 4)])
def test_mux_keeps_video_and_adds_audio(tmp_path, silent_video, layout, channels):
    audio = _tones(channels)
    out = mux_audio(silent_video, audio, SR, tmp_path / "out.mp4", layout=layout)
    codec_in, packets_in = _video_packets(silent_video)
    codec_out, packets_out = _video_packets(out)
    assert codec_out == codec_in == "h264"
    assert packets_out == packets_in  # same count and identical bytes: copied, not re-encoded

    info = probe_video(out)
    assert info.has_audio and info.audio_channels == channels and info.audio_sample_rate == SR
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        assert abs(float(a.duration * a.time_base) - SECONDS) <= AAC_FRAME

    decoded, sr = read_audio_track(out, channels=channels)
    assert sr == SR and abs(decoded.shape[1] - audio.shape[1]) <= 1024
    n = min(decoded.shape[1], audio.shape[1])
    corr = _correlation(decoded[:, 2000 : n - 2000].double().numpy(), audio[:, 2000 : n - 2000].numpy())
    assert np.all(np.diag(corr) > 0.98), corr  # aligned (no codec delay left) and channel order kept
    assert np.all(np.abs(corr - np.diag(np.diag(corr))) < 0.05)

    sa3d = read_spatial_audio_box(out)
    if layout == "stereo":
        assert sa3d is None
        return
    assert sa3d == SpatialAudioMetadata(ambisonic_order=1, channel_map=(0, 1, 2, 3))
    # Independent parse: SA3D is the mp4a child after esds, bytes per the Spatial Audio RFC.
    buf = out.read_bytes()
    boxes = _walk(buf, 0, len(buf))
    (sa_start, sa_end), (esds_start, _), (mp4a_start, mp4a_end) = (
        boxes[b"SA3D"][0],
        boxes[b"esds"][0],
        boxes[b"mp4a"][0],
    )
    assert mp4a_start < esds_start < sa_start and sa_end == mp4a_end
    assert buf[sa_start:sa_end] == struct.pack(">I4sBBIBBI4I", 36, b"SA3D", 0, 0, 1, 0, 0, 4, 0, 1, 2, 3)
    assert boxes[b"moov"][0][0] > boxes[b"mdat"][0][0]  # moov after mdat: chunk offsets untouched


def test_read_audio_track_resamples(tmp_path, silent_video):
    out = mux_audio(silent_video, _tones(2), SR, tmp_path / "o.mp4")
    audio, sr = read_audio_track(out, 8000)
    assert sr == 8000 and abs(audio.shape[1] - 16000) <= 512
    with pytest.raises(MediaError, match="has 2 channels, expected 4"):
        read_audio_track(out, channels=4)


def test_length_policy(tmp_path, silent_video):
    long_audio, short_audio = _tones(2, 2.5), _tones(2, 1.5)
    with pytest.raises(InvalidAudioError, match=r"2\.500 s but the video lasts 2\.000 s.*fit='trim'"):
        mux_audio(silent_video, long_audio, SR, tmp_path / "a.mp4")
    with pytest.raises(InvalidAudioError, match="fit='pad'"):
        mux_audio(silent_video, short_audio, SR, tmp_path / "a.mp4", fit="trim")
    with pytest.raises(InvalidAudioError, match="fit='trim'"):
        mux_audio(silent_video, long_audio, SR, tmp_path / "a.mp4", fit="pad")
    assert not (tmp_path / "a.mp4").exists()

    trimmed, _ = read_audio_track(mux_audio(silent_video, long_audio, SR, tmp_path / "t.mp4", fit="trim"))
    assert abs(trimmed.shape[1] - SECONDS * SR) <= 1024
    padded, _ = read_audio_track(mux_audio(silent_video, short_audio, SR, tmp_path / "p.mp4", fit="pad"))
    assert abs(padded.shape[1] - SECONDS * SR) <= 1024
    assert padded[:, 26000:].abs().max() < 0.01 < padded[:, 4000:22000].abs().max()  # padded with silence
    # Within one video frame (40 ms) is accepted as is.
    mux_audio(silent_video, _tones(2, SECONDS - 0.03), SR, tmp_path / "ok.mp4")


def test_layout_and_argument_errors(tmp_path, silent_video):
    with pytest.raises(InvalidAudioError, match="layout='foa' needs 4 audio channels, got 2"):
        mux_audio(silent_video, _tones(2), SR, tmp_path / "x.mp4", layout="foa")
    with pytest.raises(ValueError, match="AAC cannot store 12345 Hz"):
        mux_audio(silent_video, _tones(2), 12345, tmp_path / "x.mp4")
    with pytest.raises(MediaError, match=r"output must be \.mp4"):
        mux_audio(silent_video, _tones(2), SR, tmp_path / "x.mkv")
    with pytest.raises(MediaError, match="file not found"):
        mux_audio(tmp_path / "missing.mp4", _tones(2), SR, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="must be even"):
        write_video(tmp_path / "odd.mp4", torch.zeros(2, 3, 47, 64, dtype=torch.uint8), FPS)
    with pytest.raises(ValueError, match="must be uint8"):
        write_video(tmp_path / "f.mp4", torch.zeros(2, 3, 48, 64), FPS)
    with pytest.raises(ValueError, match="not a video encoder"):
        write_video(tmp_path / "c.mp4", torch.zeros(2, 3, 48, 64, dtype=torch.uint8), FPS, codec="nope")


def test_write_video_with_foa_audio(tmp_path):
    frames = _video_frames(25)
    out = write_video(tmp_path / "v.mp4", frames, FPS, _tones(4, 1.0), SR, codec="mpeg4")
    info = probe_video(out)
    assert (info.n_frames, info.audio_channels, info.fps) == (25, 4, FPS)
    assert read_spatial_audio_box(out) == SpatialAudioMetadata()
    decoded, _ = read_video(out, FPS)
    assert (decoded.float() - frames.float()).abs().mean() < 6.0  # mpeg4 fallback, flat 8x8 blocks
    # Remuxing a file that already has audio replaces that audio.
    remuxed = mux_audio(out, _tones(2, 1.0), SR, tmp_path / "r.mp4")
    with av.open(str(remuxed)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"] and c.streams.audio[0].channels == 2


def test_failed_write_leaves_target_untouched(tmp_path, silent_video, monkeypatch):
    import spatialgen.io.mux as mux

    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise RuntimeError("crash while rewriting")

    monkeypatch.setattr(mux, "add_spatial_audio_box", boom)
    with pytest.raises(RuntimeError, match="crash"):
        mux_audio(silent_video, _tones(4), SR, target, layout="foa")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_sa3d_in_faststart_file_shifts_chunk_offsets(tmp_path):
    path = tmp_path / "fast.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("aac", rate=SR, layout="quad")
        x = _tones(4, 0.5).float().numpy()
        for i in range(0, x.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, i : i + 1024]), format="fltp", layout="quad"
            )
            f.sample_rate, f.pts = SR, i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    buf = path.read_bytes()
    boxes = _walk(buf, 0, len(buf))
    assert boxes[b"moov"][0][0] < boxes[b"mdat"][0][0]
    before, _ = read_audio_track(path)

    add_spatial_audio_box(path, SpatialAudioMetadata(channel_map=(0, 3, 1, 2)))
    buf2 = path.read_bytes()
    assert len(buf2) == len(buf) + 36  # 8 header + 12 fields + 4 x u32 map
    assert read_spatial_audio_box(path).channel_map == (0, 3, 1, 2)
    after, _ = read_audio_track(path)
    assert torch.equal(before, after)  # every chunk offset still points at its data

    add_spatial_audio_box(path)  # replacing the box keeps the size
    assert len(path.read_bytes()) == len(buf2) and read_spatial_audio_box(path) == SpatialAudioMetadata()


def test_sa3d_errors(tmp_path, silent_video):
    with pytest.raises(MediaError, match="no audio track"):
        add_spatial_audio_box(silent_video)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x10ftypisom" + b"\xff" * 40)
    with pytest.raises(MediaError, match=r"junk\.mp4: cannot add spatial audio metadata"):
        add_spatial_audio_box(junk)
    with pytest.raises(ValueError, match="needs 4 channel_map entries"):
        SpatialAudioMetadata(channel_map=(0, 1))


def test_late_starting_vfr_video_gives_matching_container_duration(tmp_path):
    """Video timestamps starting at 1.27 s with uneven frame durations (as ffmpeg's setpts writes them)."""
    src = tmp_path / "vfr.mp4"
    times = [0.0, *np.cumsum([0.02] * 40 + [0.2] * 10)]
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round((t + 1.27) * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe_video(src)
    sr = 16000
    dst = mux_audio(src, np.zeros((2, round(info.duration * sr)), np.float32), sr, tmp_path / "o.mp4")
    with av.open(str(dst)) as c:
        streams = [float(s.duration * s.time_base) for s in c.streams]
        assert c.streams.video[0].start_time == 0
        assert c.duration / av.time_base == pytest.approx(max(streams), abs=0.03)
    assert streams[0] == pytest.approx(info.duration, abs=1e-3)
    assert streams[1] == pytest.approx(info.duration, abs=0.03)
