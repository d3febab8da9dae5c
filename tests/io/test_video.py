"""spatialgen.io.video: probing, frame-rate conversion picks the right frames, resizing, errors."""

from __future__ import annotations

import math
import types
from fractions import Fraction

import numpy as np
import pytest
import torch

from spatialgen.errors import MediaError
from spatialgen.io import iter_video_frames, probe_video, read_audio_track, read_video, write_video

FPS, SECONDS, H, W = 25, 2.0, 48, 64
N_SRC = int(FPS * SECONDS)
BITS = 6  # frame index in binary: 8 px wide white/black columns, MSB on the left


def _frames(n: int = N_SRC) -> torch.Tensor:
    frames = torch.zeros(n, 3, H, W, dtype=torch.uint8)
    for i in range(n):
        for b in range(BITS):
            if (i >> (BITS - 1 - b)) & 1:
                frames[i, :, :, 8 * b : 8 * b + 8] = 255
    frames[:, 1, :, 56:] = 128  # a constant grey patch, checks the colour path
    return frames


def _decode_index(frame: torch.Tensor) -> int:
    """Read the binary index back from a (possibly resized) frame [3, h, w]."""
    w = frame.shape[-1]
    idx = 0
    for b in range(BITS):
        lo, hi = round(w * (8 * b + 2) / W), round(w * (8 * b + 6) / W)  # the column's centre half
        idx = 2 * idx + int(frame[:, :, lo:hi].float().mean() > 128)
    return idx


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "index.mp4"
    write_video(path, _frames(), FPS)
    return path


def test_probe(video):
    info = probe_video(video)
    assert (info.width, info.height, info.n_frames) == (W, H, N_SRC)
    assert info.fps == FPS and info.duration == pytest.approx(SECONDS, abs=1e-6)
    assert not info.has_audio and info.audio_channels is None and info.audio_sample_rate is None


def test_native_rate_returns_every_frame(video):
    frames, fps = read_video(video, FPS)
    assert fps == FPS and frames.shape == (N_SRC, 3, H, W) and frames.dtype == torch.uint8
    assert [_decode_index(f) for f in frames] == list(range(N_SRC))
    # H.264 at crf 18 keeps flat regions close to the source.
    assert (frames.float() - _frames().float()).abs().mean() < 3.0


@pytest.mark.parametrize("fps", [8, 10, 12.5])
def test_lower_rate_picks_frame_on_screen_at_interval_centre(video, fps):
    frames, _ = read_video(video, fps)
    n = math.floor(SECONDS * fps)
    assert frames.shape[0] == n
    # Source frame on screen at t_k, in exact arithmetic (12.5 fps puts t_k on frame boundaries).
    expected = [math.floor(Fraction(2 * k + 1, 2) / Fraction(str(fps)) * FPS) for k in range(n)]
    assert [_decode_index(f) for f in frames] == expected


def test_higher_rate_repeats_frames(video):
    frames, _ = read_video(video, 50, duration=0.4)
    assert [_decode_index(f) for f in frames] == [k // 2 for k in range(20)]


def test_start_duration_and_resize(video):
    frames, _ = read_video(video, 10, size=(24, 32), start=0.5, duration=1.0)
    assert frames.shape == (10, 3, 24, 32)
    expected = [math.floor((0.5 + (k + 0.5) / 10) * FPS) for k in range(10)]
    assert [_decode_index(f) for f in frames] == expected
    # The grey patch survives resizing by the area filter: columns 28.. of the half-size frame.
    assert frames[:, 1, :, 29:].float().mean() == pytest.approx(128, abs=4)
    assert frames[:, 0, :, 29:].float().mean() == pytest.approx(0, abs=4)


def test_duration_clipped_at_end(video):
    frames, _ = read_video(video, 8, start=1.5, duration=5.0)
    assert frames.shape[0] == 4
    assert [_decode_index(f) for f in frames] == [math.floor((1.5 + (k + 0.5) / 8) * FPS) for k in range(4)]


def test_iterator_streams(video):
    it = iter_video_frames(video, 5)
    assert isinstance(it, types.GeneratorType)
    first = next(it)
    assert first.shape == (3, H, W) and _decode_index(first) == 2  # floor(0.1 * 25)
    assert len(list(it)) == 9
    it.close()


def test_argument_errors(video, tmp_path):
    with pytest.raises(MediaError, match="past the end"):
        read_video(video, 8, start=3.0)
    with pytest.raises(ValueError, match="fps must be positive"):
        read_video(video, 0)
    with pytest.raises(ValueError, match="size must be"):
        read_video(video, 8, size=(0, 10))
    with pytest.raises(MediaError, match="has no audio stream"):
        read_audio_track(video)


def test_corrupt_truncated_and_missing(video, tmp_path):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # moov is at the end: lost
    for bad in (noise, truncated):
        with pytest.raises(MediaError) as err:
            probe_video(bad)
        assert str(bad) in str(err.value)
        with pytest.raises(MediaError):
            read_video(bad, 8)
    with pytest.raises(MediaError, match="file not found"):
        iter_video_frames(tmp_path / "missing.mp4", 8)  # raised eagerly, before iteration


def test_audio_only_file_has_no_video(tmp_path):
    from spatialgen.io import write_audio

    write_audio(tmp_path / "a.wav", torch.zeros(1, 1600), 16000)
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(tmp_path / "a.wav")


def test_single_frame_video_gives_its_frame(tmp_path):
    path = write_video(tmp_path / "one.mp4", _frames(1)[:, :, :, :], FPS)
    assert probe_video(path).n_frames == 1
    for fps, duration in ((4.0, 2.0), (4.0, None), (FPS, None)):
        clip, _ = read_video(path, fps, duration=duration)
        assert clip.shape == (1, 3, H, W) and _decode_index(clip[0]) == 0


def _write_faststart(path, frames: torch.Tensor, fps: int):
    """An MP4 whose index (moov) comes first, as downloads and cameras write them."""
    import av

    from spatialgen.io.mux import best_video_codec

    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream(best_video_codec(), rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        # no B-frames: decode order is display order, so a cut loses only the frames past it (x264's
        # B-frame decisions vary between encodes and would make the lost tail vary too)
        stream.codec_context.options = {"bf": "0"}
        for img in frames.permute(0, 2, 3, 1).numpy():
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_truncated_file_decodes_the_frames_it_holds(tmp_path):
    noise = torch.randint(-40, 41, (60, 3, H, W), generator=torch.Generator().manual_seed(0))
    frames = (_frames(60).int() + noise).clamp(0, 255).to(torch.uint8)  # every frame costs bytes
    full = _write_faststart(tmp_path / "full.mp4", frames, FPS)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # the index still lists 60 frames
    info = probe_video(cut)
    assert info.truncated and info.stated_duration == pytest.approx(60 / FPS)
    assert 0.2 < info.duration < 60 / FPS - 0.2 and info.n_frames < 60
    assert not probe_video(full).truncated and probe_video(full).duration == pytest.approx(60 / FPS)
    clip, _ = read_video(cut, FPS)
    assert clip.shape[0] == math.floor(info.duration * FPS + 1e-6)
    idx = [_decode_index(f) for f in clip]
    good = len(idx) - 3  # the last packet or two may be cut mid-way: the last good frame holds
    assert idx[:good] == list(range(good)) and idx == sorted(idx)
    late, _ = read_video(cut, 8, start=info.duration / 2)  # a window inside the data, found by seeking
    assert late.shape[0] >= 1
    with pytest.raises(MediaError, match="past the end"):
        read_video(cut, 8, start=info.duration + 0.1)
