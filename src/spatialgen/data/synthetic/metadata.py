"""On-disk layout and metadata schema shared by the synthetic generator and the real-dataset adapters.

Schema version :data:`SCHEMA_VERSION` (an integer stored in every file; readers accept versions up to
their own and reject newer ones with a clear error).

Dataset layout (any writer — synthetic scenes, YT-Ambigen, BiAudio-style builder — produces this)::

    ROOT/
      manifest.json           {"schema_version", "dataset", "split_ratios", "config", "clips": [entry...]}
      manifest.csv            the same clip list: clip_id,split,path,duration,labels (labels ';'-joined)
      <clip_id>/
        meta.json             ClipMeta (below)
        equirect.mp4          360° video, equirectangular (+azimuth = left of the centre column)
        foa_world.wav         world-frame FOA, AmbiX [W, Y, Z, X] SN3D
        video.mp4             perspective view along the camera (silent)
        foa.wav               camera-frame FOA (world FOA rotated by Rᵀ per sample), AmbiX
        binaural.wav          [L, R] rendered from the camera-frame FOA

A manifest entry is ``{"clip_id", "split" ("train"|"val"|"test"), "path" (clip folder relative to ROOT),
"duration" (s), "labels" (class names of the clip's sources)}``. ``meta.json["files"]`` maps the roles
``equirect, foa_world, video, foa, binaural`` to file names inside the clip folder; a dataset that
lacks a role (e.g. no 360° video) leaves it out.

``meta.json`` (all angles in degrees, frame +x front, +y left, +z up, azimuth anticlockwise)::

    schema_version, clip_id, dataset
    duration (s), sample_rate (Hz), fps, n_frames
    frame_times         [n_frames] centre time of frame k, (k + ½)/fps: the instant the frame shows
    camera_mode         "trajectory" (piecewise-linear keyframes) or "fixed"
    camera_keyframes    {"time": [K] s, "yaw_deg": [K], "pitch_deg": [K], "roll_deg": [K]}; between
                        keyframes the pose is linear in the angles, held outside; audio uses it per sample
    camera              {"yaw_deg", "pitch_deg", "roll_deg"}: [n_frames] pose at each frame centre,
                        R = Rz(yaw)·Ry(−pitch)·Rx(roll); yaw is continuous (not wrapped to ±180)
    view                {"hfov_deg", "size": [h, w]} of the perspective video
    equirect_size       [H, W] of the 360° video, or null
    foa_format          "ambix"
    binaural_hrir       HRIR set name used for binaural.wav, or null
    files               {role: file name}
    sources             list of SourceTrack (may be empty when the truth is unknown, e.g. real data):
        id, label (class name), visible (has a visual object; false = off-screen distractor),
        shape, colour [r, g, b], size_deg (angular radius), band_hz [lo, hi] (null if not applicable),
        per frame ([n_frames] each):
        world_az_deg, world_el_deg     direction in the world frame (azimuth in (−180, 180])
        camera_az_deg, camera_el_deg   direction in the camera frame (Rᵀ u)
        row, col                       perspective pixel-centre coordinates (null behind the camera)
        on_screen                      the direction projects inside the perspective image
        equirect_row, equirect_col     pixel-centre coordinates in the 360° frame
        activity                       fraction of the frame interval [k/fps, (k+1)/fps) the source sounds
    extra               free-form provenance (generator config, seed, reverb parameters, gain ...)
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from spatialgen.errors import MediaError
from spatialgen.io.audio import atomic_output

__all__ = [
    "CAMERA_MODES",
    "FILE_ROLES",
    "MANIFEST_CSV",
    "MANIFEST_JSON",
    "META_FILE",
    "SCHEMA_VERSION",
    "SPLITS",
    "ClipMeta",
    "Manifest",
    "ManifestEntry",
    "SourceTrack",
    "assign_splits",
    "dumps_json",
    "read_manifest",
    "read_meta",
    "rounded",
    "write_manifest",
    "write_meta",
]

SCHEMA_VERSION = 1
META_FILE = "meta.json"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
SPLITS = ("train", "val", "test")
CAMERA_MODES = ("trajectory", "fixed")
#: role -> default file name inside a clip folder
FILE_ROLES = {
    "equirect": "equirect.mp4",
    "foa_world": "foa_world.wav",
    "video": "video.mp4",
    "foa": "foa.wav",
    "binaural": "binaural.wav",
}
_PER_FRAME_SOURCE = (
    "world_az_deg",
    "world_el_deg",
    "camera_az_deg",
    "camera_el_deg",
    "row",
    "col",
    "on_screen",
    "equirect_row",
    "equirect_col",
    "activity",
)
_POSE_KEYS = ("yaw_deg", "pitch_deg", "roll_deg")


def rounded(values: Any, digits: int) -> list[Any]:
    """A float sequence as a JSON-ready list rounded to ``digits``; NaN becomes None (JSON has no NaN)."""
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel().tolist():
        out.append(None if math.isnan(v) else round(v, digits))
    return out


@dataclass
class SourceTrack:
    """One sound source of a clip and its per-frame ground truth (see the module docstring)."""

    id: int
    label: str
    visible: bool
    world_az_deg: list[float]
    world_el_deg: list[float]
    camera_az_deg: list[float]
    camera_el_deg: list[float]
    row: list[float | None]
    col: list[float | None]
    on_screen: list[bool]
    equirect_row: list[float]
    equirect_col: list[float]
    activity: list[float]
    shape: str | None = None
    colour: list[int] | None = None
    size_deg: float | None = None
    band_hz: list[float] | None = None


@dataclass
class ClipMeta:
    """Per-clip metadata (``meta.json``): rates, camera pose per frame, sources, files."""

    clip_id: str
    dataset: str
    duration: float
    sample_rate: int
    fps: float
    n_frames: int
    frame_times: list[float]
    camera_mode: str
    camera_keyframes: dict[str, list[float]]
    camera: dict[str, list[float]]
    view: dict[str, Any]
    files: dict[str, str]
    sources: list[SourceTrack] = field(default_factory=list)
    equirect_size: list[int] | None = None
    foa_format: str = "ambix"
    binaural_hrir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``meta.json`` content)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipMeta:
        """Build and validate from a ``meta.json`` dict; problems raise one-line ``ValueError``s."""
        if not isinstance(data, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"metadata: schema_version must be a positive integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"metadata: schema_version {version} is newer than this spatialgen supports ({SCHEMA_VERSION}); "
                "upgrade spatialgen"
            )
        _require(
            data,
            [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING],
            "metadata",
        )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"metadata: unknown keys {unknown}")
        kwargs = dict(data)
        sources = kwargs.get("sources", [])
        if not isinstance(sources, list):
            raise ValueError("metadata: sources must be a list")
        kwargs["sources"] = [_source_from_dict(s, i) for i, s in enumerate(sources)]
        meta = cls(**kwargs)
        meta.validate()
        return meta

    def validate(self) -> None:
        """Check internal consistency (lengths, modes, pose keys); raises a one-line ``ValueError``."""
        if self.n_frames < 0 or len(self.frame_times) != self.n_frames:
            raise ValueError(
                f"metadata: frame_times has {len(self.frame_times)} entries, n_frames is {self.n_frames}"
            )
        if self.camera_mode not in CAMERA_MODES:
            raise ValueError(f"metadata: camera_mode must be one of {CAMERA_MODES}, got {self.camera_mode!r}")
        if not (self.sample_rate > 0 and self.fps > 0 and self.duration > 0):
            raise ValueError("metadata: sample_rate, fps and duration must be positive")
        _require(self.camera_keyframes, ["time", *_POSE_KEYS], "metadata camera_keyframes")
        n_keys = len(self.camera_keyframes["time"])
        if n_keys < 1 or any(len(self.camera_keyframes[k]) != n_keys for k in _POSE_KEYS):
            raise ValueError("metadata: camera_keyframes lists must be non-empty and of equal length")
        _require(self.camera, list(_POSE_KEYS), "metadata camera")
        for key in _POSE_KEYS:
            if len(self.camera[key]) != self.n_frames:
                raise ValueError(
                    f"metadata: camera.{key} has {len(self.camera[key])} entries, expected {self.n_frames}"
                )
        _require(self.view, ["hfov_deg", "size"], "metadata view")
        if not isinstance(self.files, dict) or not all(isinstance(v, str) for v in self.files.values()):
            raise ValueError("metadata: files must map roles to file names")
        for src in self.sources:
            for key in _PER_FRAME_SOURCE:
                if len(getattr(src, key)) != self.n_frames:
                    raise ValueError(
                        f"metadata: source {src.id} {key} has {len(getattr(src, key))} entries, expected {self.n_frames}"
                    )

    def path(self, clip_dir: str | os.PathLike[str], role: str) -> Path:
        """Path of the file for ``role`` (e.g. ``"foa"``) inside ``clip_dir``; a missing role raises."""
        if role not in self.files:
            raise MediaError(
                Path(clip_dir), f"clip {self.clip_id} has no {role!r} file (has {sorted(self.files)})"
            )
        return Path(clip_dir) / self.files[role]


def _require(data: dict[str, Any], keys: list[str], what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{what}: missing keys {missing}")


def _source_from_dict(data: Any, index: int) -> SourceTrack:
    if not isinstance(data, dict):
        raise ValueError(f"metadata: sources[{index}] must be an object")
    required = [f.name for f in fields(SourceTrack) if f.default is MISSING]
    _require(data, required, f"metadata sources[{index}]")
    unknown = sorted(set(data) - {f.name for f in fields(SourceTrack)})
    if unknown:
        raise ValueError(f"metadata: sources[{index}] has unknown keys {unknown}")
    return SourceTrack(**data)


def dumps_json(data: Any, depth: int = 2, indent: str = "") -> str:
    """JSON text with the first ``depth`` levels of objects and lists of objects on separate lines and
    everything deeper (e.g. per-frame arrays) on one line: readable yet compact. NaN is rejected."""

    def compact(value: Any) -> str:
        return json.dumps(value, allow_nan=False, separators=(", ", ": "))

    inner = indent + " "
    if depth > 0 and isinstance(data, dict) and data:
        items = [
            f"{inner}{json.dumps(str(k))}: {dumps_json(v, depth - 1, inner).strip()}" for k, v in data.items()
        ]
        text = "{\n" + ",\n".join(items) + "\n" + indent + "}"
    elif depth > 0 and isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        text = (
            "[\n"
            + ",\n".join(inner + dumps_json(v, depth, inner).strip() for v in data)
            + "\n"
            + indent
            + "]"
        )
    else:
        text = compact(data)
    return text + "\n" if not indent else text


def write_meta(clip_dir: str | os.PathLike[str], meta: ClipMeta) -> Path:
    """Validate ``meta`` and write it atomically to ``clip_dir/meta.json``."""
    meta.validate()
    target = Path(clip_dir) / META_FILE
    with atomic_output(target) as tmp:
        tmp.write_text(dumps_json(meta.to_dict()))
    return target


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MediaError(path, f"not valid JSON ({str(e).splitlines()[0]})") from None


def read_meta(path: str | os.PathLike[str]) -> ClipMeta:
    """Read ``meta.json`` (a clip folder or the file itself); a missing/invalid file raises ``MediaError``."""
    p = Path(path)
    p = p / META_FILE if p.is_dir() else p
    try:
        return ClipMeta.from_dict(_load_json(p))
    except (TypeError, ValueError) as e:
        if isinstance(e, MediaError):
            raise
        raise MediaError(p, str(e).splitlines()[0]) from None


@dataclass
class ManifestEntry:
    """One clip of a dataset: id, split, folder (relative to the root), duration, source labels."""

    clip_id: str
    split: str
    path: str
    duration: float
    labels: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """Dataset-level clip list with splits (``manifest.json`` / ``manifest.csv``)."""

    dataset: str
    clips: list[ManifestEntry]
    split_ratios: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def split(self, name: str) -> list[ManifestEntry]:
        """Entries of split ``name`` (``train``, ``val`` or ``test``), in manifest order."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return [c for c in self.clips if c.split == name]


