"""Render a sampled :class:`~spatialgen.data.synthetic.scene.Scene` to audio, video and ground truth.

Audio (float64 throughout, one common gain per clip so every file stays consistent):

1. Each source's class sound is encoded per sample at its moving direction as an AmbiX plane wave
   and summed into the world FOA.
2. Optional room (``reverb=True``), kept deliberately simple:
   - six first-order image sources of a shoebox around the listener (walls at ``±half_size``; the
     source sits at ``distance`` along its direction, pulled inside the room if needed). Each image
     follows the source's direction per sample, mirrored in its wall; its delay ``(r' − r)/c`` and gain
     ``reflection · r/r'`` are taken at mid-clip (constant, integer samples);
   - a diffuse tail: exponentially decaying noise (60 dB in ``rt60``) starting after the last early
     reflection, independent per FOA channel with ``X, Y, Z`` at ``1/√3`` of ``W`` (an isotropic
     field in SN3D), scaled to ``tail_db`` relative to the source's direct energy.
3. The world FOA is rotated into the camera frame per sample along the interpolated keyframes
   (:func:`spatialgen.spatial.foa.rotate`), then rendered to binaural with the configured HRIR set.
4. All three are scaled by one gain so that the largest sample of any of them is 0.9.

Video: a grey 360° world (sky/ground gradient and a 30° latitude/longitude grid, so camera motion is
visible) with one saturated, uniquely coloured shape per visible source. Shapes are drawn in the
gnomonic (tangent-plane) coordinates around the object's direction, so a camera looking at an object
sees it undistorted, centred on its direction; they brighten while the source sounds. Frame ``k``
shows time ``(k + ½)/fps``; the perspective view samples the equirect frame with the camera pose of
that instant (:func:`spatialgen.spatial.projection.equirect_to_perspective`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.signal import fftconvolve

from spatialgen.data.synthetic.metadata import FILE_ROLES, ClipMeta, SourceTrack, rounded
from spatialgen.data.synthetic.scene import Room, Scene, SceneSource, SynthConfig
from spatialgen.data.synthetic.sounds import get_sound_class
from spatialgen.spatial import binaural, foa, projection
from spatialgen.spatial.geometry import direction, direction_to_angles, rotation_matrix, world_to_camera

__all__ = ["PEAK", "RenderedClip", "clip_id", "draw_equirect", "render_audio", "render_clip"]

PEAK = 0.9
_SPEED_OF_SOUND = 343.0
_RAD2DEG = 180.0 / math.pi


@dataclass
class RenderedClip:
    """A rendered clip: audio ``[C, T]`` float64, video uint8 ``[F, 3, H, W]``, and its metadata."""

    foa_world: torch.Tensor
    foa: torch.Tensor
    binaural: torch.Tensor
    equirect: torch.Tensor
    video: torch.Tensor
    meta: ClipMeta


def _room_image_sources(room: Room, u: np.ndarray) -> list[tuple[np.ndarray, int, float]]:
    """First-order images ``(directions [T, 3], delay in s, gain)`` for source directions ``u [T, 3]``."""
    half = np.asarray(room.half_size)
    # Pull the source inside the room (90% of the nearest wall along its direction).
    reach = np.min(half / np.maximum(np.abs(u), 1e-9), axis=-1)
    pos = u * np.minimum(room.distance, 0.9 * reach)[:, None]
    mid = len(u) // 2
    out = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            image = pos.copy()
            image[:, axis] = 2 * sign * half[axis] - pos[:, axis]
            dist = np.linalg.norm(image, axis=-1)
            r, r_img = np.linalg.norm(pos[mid]), dist[mid]
            out.append((image / dist[:, None], (r_img - r) / _SPEED_OF_SOUND, room.reflection * r / r_img))
    return out


def _reverb(
    signal: np.ndarray, u: np.ndarray, room: Room, sample_rate: int, rng: np.random.Generator
) -> torch.Tensor:
    """Early reflections + diffuse tail of one source as FOA ``[4, T]`` (see the module docstring)."""
    n = signal.shape[-1]
    out = np.zeros((4, n))
    last_delay = 0
    for dirs, delay_s, gain in _room_image_sources(room, u):
        delay = round(delay_s * sample_rate)
        last_delay = max(last_delay, delay)
        delayed = np.zeros(n)
        delayed[delay:] = gain * signal[: n - delay]
        out += np.stack((delayed, delayed * dirs[:, 1], delayed * dirs[:, 2], delayed * dirs[:, 0]))
    length = round(room.rt60 * sample_rate)
    decay = np.exp(-6.91 * np.arange(length) / (room.rt60 * sample_rate))  # −60 dB at rt60
    tail = rng.standard_normal((4, length)) * decay * np.array([1.0, *(3 * [1 / math.sqrt(3)])])[:, None]
    tail *= math.sqrt(10 ** (room.tail_db / 10) / np.sum(tail[0] ** 2))  # W-tail energy gain = tail_db
    start = last_delay + 1
    wet = fftconvolve(signal[None, :], tail, axes=-1)[:, : max(0, n - start)]
    out[:, start:] += wet
    return torch.from_numpy(out)


def _source_signal(source: SceneSource, n: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    signal, active = get_sound_class(source.label).synthesize(
        np.random.default_rng(source.sound_seed), n, sample_rate
    )
    return signal * 10 ** (source.gain_db / 20), active


def render_audio(
    scene: Scene, config: SynthConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[np.ndarray], float]:
    """``(foa_world [4, T], foa [4, T], binaural [2, T], active masks per source, gain)``, float64.

    The returned audio already carries the common clip gain (also returned).
    """
    n, sr = config.n_samples, config.sample_rate
    t = np.arange(n) / sr
    world = torch.zeros(4, n, dtype=torch.float64)
    actives = []
    for source in scene.sources:
        signal, active = _source_signal(source, n, sr)
        az, el = source.path.angles(t)
        world += foa.encode(torch.from_numpy(signal), torch.from_numpy(az), torch.from_numpy(el))
        if scene.room is not None:
            u = direction(torch.from_numpy(az), torch.from_numpy(el)).numpy()
            world += _reverb(signal, u, scene.room, sr, np.random.default_rng([source.sound_seed, 1]))
        actives.append(active)
    cam = scene.camera
    keys = torch.from_numpy(np.stack((cam.yaw, cam.pitch, cam.roll), axis=-1))
    yaw, pitch, roll = foa.interpolate_trajectory(torch.from_numpy(cam.times), keys, n, sr)
    camera = foa.rotate(world, yaw, pitch, roll)
    ears = binaural.render_foa(camera, sr, hrir=config.hrir)
    peak = max(float(a.abs().max()) for a in (world, camera, ears))
    gain = PEAK / peak if peak > 0 else 1.0
    return world * gain, camera * gain, ears * gain, actives, gain


def _frame_activity(active: np.ndarray, n_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Fraction of each frame interval ``[k/fps, (k+1)/fps)`` during which the source is on."""
    edges = np.minimum(np.round(np.arange(n_frames + 1) / fps * sample_rate).astype(np.int64), active.size)
    cumulative = np.concatenate(([0], np.cumsum(active, dtype=np.int64)))
    return (cumulative[edges[1:]] - cumulative[edges[:-1]]) / np.maximum(np.diff(edges), 1)


