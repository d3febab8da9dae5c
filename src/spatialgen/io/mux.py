"""Video out: encode frames (+ audio) to a file, and put new spatial audio next to an existing video.

Audio is AAC (FFmpeg's native encoder, 96 kbit/s per channel). Channel layouts: mono, stereo
(binaural ``[L, R]``) and ``"foa"`` — four channels in AmbiX order ``[W, Y, Z, X]`` stored as an
AAC ``quad`` layout, whose two channel pairs keep the input order in the bitstream, plus the
``SA3D`` spatial-audio box YouTube reads (first order, ACN, SN3D, channel map 0..3).
MP4 files are written with ``moov`` after the media data (no faststart).

Length policy (``fit``): the audio must last as long as the video, within one video frame.
``fit="error"`` (default) raises otherwise; ``fit="trim"`` cuts longer audio to the video's
duration; ``fit="pad"`` appends silence to shorter audio. Nothing is trimmed or padded silently.
All outputs are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch

from spatialgen.errors import InvalidAudioError, MediaError
from spatialgen.io.audio import _as_channels_first, atomic_output
from spatialgen.io.mp4_spatial import SpatialAudioMetadata, add_spatial_audio_box
from spatialgen.io.video import _reason, _video_stream, open_media, probe_video

__all__ = ["AUDIO_LAYOUTS", "best_video_codec", "mux_audio", "write_video"]

Layout = Literal["mono", "stereo", "foa"]
Fit = Literal["error", "trim", "pad"]

#: layout name -> (channel count, FFmpeg channel layout)
AUDIO_LAYOUTS: dict[str, tuple[int, str]] = {"mono": (1, "mono"), "stereo": (2, "stereo"), "foa": (4, "quad")}
_MP4_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_AAC_BITRATE_PER_CHANNEL = 96_000
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def best_video_codec() -> str:
    """``"libx264"`` when PyAV's FFmpeg has it, else ``"mpeg4"``."""
    try:
        av.codec.Codec("libx264", "w")
    except av.FFmpegError:
        return "mpeg4"
    return "libx264"


def _container_format(path: Path) -> str:
    fmt = _MP4_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MediaError(path, f"output must be .mp4, .m4v or .mov, got {path.suffix or 'no extension'!r}")
    return fmt


def _resolve_layout(layout: str | None, channels: int) -> str:
    if layout is None:
        by_count = {n: name for name, (n, _) in AUDIO_LAYOUTS.items()}
        if channels not in by_count:
            raise InvalidAudioError(f"audio has {channels} channels; supported are 1, 2 or 4 (FOA)")
        return by_count[channels]
    if layout not in AUDIO_LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(AUDIO_LAYOUTS)}, got {layout!r}")
    if AUDIO_LAYOUTS[layout][0] != channels:
        raise InvalidAudioError(
            f"layout={layout!r} needs {AUDIO_LAYOUTS[layout][0]} audio channels, got {channels}"
        )
    return layout


def _fit_audio(x: np.ndarray, sample_rate: int, video_duration: float, fps: float, fit: str) -> np.ndarray:
    """Apply the length policy (module docstring) to ``[C, T]`` audio."""
    if fit not in ("error", "trim", "pad"):
        raise ValueError(f"fit must be 'error', 'trim' or 'pad', got {fit!r}")
    target = round(video_duration * sample_rate)
    tol = max(1, round(sample_rate / fps))
    n = x.shape[1]
    if n > target + tol and fit == "trim":
        return x[:, :target]
    if n < target - tol and fit == "pad":
        return np.pad(x, ((0, 0), (0, target - n)))
    if abs(n - target) > tol:
        fix = "fit='trim'" if n > target else "fit='pad'"
        raise InvalidAudioError(
            f"audio lasts {n / sample_rate:.3f} s but the video lasts {video_duration:.3f} s; "
            f"pass {fix} or fix the audio length"
        )
    return x


def _prepare_audio(
    audio: torch.Tensor | np.ndarray, sample_rate: int | None, layout: str | None
) -> tuple[np.ndarray, int, str]:
    if sample_rate is None:
        raise ValueError("sample_rate is required with audio")
    if sample_rate not in _AAC_RATES:
        raise ValueError(f"AAC cannot store {sample_rate} Hz; use one of {list(_AAC_RATES)} (resample first)")
    x = _as_channels_first(audio)
    return x, int(sample_rate), _resolve_layout(layout, x.shape[0])


