"""BiAudio-style builder: perspective clips along random camera trajectories from 360° video + FOA.

For every input 360° video (equirect) with first-order ambisonics, ``clips_per_video`` clips are cut
and each gets a random piecewise-linear camera trajectory (keyframes every ``keyframe_seconds``: yaw
drifting by at most ``max_yaw_speed_deg``/s, pitch within ±``max_pitch_deg``, roll within
±``max_roll_deg``). Frame ``k`` (time ``(k + ½)/fps``) is the perspective view at the pose of that
instant; the world FOA is rotated into the camera frame per sample along the same trajectory
(:func:`spatialgen.spatial.foa.rotate`) and rendered to binaural with the chosen HRIR set. Output:
the common layout (:mod:`spatialgen.data.synthetic.metadata`) with all five roles.

Inputs (``src``) are either a dataset in the common layout whose clips have ``equirect`` and
``foa_world`` files (e.g. ``spatialgen data synth`` output; its per-frame source ground truth is
carried over into the new camera frame and splits are inherited), or a folder of ``.mp4/.mov/.mkv``
360° videos whose FOA is a sibling ``<stem>.wav``/``.flac`` or the video's own 4-channel audio track.
With known sources, the first keyframe looks at a random visible source (±``aim_jitter_deg``) so
clips show what they sound like; otherwise the initial yaw is uniform.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spatialgen.data.clips import DatasetError
from spatialgen.data.synthetic.metadata import (
    FILE_ROLES,
    MANIFEST_JSON,
    SPLITS,
    ClipMeta,
    Manifest,
    ManifestEntry,
    SourceTrack,
    assign_splits,
    read_manifest,
    read_meta,
    rounded,
    write_manifest,
    write_meta,
)
from spatialgen.data.synthetic.render import track_geometry
from spatialgen.errors import InvalidAudioError, MediaError
from spatialgen.io import (
    audio_info,
    probe_video,
    read_audio,
    read_audio_track,
    read_video,
    write_audio,
    write_video,
)
from spatialgen.spatial import binaural, foa, projection
from spatialgen.spatial.geometry import direction, direction_to_angles

__all__ = ["BiAudioConfig", "Input360", "build_biaudio", "build_clip", "find_360_inputs", "sample_trajectory"]

log = logging.getLogger("spatialgen.data")
_VIDEO_EXTS = (".mp4", ".mov", ".mkv")
_PEAK = 0.99


@dataclass(frozen=True)
class BiAudioConfig:
    """Builder settings (angles in degrees, sizes ``(height, width)``; ``None`` = the input's own)."""

    clips_per_video: int = 1
    clip_seconds: float | None = None
    fps: float | None = None
    sample_rate: int | None = None
    view_size: tuple[int, int] = (112, 112)
    hfov_deg: float = 90.0
    hrir: str = "spherical-head"
    keyframe_seconds: float = 1.0
    max_yaw_speed_deg: float = 25.0
    max_pitch_deg: float = 20.0
    max_roll_deg: float = 12.0
    aim_jitter_deg: float = 15.0
    keep_360: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.clips_per_video) != self.clips_per_video or self.clips_per_video < 1:
            raise ValueError(f"clips_per_video must be a positive integer, got {self.clips_per_video!r}")
        for name in ("clip_seconds", "fps", "sample_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        if not 0 < self.hfov_deg < 180:
            raise ValueError(f"hfov_deg must be in (0, 180), got {self.hfov_deg!r}")
        if len(self.view_size) != 2 or any(int(v) != v or v < 2 or v % 2 for v in self.view_size):
            raise ValueError(f"view_size must be (height, width) of even integers, got {self.view_size!r}")
        if not self.keyframe_seconds > 0:
            raise ValueError(f"keyframe_seconds must be > 0, got {self.keyframe_seconds!r}")


@dataclass
class Input360:
    """One 360° input: a name, its equirect video, its FOA (file or the video's track), optional meta."""

    name: str
    video: Path
    audio: Path | None
    meta: ClipMeta | None = None
    split: str | None = None


def find_360_inputs(src: str | os.PathLike[str]) -> list[Input360]:
    """The 360° inputs in ``src`` (a common-layout dataset or a folder of videos; module docstring)."""
    root = Path(src)
    if not root.is_dir():
        raise DatasetError(f"{root}: source folder not found")
    if (root / MANIFEST_JSON).is_file():
        inputs = []
        for entry in read_manifest(root).clips:
            folder = root / entry.path
            meta = read_meta(folder)
            if "equirect" not in meta.files or "foa_world" not in meta.files:
                raise DatasetError(f"{folder}: clip has no 360° video + world FOA ('equirect', 'foa_world')")
            inputs.append(
                Input360(
                    entry.clip_id,
                    meta.path(folder, "equirect"),
                    meta.path(folder, "foa_world"),
                    meta,
                    entry.split,
                )
            )
        return inputs
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in _VIDEO_EXTS and p.is_file())
    if not videos:
        raise DatasetError(f"{root}: no manifest.json and no {'/'.join(_VIDEO_EXTS)} videos found")
    inputs = []
    for path in videos:
        audio = next((path.with_suffix(e) for e in (".wav", ".flac") if path.with_suffix(e).is_file()), None)
        name = path.relative_to(root).with_suffix("").as_posix().replace("/", "__")
        inputs.append(Input360(name, path, audio))
    return inputs


