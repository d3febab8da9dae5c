"""Google Spatial Audio (``SA3D``) metadata in MP4/MOV files: write and read it back.

The box (Spatial Audio RFC, google/spatial-media ``docs/spatial-audio-rfc.md``) sits in the sound
sample entry of the ambisonic track (``moov/trak/mdia/minf/stbl/stsd/mp4a``) and holds::

    u8 version (0) | u8 ambisonic_type (0 = periphonic) | u32 ambisonic_order
    u8 channel_ordering (0 = ACN) | u8 normalization (0 = SN3D) | u32 num_channels | u32 channel_map[n]

YouTube reads it to treat a 4-channel track as first-order AmbiX. The rewriter only touches
``moov``: it inserts the box, fixes the sizes of every enclosing box, and, when ``moov`` lies
before media data (a "faststart" file), shifts the ``stco``/``co64`` chunk offsets by the growth.

Why not FFmpeg's own SA3D writer (checked with PyAV 18.1.0, libavformat 62.12.102): an ambisonic
channel layout on the encoder (``layout="ambisonic 1"``) is refused by FFmpeg's AAC, Opus and ALAC
encoders (``avcodec_open2`` EINVAL), and PCM in MOV accepts it but gets no box; the
``AV_PKT_DATA_SPHERICAL``/``AV_FRAME_DATA_SPHERICAL`` side data describe *video* projection
(``sv3d``), not audio. What works is the audio stream metadata ``SA3D = "ambisonic 1"``, read by
FFmpeg's ``libavformat/movenc.c`` (``mov_write_SA3D_tag``): it writes a box byte-identical to this
module's (``tests/io/test_mp4_spatial_ffmpeg.py``), but only in MP4 mode, not for ``.mov``, which
``spatialgen.io.mux`` also writes. So this writer stays, one path for every container, and FFmpeg's
box is the test oracle for it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spatialgen.errors import MediaError
from spatialgen.io.audio import atomic_output

__all__ = ["SpatialAudioMetadata", "add_spatial_audio_box", "read_spatial_audio_box"]

_SA3D = b"SA3D"
_CONTAINERS = (b"trak", b"mdia", b"minf", b"stbl")


@dataclass(frozen=True)
class SpatialAudioMetadata:
    """Fields of an ``SA3D`` box; the defaults describe first-order AmbiX (ACN, SN3D, W Y Z X)."""

    ambisonic_order: int = 1
    channel_map: tuple[int, ...] = (0, 1, 2, 3)
    ambisonic_type: int = 0
    channel_ordering: int = 0
    normalization: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        n = (self.ambisonic_order + 1) ** 2
        if self.ambisonic_order < 0 or len(self.channel_map) != n:
            raise ValueError(
                f"order-{self.ambisonic_order} ambisonics needs {n} channel_map entries, "
                f"got {len(self.channel_map)}"
            )

    def to_box(self) -> bytes:
        """Serialise as a complete ``SA3D`` box (header included)."""
        body = struct.pack(
            ">BBIBBI",
            self.version,
            self.ambisonic_type,
            self.ambisonic_order,
            self.channel_ordering,
            self.normalization,
            len(self.channel_map),
        ) + struct.pack(f">{len(self.channel_map)}I", *self.channel_map)
        return struct.pack(">I4s", 8 + len(body), _SA3D) + body

    @classmethod
    def from_payload(cls, payload: bytes) -> SpatialAudioMetadata:
        """Parse the body of an ``SA3D`` box (everything after its 8-byte header)."""
        if len(payload) < 12:
            raise ValueError(f"SA3D payload is {len(payload)} bytes, need at least 12")
        version, a_type, order, ordering, norm, n = struct.unpack_from(">BBIBBI", payload)
        if len(payload) != 12 + 4 * n:
            raise ValueError(f"SA3D payload is {len(payload)} bytes, expected {12 + 4 * n} for {n} channels")
        cmap = struct.unpack_from(f">{n}I", payload, 12)
        return cls(order, tuple(cmap), a_type, ordering, norm, version)


@dataclass(frozen=True)
class _Box:
    type: bytes
    start: int  # offset of the size field
    header: int  # 8, or 16 with a 64-bit size
    end: int

    @property
    def body(self) -> int:
        return self.start + self.header


def _boxes(buf: bytes | bytearray, start: int, end: int) -> Iterator[_Box]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} at offset {pos} has invalid size {size}")
        yield _Box(kind, pos, header, pos + size)
        pos += size


def _child(buf: bytes | bytearray, parent: _Box, kind: bytes) -> _Box | None:
    return next((b for b in _boxes(buf, parent.body, parent.end) if b.type == kind), None)


def _top_level(f: BinaryIO, file_size: int) -> list[_Box]:
    boxes, pos = [], 0
    while pos + 8 <= file_size:
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", head, 8)[0], 16
        elif size == 0:
            size = file_size - pos
        if size < header or pos + size > file_size:
            raise ValueError(f"top-level box {kind!r} at offset {pos} has invalid size {size}")
        boxes.append(_Box(kind, pos, header, pos + size))
        pos += size
    return boxes


def _audio_sample_entry(moov: bytearray, root: _Box, track: int) -> tuple[list[_Box], _Box]:
    """Return (ancestors from moov down to stsd, sample entry) of the ``track``-th sound track."""
    sound = []
    for trak in (b for b in _boxes(moov, root.body, root.end) if b.type == b"trak"):
        mdia = _child(moov, trak, b"mdia")
        hdlr = _child(moov, mdia, b"hdlr") if mdia else None
        if hdlr is not None and moov[hdlr.body + 8 : hdlr.body + 12] == b"soun":
            sound.append(trak)
    if track >= len(sound):
        raise ValueError(f"no audio track #{track} (file has {len(sound)} audio tracks)")
    chain = [root, sound[track]]
    for kind in (*_CONTAINERS[1:], b"stsd"):
        nxt = _child(moov, chain[-1], kind)
        if nxt is None:
            raise ValueError(f"audio track lacks a {kind.decode()} box")
        chain.append(nxt)
    stsd = chain[-1]
    entries = list(_boxes(moov, stsd.body + 8, stsd.end))  # skip version/flags and entry_count
    if not entries:
        raise ValueError("audio track has an empty stsd")
    return chain, entries[0]


def _entry_children_start(moov: bytearray, entry: _Box) -> int:
    # SoundSampleEntry: 6 reserved + 2 data_reference_index + 20 bytes of v0 sound fields; QuickTime
    # sound description version 1 adds 16 bytes, version 2 adds 36.
    version = struct.unpack_from(">H", moov, entry.body + 8)[0]
    extra = {0: 0, 1: 16, 2: 36}.get(version)
    if extra is None:
        raise ValueError(f"unknown sound sample entry version {version}")
    return entry.body + 28 + extra


def _grow(moov: bytearray, box: _Box, delta: int) -> None:
    size = box.end - box.start + delta
    if box.header == 16:
        struct.pack_into(">Q", moov, box.start + 8, size)
    elif size < 2**32:
        struct.pack_into(">I", moov, box.start, size)
    else:
        raise ValueError(f"box {box.type!r} would exceed 4 GiB with a 32-bit size")


def _shift_chunk_offsets(moov: bytearray, root: _Box, after: int, delta: int) -> None:
    """Add ``delta`` to every chunk offset at or beyond file offset ``after``."""
    for trak in (b for b in _boxes(moov, root.body, root.end) if b.type == b"trak"):
        box: _Box | None = trak
        for kind in _CONTAINERS[1:]:
            box = _child(moov, box, kind) if box is not None else None
        if box is None:
            continue
        for table in _boxes(moov, box.body, box.end):
            if table.type not in (b"stco", b"co64"):
                continue
            fmt, width = (">I", 4) if table.type == b"stco" else (">Q", 8)
            n = struct.unpack_from(">I", moov, table.body + 4)[0]
            for i in range(n):
                at = table.body + 8 + i * width
                off = struct.unpack_from(fmt, moov, at)[0]
                if off >= after:
                    if table.type == b"stco" and off + delta >= 2**32:
                        raise ValueError("chunk offset overflows stco; the file needs co64")
                    struct.pack_into(fmt, moov, at, off + delta)


def _rewrite_moov(moov: bytearray, metadata: SpatialAudioMetadata, track: int) -> int:
    """Put ``metadata`` into ``moov`` (in place); return the change in size."""
    root = next(_boxes(moov, 0, len(moov)))
    chain, entry = _audio_sample_entry(moov, root, track)
    old = next(
        (b for b in _boxes(moov, _entry_children_start(moov, entry), entry.end) if b.type == _SA3D), None
    )
    new = metadata.to_box()
    lo, hi = (old.start, old.end) if old is not None else (entry.end, entry.end)
    delta = len(new) - (hi - lo)
    for box in (*chain, entry):  # every box enclosing the insertion point, read before the splice
        _grow(moov, box, delta)
    moov[lo:hi] = new
    return delta


def add_spatial_audio_box(
    path: str | os.PathLike[str],
    metadata: SpatialAudioMetadata | None = None,
    *,
    track: int = 0,
) -> None:
    """Write (or replace) an ``SA3D`` box in the ``track``-th audio track of an MP4/MOV, atomically.

    Args:
        path: MP4/MOV file, rewritten in place via a temporary copy.
        metadata: box fields; default first-order AmbiX with channel map 0..3.
        track: which audio track, counting from 0.
    """
    p = Path(path)
    metadata = metadata or SpatialAudioMetadata()
    if not p.is_file():
        raise MediaError(p, "file not found")
    try:
        with p.open("rb") as f:
            size = p.stat().st_size
            top = _top_level(f, size)
            moov_box = next((b for b in top if b.type == b"moov"), None)
            if moov_box is None:
                raise ValueError("no moov box (not an MP4/MOV file?)")
            f.seek(moov_box.start)
            moov = bytearray(f.read(moov_box.end - moov_box.start))
        if moov_box.header == 8 and struct.unpack_from(">I", moov)[0] == 0:
            struct.pack_into(">I", moov, 0, len(moov))  # "extends to end of file": make it explicit
        delta = _rewrite_moov(moov, metadata, track)
        if any(b.type == b"mdat" and b.start > moov_box.start for b in top):
            _shift_chunk_offsets(moov, next(_boxes(moov, 0, len(moov))), moov_box.end, delta)
    except (ValueError, struct.error) as e:
        raise MediaError(p, f"cannot add spatial audio metadata: {e}") from None
    with atomic_output(p) as tmp, p.open("rb") as src, tmp.open("wb") as dst:
        _copy_range(src, dst, 0, moov_box.start)
        dst.write(moov)
        _copy_range(src, dst, moov_box.end, size - moov_box.end)


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int) -> None:
    src.seek(start)
    remaining = length
    while remaining > 0:
        chunk = src.read(min(remaining, 1 << 20))
        if not chunk:
            raise MediaError(getattr(src, "name", "?"), "file shrank while it was being rewritten")
        dst.write(chunk)
        remaining -= len(chunk)


def read_spatial_audio_box(path: str | os.PathLike[str], *, track: int = 0) -> SpatialAudioMetadata | None:
    """Return the ``SA3D`` metadata of the ``track``-th audio track, or ``None`` when it has none."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "file not found")
    try:
        with p.open("rb") as f:
            top = _top_level(f, p.stat().st_size)
            moov_box = next((b for b in top if b.type == b"moov"), None)
            if moov_box is None:
                raise ValueError("no moov box (not an MP4/MOV file?)")
            f.seek(moov_box.start)
            moov = bytearray(f.read(moov_box.end - moov_box.start))
        root = _Box(b"moov", 0, moov_box.header, len(moov))
        _, entry = _audio_sample_entry(moov, root, track)
        box = next(
            (b for b in _boxes(moov, _entry_children_start(moov, entry), entry.end) if b.type == _SA3D), None
        )
        return None if box is None else SpatialAudioMetadata.from_payload(bytes(moov[box.body : box.end]))
    except (ValueError, struct.error) as e:
        raise MediaError(p, f"cannot read spatial audio metadata: {e}") from None