def _shape_sdf(shape: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance (approximate outside) of a unit-radius shape at tangent-plane coords ``(a, b)``.

    ``a`` points to +azimuth (image left), ``b`` up. Every shape has its centroid at the origin.
    """
    aa, bb = np.abs(a), np.abs(b)
    if shape == "disc":
        return np.hypot(a, b) - 1.0
    if shape == "ring":
        return np.abs(np.hypot(a, b) - 0.75) - 0.25
    if shape == "square":
        return np.maximum(aa, bb) - 0.8
    if shape == "diamond":
        return (aa + bb - 1.1) / math.sqrt(2)
    if shape == "cross":
        return np.minimum(np.maximum(aa - 1.0, bb - 0.3), np.maximum(aa - 0.3, bb - 1.0))
    if shape == "triangle":  # equilateral, apex up, circumradius 1.15, inradius 0.575
        normals = ((0.0, -1.0), (math.cos(math.pi / 6), 0.5), (-math.cos(math.pi / 6), 0.5))
        return np.max([na * a + nb * b for na, nb in normals], axis=0) - 0.575
    raise ValueError(f"unknown shape {shape!r}")


def _equirect_rays(
    height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre longitude [W], latitude [H] and unit ray components [H, W] (float32)."""
    lon = np.pi * (1 - 2 * (np.arange(width) + 0.5) / width)
    lat = np.pi / 2 - np.pi * (np.arange(height) + 0.5) / height
    cl = np.cos(lat)[:, None]
    rx = (cl * np.cos(lon)[None]).astype(np.float32)
    ry = (cl * np.sin(lon)[None]).astype(np.float32)
    rz = np.broadcast_to(np.sin(lat)[:, None], (height, width)).astype(np.float32)
    return lon, lat, rx, ry, rz


def _background(scene: Scene, height: int, width: int, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Grey sky/ground gradient with a 30° grid, ``[H, W]`` float32 in 0..255."""
    bg = scene.background
    sky = 0.5 * (1 + np.tanh(lat / 0.08))
    value = bg["ground"] + (bg["sky"] - bg["ground"]) * sky[:, None] * np.ones((1, width))
    step = math.pi / 6
    lon_dist = np.abs((lon - bg["grid_offset"] + step / 2) % step - step / 2) * np.cos(lat)[:, None]
    lat_dist = np.abs((lat + step / 2) % step - step / 2)[:, None]
    line = np.minimum(lon_dist, lat_dist) < 0.6 * math.pi / height
    return np.where(line, value - 35.0, value).astype(np.float32)


def draw_equirect(
    scene: Scene, config: SynthConfig, times: np.ndarray, activity: list[np.ndarray]
) -> np.ndarray:
    """360° frames ``uint8 [F, 3, H, W]`` at ``times`` (s); ``activity[i][k]`` sets object brightness."""
    height, width = config.equirect_size
    lon, lat, rx, ry, rz = _equirect_rays(height, width)
    background = _background(scene, height, width, lon, lat)
    frames = np.repeat(np.repeat(background[None, None], 3, axis=1), len(times), axis=0)
    pixel = math.pi / height  # angular pixel size (rad)
    for source, act in zip(scene.sources, activity):
        if not source.visible:
            continue
        cls = get_sound_class(source.label)
        radius = math.tan(source.size_deg * math.pi / 180)
        az, el = source.path.angles(times)
        for k in range(len(times)):
            # Rows that can hold the shape (1.6 radii covers every shape's extent).
            reach = 1.6 * source.size_deg * math.pi / 180
            r0 = max(0, int((math.pi / 2 - el[k] - reach) / math.pi * height) - 1)
            r1 = min(height, int((math.pi / 2 - el[k] + reach) / math.pi * height) + 2)
            ca, sa, ce, se = math.cos(az[k]), math.sin(az[k]), math.cos(el[k]), math.sin(el[k])
            x, y, z = rx[r0:r1], ry[r0:r1], rz[r0:r1]
            dot = x * (ca * ce) + y * (sa * ce) + z * se
            front = dot > 0.5
            safe = np.where(front, dot, 1.0)
            a = (-sa * x + ca * y) / safe / radius  # east (+azimuth)
            b = (-se * ca * x - se * sa * y + ce * z) / safe / radius  # north
            sdf = np.where(front, _shape_sdf(cls.shape, a, b), np.inf)
            alpha = np.clip(0.5 - sdf * radius / pixel, 0.0, 1.0)[None]
            colour = np.asarray(cls.colour, dtype=np.float32)[:, None, None] * (0.45 + 0.55 * act[k])
            frames[k, :, r0:r1] = frames[k, :, r0:r1] * (1 - alpha) + colour * alpha
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def track_geometry(
    u: torch.Tensor,
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    roll: torch.Tensor,
    *,
    hfov_deg: float,
    view_size: tuple[int, int],
    equirect_size: tuple[int, int],
) -> dict[str, Any]:
    """The geometric :class:`SourceTrack` fields of world directions ``u [T, 3]`` seen from per-frame poses.

    World and camera angles (degrees), perspective pixel position and visibility, 360° pixel position;
    shared by the synthetic generator and the BiAudio builder so both write the same ground truth.
    """
    cam_az, cam_el = direction_to_angles(world_to_camera(u, rotation_matrix(yaw, pitch, roll)))
    row, col, on_screen = projection.world_to_pixel(
        u, yaw, pitch, roll, hfov=hfov_deg * math.pi / 180, size=tuple(view_size)
    )
    eq_row, eq_col = projection.direction_to_equirect_pixel(u, *equirect_size)
    world_az, world_el = direction_to_angles(u)
    return {
        "world_az_deg": rounded(world_az * _RAD2DEG, 4),
        "world_el_deg": rounded(world_el * _RAD2DEG, 4),
        "camera_az_deg": rounded(cam_az * _RAD2DEG, 4),
        "camera_el_deg": rounded(cam_el * _RAD2DEG, 4),
        "row": rounded(row, 3),
        "col": rounded(col, 3),
        "on_screen": [bool(v) for v in on_screen.tolist()],
        "equirect_row": rounded(eq_row, 3),
        "equirect_col": rounded(eq_col, 3),
    }


def _source_track(
    i: int, source: SceneSource, scene: Scene, config: SynthConfig, times: np.ndarray, activity: np.ndarray
) -> SourceTrack:
    """Per-frame ground truth of one source (world/camera angles, pixel positions, activity)."""
    az, el = source.path.angles(times)
    u = direction(torch.from_numpy(az), torch.from_numpy(el))
    yaw, pitch, roll = (torch.from_numpy(a) for a in scene.camera.at(times))
    geometry = track_geometry(
        u,
        yaw,
        pitch,
        roll,
        hfov_deg=config.hfov_deg,
        view_size=tuple(config.view_size),
        equirect_size=tuple(config.equirect_size),
    )
    cls = get_sound_class(source.label)
    return SourceTrack(
        id=i,
        label=source.label,
        visible=source.visible,
        **geometry,
        activity=rounded(activity, 4),
        shape=cls.shape if source.visible else None,
        colour=list(cls.colour) if source.visible else None,
        size_deg=round(source.size_deg, 4) if source.visible else None,
        band_hz=list(cls.band),
    )


def clip_id(index: int) -> str:
    """Folder name / id of clip ``index``."""
    return f"clip_{index:06d}"


def render_clip(scene: Scene, config: SynthConfig) -> RenderedClip:
    """Render all outputs and the metadata of ``scene`` (nothing is written to disk)."""
    world, camera_foa, ears, actives, gain = render_audio(scene, config)
    n_frames = config.n_frames
    times = (np.arange(n_frames) + 0.5) / config.fps
    activity = [_frame_activity(a, n_frames, config.fps, config.sample_rate) for a in actives]
    equirect = torch.from_numpy(draw_equirect(scene, config, times, activity))
    yaw, pitch, roll = (torch.from_numpy(a) for a in scene.camera.at(times))
    view = projection.equirect_to_perspective(
        equirect, yaw, pitch, roll, hfov=config.hfov_deg * math.pi / 180, size=tuple(config.view_size)
    )
    cam = scene.camera
    tracks = [_source_track(i, s, scene, config, times, activity[i]) for i, s in enumerate(scene.sources)]
    extra = {
        "generator": "spatialgen.data.synthetic",
        "seed": scene.seed,
        "index": scene.index,
        "gain": gain,
        "config": config.to_dict(),
        "room": None
        if scene.room is None
        else {**asdict(scene.room), "half_size": list(scene.room.half_size)},
    }
    meta = ClipMeta(
        clip_id=clip_id(scene.index),
        dataset="synthetic",
        duration=float(config.duration),
        sample_rate=int(config.sample_rate),
        fps=float(config.fps),
        n_frames=n_frames,
        frame_times=rounded(times, 6),
        camera_mode=cam.mode,
        camera_keyframes={
            "time": rounded(cam.times, 6),
            "yaw_deg": rounded(cam.yaw * _RAD2DEG, 6),
            "pitch_deg": rounded(cam.pitch * _RAD2DEG, 6),
            "roll_deg": rounded(cam.roll * _RAD2DEG, 6),
        },
        camera={
            "yaw_deg": rounded(yaw * _RAD2DEG, 4),
            "pitch_deg": rounded(pitch * _RAD2DEG, 4),
            "roll_deg": rounded(roll * _RAD2DEG, 4),
        },
        view={"hfov_deg": float(config.hfov_deg), "size": list(config.view_size)},
        files=dict(FILE_ROLES),
        sources=tracks,
        equirect_size=list(config.equirect_size),
        foa_format="ambix",
        binaural_hrir=config.hrir,
        extra=extra,
    )
    return RenderedClip(world, camera_foa, ears, equirect, view, meta)
