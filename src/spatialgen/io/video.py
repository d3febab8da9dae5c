"""Video in: probe, streaming frame decode at a requested frame rate, audio-track decode (PyAV).

Frame sampling rule (used by :func:`iter_video_frames` and :func:`read_video`): output frame ``k``
stands for the interval ``[start + k/fps, start + (k+1)/fps)`` and shows the source frame that is on
screen at the interval's centre ``t_k = start + (k + 0.5)/fps``, i.e. the last source frame whose
presentation time is ``<= t_k``. At the source frame rate this returns every frame exactly once
(no rounding ties); at lower rates it is nearest-neighbour subsampling without drift. The number
of output frames is ``floor(d * fps)``, at least 1 (a video shorter than one output frame, e.g. a single
frame, gives that frame), with ``d`` the requested duration clipped to the video end. Times are measured
from the first frame of the video stream.

Truncated files (e.g. an interrupted download whose index still lists the missing frames): the probe
demuxes the packets once (no decoding; cached per file, size and mtime) and reports the duration the
data actually covers, with ``truncated=True`` and the header's ``stated_duration``; decoding stops at
the first undecodable packet after at least one frame and holds the last good frame.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from spatialgen.errors import MediaError
from spatialgen.io.audio import resample_audio

__all__ = ["VideoInfo", "iter_video_frames", "probe_video", "read_audio_track", "read_video"]


@dataclass(frozen=True)
class VideoInfo:
    """Summary of a video file: first video stream, plus the first audio stream if any."""

    duration: float
    fps: float
    width: int
    height: int
    n_frames: int
    has_audio: bool
    audio_channels: int | None
    audio_sample_rate: int | None
    truncated: bool = False  # the data end before the duration the header states
    stated_duration: float | None = None  # the header's duration when truncated


def open_media(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a media file for reading; a missing, unreadable or corrupt file raises :class:`MediaError`."""
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found")
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    try:
        return av.open(str(p), mode="r")
    except av.FFmpegError as e:
        raise MediaError(p, f"unreadable or unsupported media file ({_reason(e)})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(path, "has no video stream")
    return container.streams.video[0]


def _stream_start(stream: av.stream.Stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _info(container: av.container.InputContainer, path: Path) -> VideoInfo:
    vs = _video_stream(container, path)
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    if not rate or rate <= 0:
        raise MediaError(path, "video stream has no frame rate")
    fps = float(rate)
    if vs.duration is not None and vs.time_base is not None:
        duration = float(vs.duration * vs.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    elif vs.frames:
        duration = vs.frames / fps
    else:
        raise MediaError(path, "video stream has no duration")
    if vs.width <= 0 or vs.height <= 0:
        raise MediaError(path, f"video stream has invalid size {vs.width}x{vs.height}")
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        duration=duration,
        fps=fps,
        width=int(vs.width),
        height=int(vs.height),
        n_frames=int(vs.frames) if vs.frames else round(duration * fps),
        has_audio=audio is not None,
        audio_channels=int(audio.codec_context.channels) if audio is not None else None,
        audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
    )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read duration (s), frame rate, size and audio layout of a video file without decoding it.

    The duration is what the video packets cover (see the module docstring on truncated files).
    """
    p = Path(path)
    try:
        stat = p.stat()
    except OSError:
        stat = None
    if stat is None or not p.is_file():
        with open_media(p) as container:  # raises the missing / not-a-file error
            return _info(container, p)
    return _probe_cached(str(p.resolve()), stat.st_size, stat.st_mtime_ns, str(p))


@functools.lru_cache(maxsize=64)
def _probe_cached(resolved: str, size: int, mtime_ns: int, shown: str) -> VideoInfo:
    p = Path(shown)
    with open_media(p) as container:
        info = _info(container, p)
        vs = _video_stream(container, p)
        t0 = _stream_start(vs)
        end, count = None, 0
        try:
            for packet in container.demux(vs):
                if packet.pts is None or packet.time_base is None:  # the demuxer's flush packet
                    continue
                stop = float((packet.pts + (packet.duration or 0)) * packet.time_base) - t0
                end = stop if end is None else max(end, stop)
                count += 1
        except av.FFmpegError:
            pass  # the readable data end here
    if end is None or end <= 0:
        raise MediaError(p, "video stream holds no readable packets (empty or truncated file)")
    # VFR streams can state a last-frame duration of 0, hence the slack of two frames or 0.1 s.
    if info.duration - end > max(2.0 / info.fps, 0.1):
        return VideoInfo(
            duration=end,
            fps=info.fps,
            width=info.width,
            height=info.height,
            n_frames=min(info.n_frames, count),
            has_audio=info.has_audio,
            audio_channels=info.audio_channels,
            audio_sample_rate=info.audio_sample_rate,
            truncated=True,
            stated_duration=info.duration,
        )
    return info


def _frame_count(info: VideoInfo, path: Path, fps: float, start: float, duration: float | None) -> int:
    available = info.duration - start
    if available <= 0:
        raise MediaError(path, f"start={start:g} s is past the end of the video ({info.duration:g} s)")
    span = available if duration is None else min(duration, available)
    return max(1, math.floor(span * fps + 1e-6))


def _check_args(
    fps: float | None, size: tuple[int, int] | None, start: float, duration: float | None
) -> None:
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise ValueError(f"size must be (height, width) with positive entries, got {size}")
    if start < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start}, duration={duration}")


def iter_video_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
) -> Iterator[torch.Tensor]:
    """Decode frames one at a time at ``fps`` as uint8 RGB tensors ``[3, H, W]``.

    Streams through the file (seeks to ``start``; holds one decoded frame), so memory does not grow
    with the video length. The sampling rule is in the module docstring.

    Args:
        path: any video PyAV/FFmpeg can demux.
        fps: output frame rate; ``None`` keeps the stream's own rate.
        size: output ``(height, width)``; resized by FFmpeg's swscale (area filter). ``None`` keeps it.
        start: first output time in seconds.
        duration: seconds to decode from ``start``; ``None``: to the end.
    """
    _check_args(fps, size, start, duration)
    p = Path(path)
    info = probe_video(p)  # errors surface here, not at the first next()
    rate = float(fps) if fps is not None else info.fps
    n_out = _frame_count(info, p, rate, start, duration)
    return _decode(p, info, rate, n_out, size, start)


def _decode(
    p: Path, info: VideoInfo, rate: float, n_out: int, size: tuple[int, int] | None, start: float
) -> Iterator[torch.Tensor]:
    with open_media(p) as container:
        vs = _video_stream(container, p)
        vs.thread_type = "AUTO"
        t0 = _stream_start(vs)
        height, width = size if size is not None else (info.height, info.width)
        if start > 0:
            try:
                container.seek(round((start + t0) / vs.time_base), stream=vs, backward=True)
            except av.FFmpegError:
                container.seek(0)  # unseekable input: decode from the beginning instead

        def convert(frame: av.VideoFrame) -> torch.Tensor:
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
            return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()

        k = 0
        prev: av.VideoFrame | None = None
        prev_rgb: torch.Tensor | None = None
        try:
            for i, frame in enumerate(container.decode(vs)):
                t = (frame.time - t0) if frame.time is not None else i / info.fps
                # Every target before this frame's start shows the previous frame (or this one, if
                # it is the first decoded frame).
                # (1 µs slack: a frame starting exactly at t_k counts as on screen despite rounding.)
                while k < n_out and t > start + (k + 0.5) / rate + 1e-6:
                    if prev_rgb is None:
                        prev_rgb = convert(prev if prev is not None else frame)
                    yield prev_rgb.clone()
                    k += 1
                if k >= n_out:
                    return
                prev, prev_rgb = frame, None
        except av.FFmpegError as e:
            if prev is None:
                raise MediaError(p, f"corrupt video stream ({_reason(e)})") from None
            # Truncated data: what decoded is kept and the last good frame holds (module docstring).
        if prev is None:
            raise MediaError(p, "video stream holds no decodable frames")
        # The last frame stays on screen until the stream ends.
        last = prev_rgb if prev_rgb is not None else convert(prev)
        for _ in range(k, n_out):
            yield last.clone()


def read_video(
    path: str | os.PathLike[str],
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, float]:
    """Decode a clip as ``(frames uint8 [T, 3, H, W], fps)``; see :func:`iter_video_frames`."""
    if fps is None:
        fps = probe_video(path).fps
    frames = list(iter_video_frames(path, fps, size=size, start=start, duration=duration))
    return torch.stack(frames), float(fps)


def read_audio_track(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    channels: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream of a media file as ``([channels, samples], sample_rate)``.

    Channels keep the stream's order (e.g. AmbiX W, Y, Z, X as written by
    :func:`spatialgen.io.mux.mux_audio`). The decoder's trailing codec padding is cut to the
    stream's stated duration. ``sample_rate`` resamples (polyphase) when it differs from the
    stream's; ``channels`` checks the channel count.
    """
    p = Path(path)
    with open_media(p) as container:
        if not container.streams.audio:
            raise MediaError(p, "has no audio stream")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate)
        n_ch = int(stream.codec_context.channels)
        if channels is not None and n_ch != channels:
            raise MediaError(p, f"audio stream has {n_ch} channels, expected {channels}")
        planar = av.AudioResampler(format="fltp")  # same layout and rate; only the sample format
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in planar.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in planar.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as e:
            raise MediaError(p, f"corrupt audio stream ({_reason(e)})") from None
        stated = (
            round(float(stream.duration * stream.time_base) * sr)
            if stream.duration is not None and stream.time_base is not None
            else None
        )
    if not chunks:
        raise MediaError(p, "audio stream holds no samples")
    data = np.concatenate(chunks, axis=1)
    if stated is not None and 0 < stated < data.shape[1]:
        data = data[:, :stated]
    if not np.isfinite(data).all():
        raise MediaError(p, "audio stream decodes to NaN or infinite samples")
    audio = torch.from_numpy(np.ascontiguousarray(data)).to(torch.float64)
    if sample_rate is not None and sample_rate != sr:
        audio = resample_audio(audio, sr, int(sample_rate))
        sr = int(sample_rate)
    return audio.to(dtype), sr


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(text).strip().splitlines()[0]