def _encode_audio(
    container: av.container.OutputContainer, x: np.ndarray, sample_rate: int, layout: str
) -> list[av.Packet]:
    """Add an AAC stream to ``container`` and return all its packets (encoded up front)."""
    channels, ff_layout = AUDIO_LAYOUTS[layout]
    stream = container.add_stream("aac", rate=sample_rate, layout=ff_layout)
    stream.bit_rate = _AAC_BITRATE_PER_CHANNEL * channels
    peak = float(np.abs(x).max())
    if peak > 1.0:
        warnings.warn(f"audio peak {peak:.3f} exceeds 1.0 and is clipped for AAC; normalise it", stacklevel=3)
    data = np.clip(x, -1.0, 1.0).astype(np.float32)
    packets = []
    block = 1024  # one AAC frame
    for i in range(0, data.shape[1], block):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data[:, i : i + block]), format="fltp", layout=ff_layout
        )
        frame.sample_rate = sample_rate
        frame.pts = i
        frame.time_base = Fraction(1, sample_rate)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _packet_time(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None else 0.0


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor | np.ndarray,
    fps: float,
    audio: torch.Tensor | np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    layout: Layout | None = None,
    fit: Fit = "error",
    codec: str | None = None,
    crf: int = 18,
    threads: int | None = None,
) -> Path:
    """Encode uint8 RGB frames ``[T, 3, H, W]`` (and optional audio ``[C, T]``) to an MP4/MOV.

    Args:
        path: ``.mp4``/``.m4v``/``.mov`` target, written atomically.
        frames: uint8 RGB; H and W must be even (yuv420p halves the chroma resolution).
        fps: frame rate (float or exact, e.g. ``Fraction(30000, 1001)``).
        audio: optional ``[C, T]`` float audio in [-1, 1] (clipped), C = 1, 2 or 4.
        sample_rate: audio rate in Hz (an AAC rate such as 16000, 44100, 48000).
        layout: ``"mono"``, ``"stereo"`` or ``"foa"``; default from the channel count. ``"foa"`` also
            writes the ``SA3D`` box.
        fit: audio/video length policy (module docstring).
        codec: video encoder; default :func:`best_video_codec`.
        crf: libx264 constant rate factor (lower = better; 18 is visually lossless).
        threads: encoder threads; ``None`` lets FFmpeg choose from the CPU count. x264's frame threads
            change the bitstream, so pass a fixed count (e.g. 1) for files identical across machines.

    libx264 runs without macroblock-tree rate control (``mbtree=0``): with it, encoding the same frames
    twice in one process gave different files (decoded pixels up to 29 levels apart at crf 18, even
    single-threaded), so equal frames now always give equal bytes for one FFmpeg/x264 build.
    """
    target = Path(path)
    fmt = _container_format(target)
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    v = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
    if v.dtype != torch.uint8:
        raise ValueError(
            f"frames must be uint8, got {v.dtype}; convert with (x * 255).round().to(torch.uint8)"
        )
    if v.ndim != 4 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"frames must be [T>0, 3, H, W], got shape {list(v.shape)}")
    height, width = int(v.shape[2]), int(v.shape[3])
    if height % 2 or width % 2:
        raise ValueError(f"frame size {height}x{width} must be even for yuv420p; crop or pad by one pixel")
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    prepared = None
    if audio is not None:
        x, sr, lay = _prepare_audio(audio, sample_rate, layout)
        prepared = (_fit_audio(x, sr, v.shape[0] / float(rate), float(rate), fit), sr, lay)
    rgb = v.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    codec = codec or best_video_codec()
    try:
        av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        raise ValueError(
            f"codec {codec!r} is not a video encoder in PyAV's FFmpeg; try 'libx264' or 'mpeg4'"
        ) from None
    with atomic_output(target) as tmp:
        try:
            with av.open(str(tmp), mode="w", format=fmt) as out:
                vs = out.add_stream(codec, rate=rate)
                vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
                if threads is not None:
                    vs.codec_context.thread_count = int(threads)
                if codec == "libx264":
                    vs.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
                else:
                    vs.bit_rate = max(1_000_000, width * height * 8)
                audio_packets = _encode_audio(out, *prepared) if prepared is not None else []
                a = 0
                for i, img in enumerate(rgb):
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts = i
                    frame.time_base = 1 / rate
                    for packet in vs.encode(frame):
                        while a < len(audio_packets) and _packet_time(audio_packets[a]) <= _packet_time(
                            packet
                        ):
                            out.mux(audio_packets[a])
                            a += 1
                        out.mux(packet)
                out.mux(vs.encode(None))
                out.mux(audio_packets[a:])
        except av.FFmpegError as e:
            raise MediaError(target, f"cannot encode video ({_reason(e)})") from None
        if prepared is not None and prepared[2] == "foa":
            add_spatial_audio_box(tmp, SpatialAudioMetadata())
    return target


def mux_audio(
    video_in: str | os.PathLike[str],
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    out: str | os.PathLike[str],
    *,
    layout: Layout = "stereo",
    fit: Fit = "error",
) -> Path:
    """Write ``out`` with the video stream of ``video_in`` (packets copied, not re-encoded) plus new audio.

    Any audio already in ``video_in`` is dropped. ``layout="stereo"`` expects binaural ``[L, R]``;
    ``layout="foa"`` expects AmbiX ``[W, Y, Z, X]`` and adds the ``SA3D`` box. See the module
    docstring for the codec and the length policy ``fit``.
    """
    src, target = Path(video_in), Path(out)
    fmt = _container_format(target)
    if src.resolve() == target.resolve():
        raise MediaError(target, "output must differ from the input video")
    x, sr, lay = _prepare_audio(audio, sample_rate, layout)
    info = probe_video(src)  # the duration the packets cover (a truncated file's real length)
    x = _fit_audio(x, sr, info.duration, info.fps, fit)
    with open_media(src) as inp:
        vin = _video_stream(inp, src)
        # Copied video starts at 0 like the new audio: a stream starting late (common in VFR files)
        # would otherwise make the container last start + duration while both streams last duration.
        shift = vin.start_time or 0
        with atomic_output(target) as tmp:
            try:
                with av.open(str(tmp), mode="w", format=fmt) as dst:
                    vout = dst.add_stream_from_template(vin)
                    audio_packets = _encode_audio(dst, x, sr, lay)
                    a = 0
                    for packet in inp.demux(vin):
                        if packet.dts is None:  # demuxer's end-of-stream flush packet
                            continue
                        while a < len(audio_packets) and _packet_time(audio_packets[a]) <= _packet_time(
                            packet
                        ):
                            dst.mux(audio_packets[a])
                            a += 1
                        packet.pts = None if packet.pts is None else packet.pts - shift
                        packet.dts -= shift
                        packet.stream = vout
                        dst.mux(packet)
                    dst.mux(audio_packets[a:])
            except av.FFmpegError as e:
                raise MediaError(src, f"cannot remux video ({_reason(e)})") from None
            if lay == "foa":
                add_spatial_audio_box(tmp, SpatialAudioMetadata())
    return target