def assign_splits(n_clips: int, seed: int, ratios: dict[str, float]) -> list[str]:
    """Seeded split labels for clips ``0..n_clips-1``: exact counts ``round(n·ratio)`` for val and test.

    The rest is train. The same ``(n_clips, seed, ratios)`` always gives the same assignment.
    """
    if (
        set(ratios) != set(SPLITS)
        or any(r < 0 for r in ratios.values())
        or abs(sum(ratios.values()) - 1) > 1e-9
    ):
        raise ValueError(f"split ratios must give train/val/test fractions >= 0 summing to 1, got {ratios}")
    n_val = round(n_clips * ratios["val"])
    n_test = min(round(n_clips * ratios["test"]), n_clips - n_val)
    order = np.random.default_rng([seed, 0x5A17]).permutation(n_clips)
    labels = ["train"] * n_clips
    for i in order[:n_val]:
        labels[i] = "val"
    for i in order[n_val : n_val + n_test]:
        labels[i] = "test"
    return labels


def write_manifest(root: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``root/manifest.json`` and ``root/manifest.csv`` atomically; returns the JSON path."""
    ids = [c.clip_id for c in manifest.clips]
    if len(set(ids)) != len(ids):
        raise ValueError("manifest: clip ids must be unique")
    bad = sorted({c.split for c in manifest.clips} - set(SPLITS))
    if bad:
        raise ValueError(f"manifest: unknown splits {bad}; use {SPLITS}")
    root = Path(root)
    target = root / MANIFEST_JSON
    with atomic_output(target) as tmp:
        tmp.write_text(dumps_json(asdict(manifest)))
    with atomic_output(root / MANIFEST_CSV) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip_id", "split", "path", "duration", "labels"])
        for c in manifest.clips:
            writer.writerow([c.clip_id, c.split, c.path, c.duration, ";".join(c.labels)])
    return target


def read_manifest(root: str | os.PathLike[str]) -> Manifest:
    """Read ``root/manifest.json`` (or the file itself); problems raise :class:`MediaError`."""
    p = Path(root)
    p = p / MANIFEST_JSON if p.is_dir() else p
    data = _load_json(p)
    try:
        if not isinstance(data, dict):
            raise ValueError("manifest must be a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise ValueError(
                f"unsupported manifest schema_version {version!r} (this spatialgen reads <= {SCHEMA_VERSION})"
            )
        _require(data, ["dataset", "clips"], "manifest")
        clips = [ManifestEntry(**c) for c in data["clips"]]
        manifest = Manifest(**{**data, "clips": clips})
    except (TypeError, ValueError) as e:
        raise MediaError(p, str(e).splitlines()[0]) from None
    bad = sorted({c.split for c in manifest.clips} - set(SPLITS))
    if bad:
        raise MediaError(p, f"unknown splits {bad}; expected {SPLITS}")
    return manifest