def sample_trajectory(
    rng: np.random.Generator, seconds: float, config: BiAudioConfig, initial_yaw: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Keyframe times ``[K]`` (s, from 0 to ``seconds``) and poses ``[K, 3]`` (yaw, pitch, roll; rad)."""
    n_keys = max(2, math.ceil(seconds / config.keyframe_seconds - 1e-9) + 1)
    times = np.linspace(0.0, seconds, n_keys)
    step = np.diff(times, prepend=0.0)
    yaw0 = rng.uniform(-math.pi, math.pi) if initial_yaw is None else initial_yaw
    drift = rng.uniform(-1.0, 1.0, n_keys) * math.radians(config.max_yaw_speed_deg) * step
    yaw = yaw0 + np.cumsum(drift)  # continuous (unwrapped): linear interpolation takes the short way
    pitch = rng.uniform(-1.0, 1.0, n_keys) * math.radians(config.max_pitch_deg)
    roll = rng.uniform(-1.0, 1.0, n_keys) * math.radians(config.max_roll_deg)
    return times, np.stack([yaw, pitch, roll], axis=-1)


def _read_world_foa(item: Input360, sample_rate: int | None) -> tuple[torch.Tensor, int]:
    if item.audio is not None:
        sr = audio_info(item.audio).sample_rate
        return read_audio(
            item.audio, channels=4, sample_rate=sample_rate or sr, resample=True, dtype=torch.float64
        )
    return read_audio_track(item.video, sample_rate, channels=4, dtype=torch.float64)


def _interp_directions(
    meta_times: np.ndarray, az_deg: list[float], el_deg: list[float], times: np.ndarray
) -> torch.Tensor:
    """World unit vectors ``[len(times), 3]`` interpolated between per-frame directions (wrap-safe)."""
    u = direction(torch.tensor(np.radians(az_deg)), torch.tensor(np.radians(el_deg))).numpy()
    out = np.stack([np.interp(times, meta_times, u[:, i]) for i in range(3)], axis=-1)
    return torch.from_numpy(out / np.linalg.norm(out, axis=-1, keepdims=True))


def _source_tracks(
    meta: ClipMeta,
    start: float,
    times: np.ndarray,
    pose: torch.Tensor,
    config: BiAudioConfig,
    eq_size: tuple[int, int],
) -> list[SourceTrack]:
    """The input's sources re-expressed for the new clip (absolute times ``start + times``)."""
    t_in = np.asarray(meta.frame_times, dtype=np.float64)
    tracks = []
    yaw, pitch, roll = pose.unbind(-1)
    for src in meta.sources:
        u = _interp_directions(t_in, src.world_az_deg, src.world_el_deg, start + times)
        geometry = track_geometry(
            u,
            yaw,
            pitch,
            roll,
            hfov_deg=config.hfov_deg,
            view_size=tuple(config.view_size),
            equirect_size=eq_size,
        )
        tracks.append(
            SourceTrack(
                id=src.id,
                label=src.label,
                visible=src.visible,
                **geometry,
                activity=rounded(
                    np.interp(start + times, t_in, np.asarray(src.activity, dtype=np.float64)), 4
                ),
                shape=src.shape,
                colour=src.colour,
                size_deg=src.size_deg,
                band_hz=src.band_hz,
            )
        )
    return tracks


def _initial_yaw(
    rng: np.random.Generator, item: Input360, start: float, config: BiAudioConfig
) -> float | None:
    if item.meta is None:
        return None
    visible = [s for s in item.meta.sources if s.visible]
    if not visible:
        return None
    src = visible[int(rng.integers(len(visible)))]
    t_in = np.asarray(item.meta.frame_times, dtype=np.float64)
    u = _interp_directions(t_in, src.world_az_deg, src.world_el_deg, np.array([start]))
    az = float(direction_to_angles(u)[0][0])
    return az + math.radians(rng.uniform(-config.aim_jitter_deg, config.aim_jitter_deg))


def build_clip(item: Input360, index: int, j: int, out: Path, config: BiAudioConfig) -> ManifestEntry:
    """Render clip ``j`` of input ``index`` into ``out/<name>_<j>``; returns its manifest entry."""
    rng = np.random.default_rng([config.seed, index, j])
    info = probe_video(item.video)
    world_full, sr = _read_world_foa(item, config.sample_rate)
    fps = float(config.fps or (item.meta.fps if item.meta is not None else info.fps))
    available = min(info.duration, world_full.shape[-1] / sr)
    seconds = config.clip_seconds or available
    if seconds > available + 1e-3:
        raise MediaError(item.video, f"too short: {available:.3f} s < clip_seconds={seconds:g}")
    n_frames = math.floor(seconds * fps + 1e-6)
    if n_frames < 1:
        raise MediaError(item.video, f"too short for one frame at {fps:g} fps")
    start = math.floor(rng.uniform(0.0, max(0.0, available - seconds)) * fps) / fps
    times = (np.arange(n_frames) + 0.5) / fps
    key_t, keys = sample_trajectory(rng, seconds, config, _initial_yaw(rng, item, start, config))
    pose = torch.from_numpy(np.stack([np.interp(times, key_t, keys[:, i]) for i in range(3)], axis=-1))

    equirect, _ = read_video(item.video, fps=fps, start=start, duration=seconds)
    equirect = equirect[:n_frames]
    view = projection.equirect_to_perspective(
        equirect, *pose.unbind(-1), hfov=math.radians(config.hfov_deg), size=tuple(config.view_size)
    )
    n_samples = round(seconds * sr)
    first = round(start * sr)
    world = world_full[:, first : first + n_samples]
    if world.shape[-1] < n_samples - max(1, sr // 1000):
        raise MediaError(item.audio or item.video, f"too short: FOA ends before {start + seconds:.3f} s")
    per_sample = foa.interpolate_trajectory(
        torch.from_numpy(key_t), torch.from_numpy(keys), world.shape[-1], sr
    )
    camera = foa.rotate(world, *per_sample)
    ears = binaural.render_foa(camera, sr, hrir=config.hrir)
    peak = max(float(a.abs().max()) for a in (world, camera, ears))
    gain = _PEAK / peak if peak > _PEAK else 1.0  # one gain for all files keeps them consistent

    clip = f"{item.name}_{j:02d}"
    folder = out / clip
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(FILE_ROLES) if config.keep_360 else {k: FILE_ROLES[k] for k in ("video", "foa", "binaural")}
    eq_size = tuple(equirect.shape[-2:])
    deg = 180.0 / math.pi
    meta = ClipMeta(
        clip_id=clip,
        dataset="biaudio",
        duration=float(seconds),
        sample_rate=int(sr),
        fps=fps,
        n_frames=n_frames,
        frame_times=rounded(times, 6),
        camera_mode="trajectory",
        camera_keyframes={
            "time": rounded(key_t, 6),
            **{f"{k}_deg": rounded(keys[:, i] * deg, 6) for i, k in enumerate(("yaw", "pitch", "roll"))},
        },
        camera={f"{k}_deg": rounded(pose[:, i] * deg, 4) for i, k in enumerate(("yaw", "pitch", "roll"))},
        view={"hfov_deg": float(config.hfov_deg), "size": list(config.view_size)},
        files=files,
        sources=_source_tracks(item.meta, start, times, pose, config, eq_size)
        if item.meta is not None
        else [],
        equirect_size=list(eq_size),
        foa_format="ambix",
        binaural_hrir=config.hrir,
        extra={
            "builder": "spatialgen.data.biaudio",
            "source": item.name,
            "start": start,
            "gain": gain,
            "config": asdict(config),
        },
    )
    write_audio(meta.path(folder, "foa"), camera * gain, sr)
    write_audio(meta.path(folder, "binaural"), ears * gain, sr)
    write_video(meta.path(folder, "video"), view, fps)
    if config.keep_360:
        write_audio(meta.path(folder, "foa_world"), world * gain, sr)
        write_video(meta.path(folder, "equirect"), equirect, fps)
    write_meta(folder, meta)  # last: a folder with meta.json is complete
    labels = [s.label for s in meta.sources]
    return ManifestEntry(clip, item.split or "", clip, float(seconds), labels)


_FAILURES = (MediaError, InvalidAudioError, OSError)


def _job(args: tuple[Input360, int, int, str, BiAudioConfig]) -> tuple[ManifestEntry | None, str, str | None]:
    item, index, j, out, config = args
    torch.set_num_threads(1)
    try:
        return build_clip(item, index, j, Path(out), config), item.name, None
    except _FAILURES as e:
        return None, item.name, str(e).splitlines()[0]


def build_biaudio(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BiAudioConfig | None = None,
    *,
    split_ratios: dict[str, float] | None = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Manifest:
    """Build a BiAudio-style dataset in ``out`` from the 360° inputs in ``src``; returns the manifest.

    Inputs that fail (corrupt/missing media, not 4 channels, too short) are logged, skipped and listed
    in ``manifest.config["failures"]``; if all fail a :class:`DatasetError` is raised. Splits are the
    input's (common-layout sources) or drawn per input video with ``split_ratios`` (default 80/10/10),
    so clips of one video never straddle splits.
    """
    config = config or BiAudioConfig()
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    root = Path(out)
    if (root / MANIFEST_JSON).exists() and not overwrite:
        raise FileExistsError(
            f"{root}: already holds a dataset ({MANIFEST_JSON}); pass overwrite=True (--overwrite)"
        )
    inputs = find_360_inputs(src)
    binaural.foa_decoder_filters(config.hrir, config.sample_rate or 16000)  # a bad HRIR fails now
    ratios = split_ratios or {"train": 0.8, "val": 0.1, "test": 0.1}
    drawn = assign_splits(len(inputs), config.seed, ratios)
    for item, split in zip(inputs, drawn):
        if item.split not in SPLITS:
            item.split = split
    root.mkdir(parents=True, exist_ok=True)
    jobs = [
        (item, i, j, str(root), config)
        for i, item in enumerate(inputs)
        for j in range(config.clips_per_video)
    ]
    entries: list[ManifestEntry] = []
    failures: dict[str, str] = {}
    threads = torch.get_num_threads()
    with tqdm(total=len(jobs), desc="biaudio clips", unit="clip", disable=not progress) as bar:
        if workers == 1:
            results = map(_job, jobs)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = multiprocessing.get_context(method).Pool(min(int(workers), len(jobs)))
            results = pool.imap(_job, jobs)
        try:
            for entry, name, error in results:
                if entry is None:
                    failures[name] = error or "unknown"
                    log.warning("biaudio: skipping input %s (%s)", name, error)
                else:
                    entries.append(entry)
                bar.update()
        finally:
            torch.set_num_threads(threads)
            if workers > 1:
                pool.close()
                pool.join()
    if not entries:
        first = next(iter(failures.items()))
        raise DatasetError(f"{src}: all {len(inputs)} inputs failed (e.g. {first[0]}: {first[1]})")
    run_config: dict[str, Any] = {**asdict(config), "source": str(src), "failures": failures}
    manifest = Manifest("biaudio", entries, dict(ratios), run_config)
    write_manifest(root, manifest)
    return manifest
