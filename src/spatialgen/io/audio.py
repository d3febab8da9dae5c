"""Audio files in and out (WAV / FLAC / OGG via soundfile).

Audio is a tensor ``[channels, samples]``; the sample rate always travels with it. Reading never
converts silently: a wrong channel count or sample rate is an error unless ``resample=True`` asks
for resampling (polyphase, :func:`scipy.signal.resample_poly`). Writes are atomic (temporary file
in the target directory, then :func:`os.replace`), so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from spatialgen.errors import InvalidAudioError, MediaError

__all__ = ["AudioInfo", "atomic_output", "audio_info", "read_audio", "resample_audio", "write_audio"]

_PCM_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file holds, read from its header."""

    sample_rate: int
    channels: int
    n_frames: int
    duration: float
    format: str
    subtype: str


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found")
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    return p


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file (sample rate, channels, length, container format, subtype)."""
    p = _existing_file(path)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise MediaError(p, f"unreadable or unsupported audio file ({_first_line(e)})") from None
    return AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        n_frames=int(info.frames),
        duration=float(info.frames) / float(info.samplerate),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def resample_audio(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``[..., T]`` audio from ``orig_sr`` to ``new_sr`` with a polyphase filter.

    Computed in float64 on the CPU (scipy) and returned with the input's dtype and device. The
    output length is ``ceil(T * new_sr / orig_sr)``.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got orig_sr={orig_sr}, new_sr={new_sr}")
    if orig_sr == new_sr:
        return audio
    g = math.gcd(int(orig_sr), int(new_sr))
    x = audio.detach().to("cpu", torch.float64).numpy()
    y = resample_poly(x, int(new_sr) // g, int(orig_sr) // g, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(y)).to(device=audio.device, dtype=audio.dtype)


def read_audio(
    path: str | os.PathLike[str],
    *,
    channels: int | None = None,
    sample_rate: int | None = None,
    start: float = 0.0,
    duration: float | None = None,
    dtype: torch.dtype = torch.float32,
    resample: bool = False,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as ``([channels, samples], sample_rate)``.

    Args:
        path: WAV, FLAC, OGG or any format libsndfile reads.
        channels: expected channel count; a file with another count raises :class:`MediaError`.
        sample_rate: expected rate. A file at another rate raises unless ``resample=True``, in which
            case it is resampled to ``sample_rate`` (and that rate is returned).
        start: offset in seconds into the file.
        duration: seconds to read from ``start`` (``None``: to the end). Clipped at the end of file.
        dtype: floating dtype of the returned tensor; float64 reads the file without float32 rounding.
        resample: allow resampling to ``sample_rate``.

    Raises:
        MediaError: missing/unreadable file, wrong channel count or rate, an empty selection, or
            non-finite samples.
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    if start < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start}, duration={duration}")
    info = audio_info(path)
    p = Path(path)
    if channels is not None and info.channels != channels:
        raise MediaError(p, f"has {info.channels} audio channels, expected {channels}")
    if sample_rate is not None and info.sample_rate != sample_rate and not resample:
        raise MediaError(
            p,
            f"has sample rate {info.sample_rate} Hz, expected {sample_rate} Hz "
            "(pass resample=True to convert)",
        )
    if info.n_frames == 0:
        raise MediaError(p, "contains no audio samples")
    first = round(start * info.sample_rate)
    if first >= info.n_frames:
        raise MediaError(p, f"start={start:g} s is past the end of the audio ({info.duration:g} s)")
    n = -1 if duration is None else max(1, round(duration * info.sample_rate))
    np_dtype = "float64" if dtype == torch.float64 else "float32"
    try:
        data = sf.read(str(p), start=first, frames=n, dtype=np_dtype, always_2d=True)[0]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise MediaError(p, f"cannot decode audio ({_first_line(e)})") from None
    if data.shape[0] == 0:
        raise MediaError(p, "contains no audio samples")
    if not np.isfinite(data).all():
        raise MediaError(p, "contains NaN or infinite samples")
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    sr = info.sample_rate
    if sample_rate is not None and sr != sample_rate:
        audio = resample_audio(audio.to(torch.float64), sr, sample_rate)
        sr = sample_rate
    return audio.to(dtype), sr


def _as_channels_first(audio: torch.Tensor | np.ndarray, name: str = "audio") -> np.ndarray:
    """Validate audio ``[C, T]`` or ``[T]`` and return a float64 ``[C, T]`` numpy array."""
    x = audio.detach().to("cpu", torch.float64).numpy() if isinstance(audio, torch.Tensor) else audio
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise InvalidAudioError(f"{name} must be [channels, samples] or [samples], got shape {list(x.shape)}")
    c, t = x.shape
    if t == 0:
        raise InvalidAudioError(f"{name} has no samples (shape {list(x.shape)})")
    if c > t:
        raise InvalidAudioError(
            f"{name} has more channels than samples (shape {list(x.shape)}); pass [channels, samples]"
        )
    if not np.isfinite(x).all():
        raise InvalidAudioError(f"{name} contains NaN or infinite values")
    return x


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); move it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise MediaError(target, "output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_audio(
    path: str | os.PathLike[str],
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_16",
    format: str | None = None,
) -> Path:
    """Write ``[C, T]`` (or mono ``[T]``) audio atomically.

    Args:
        path: target file; the container comes from its extension (``.wav``, ``.flac``, ...) unless
            ``format`` names it.
        audio: finite samples, nominal range [-1, 1].
        sample_rate: positive integer rate in Hz.
        subtype: libsndfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``. For integer PCM,
            samples beyond [-1, 1] are clipped with a warning (they cannot be represented).
        format: libsndfile container name (``"WAV"``, ``"FLAC"``); default from the extension.

    Returns:
        The written path.
    """
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    x = _as_channels_first(audio)
    target = Path(path)
    fmt = format or target.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise MediaError(
            target, f"unsupported audio format {fmt!r}; use one of {sorted(sf.available_formats())}"
        )
    if not sf.check_format(fmt, subtype):
        raise MediaError(target, f"format {fmt} cannot store subtype {subtype!r}")
    peak = float(np.abs(x).max())
    if subtype.upper() in _PCM_SUBTYPES and peak > 1.0:
        warnings.warn(
            f"{target}: audio peak {peak:.3f} exceeds 1.0 and is clipped for {subtype}; "
            "normalise it or write subtype='FLOAT'",
            stacklevel=2,
        )
        x = np.clip(x, -1.0, 1.0)
    with atomic_output(target) as tmp:
        try:
            sf.write(str(tmp), x.T, int(sample_rate), subtype=subtype, format=fmt)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise MediaError(target, f"cannot write audio ({_first_line(e)})") from None
    return target


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
