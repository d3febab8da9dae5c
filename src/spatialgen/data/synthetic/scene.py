"""Random synthetic scenes: generator settings, sources on smooth (az, el) paths, camera, room.

A scene is drawn from ``numpy.random.default_rng([seed, index])`` only, so clip ``index`` of a dataset
with seed ``seed`` is the same whatever the number of clips or workers.

- **Sources**: 1..``max_sources`` visible objects, each of a different sound class, placed within ±50°
  of the initial camera azimuth (so the camera starts looking at them) with at least 25° between them;
  with ``distractors`` also 0–2 off-screen sounds of other classes (no visual object) behind the camera.
  Each moves along ``az(t) = az0 + ω·t + A·sin(2π f t + φ)``, ``el(t) = el0 + B·sin(2π g t + ψ)``
  (smooth, at most about 25°/s).
- **Camera** (``camera="trajectory"``, BiAudio-style): piecewise-linear yaw/pitch/roll keyframes every
  second; yaw drifts by up to ±25° per second, pitch stays within ±20°, roll within ±12°.
  ``camera="fixed"`` (YT-Ambigen-style): one random direction, pitch within ±15°, no roll.
- **Room** (``reverb=True``): a shoebox around the listener for first-order image sources, its
  reflection coefficient and a reverberation time for the diffuse tail (see ``render.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spatialgen.data.synthetic.sounds import MIN_SAMPLE_RATE, list_sound_classes

__all__ = ["CameraPath", "Room", "Scene", "SceneSource", "SourcePath", "SynthConfig", "sample_scene"]

DEG = math.pi / 180.0


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic generator (sizes are ``(height, width)``, ``hfov_deg`` in degrees)."""

    duration: float = 5.0
    sample_rate: int = 16000
    fps: float = 8.0
    equirect_size: tuple[int, int] = (256, 512)
    view_size: tuple[int, int] = (112, 112)
    hfov_deg: float = 90.0
    camera: str = "trajectory"
    max_sources: int = 3
    distractors: bool = True
    reverb: bool = False
    hrir: str = "spherical-head"
    split_ratios: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})

    def __post_init__(self) -> None:
        if not (isinstance(self.duration, (int, float)) and self.duration > 0):
            raise ValueError(f"duration must be > 0 seconds, got {self.duration!r}")
        if (
            isinstance(self.sample_rate, bool)
            or int(self.sample_rate) != self.sample_rate
            or self.sample_rate < MIN_SAMPLE_RATE
        ):
            raise ValueError(
                f"sample_rate must be an integer >= {MIN_SAMPLE_RATE} Hz, got {self.sample_rate!r}"
            )
        if not self.fps > 0 or self.duration * self.fps < 1:
            raise ValueError(
                f"fps must be > 0 and give at least one frame in {self.duration} s, got {self.fps!r}"
            )
        for name in ("equirect_size", "view_size"):
            size = getattr(self, name)
            if len(size) != 2 or any(int(v) != v or v < 2 or v % 2 for v in size):
                raise ValueError(
                    f"{name} must be (height, width) of even integers >= 2 (the video is yuv420p), got {size!r}"
                )
        if not 0 < self.hfov_deg < 180:
            raise ValueError(f"hfov_deg must be in (0, 180) degrees, got {self.hfov_deg!r}")
        if self.camera not in ("trajectory", "fixed"):
            raise ValueError(f"camera must be 'trajectory' or 'fixed', got {self.camera!r}")
        n_classes = len(list_sound_classes())
        if isinstance(self.max_sources, bool) or not 1 <= int(self.max_sources) <= n_classes - 2:
            raise ValueError(
                f"max_sources must be an integer in [1, {n_classes - 2}], got {self.max_sources!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (recorded in the manifest and each clip's metadata)."""
        out = asdict(self)
        out["equirect_size"], out["view_size"] = list(self.equirect_size), list(self.view_size)
        return out

    @property
    def n_samples(self) -> int:
        """Audio samples per clip, ``round(duration · sample_rate)``."""
        return round(self.duration * self.sample_rate)

    @property
    def n_frames(self) -> int:
        """Video frames per clip, ``floor(duration · fps)``; frame ``k`` shows time ``(k + ½)/fps``."""
        return math.floor(self.duration * self.fps + 1e-9)


@dataclass(frozen=True)
class SourcePath:
    """A smooth direction path (radians, rad/s, Hz); see :meth:`angles`."""

    az0: float
    rate: float
    az_amp: float
    az_freq: float
    az_phase: float
    el0: float
    el_amp: float
    el_freq: float
    el_phase: float

    def angles(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(azimuth, elevation)`` in radians at times ``t`` (s); azimuth is unwrapped (continuous)."""
        az = self.az0 + self.rate * t + self.az_amp * np.sin(2 * np.pi * self.az_freq * t + self.az_phase)
        el = self.el0 + self.el_amp * np.sin(2 * np.pi * self.el_freq * t + self.el_phase)
        return az, el


@dataclass(frozen=True)
class SceneSource:
    """A sound source: class, visibility, path, level (dB), object radius (deg), sound seed."""

    label: str
    visible: bool
    path: SourcePath
    gain_db: float
    size_deg: float
    sound_seed: int


@dataclass(frozen=True)
class CameraPath:
    """Camera keyframes (times in s, angles in radians), linear in between and held outside."""

    mode: str
    times: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(yaw, pitch, roll)`` at times ``t`` (the same interpolation the audio uses per sample)."""
        return tuple(np.interp(t, self.times, a) for a in (self.yaw, self.pitch, self.roll))


@dataclass(frozen=True)
class Room:
    """Shoebox half-sizes (m) around the listener, source distance (m), wall reflection, RT60 (s), tail level."""

    half_size: tuple[float, float, float]
    distance: float
    reflection: float
    rt60: float
    tail_db: float


@dataclass(frozen=True)
class Scene:
    """Everything random about one clip."""

    index: int
    seed: int
    sources: list[SceneSource]
    camera: CameraPath
    room: Room | None
    background: dict[str, float]


def _motion(rng: np.random.Generator, az0: float, el0: float) -> SourcePath:
    return SourcePath(
        az0=az0,
        rate=rng.uniform(-10, 10) * DEG,
        az_amp=rng.uniform(0, 8) * DEG,
        az_freq=rng.uniform(0.1, 0.25),
        az_phase=rng.uniform(0, 2 * np.pi),
        el0=el0,
        el_amp=rng.uniform(0, 8) * DEG,
        el_freq=rng.uniform(0.1, 0.25),
        el_phase=rng.uniform(0, 2 * np.pi),
    )


def _spread_azimuths(
    rng: np.random.Generator, n: int, centre: float, half_width: float, min_gap: float
) -> list[float]:
    """``n`` azimuths in ``centre ± half_width`` at least ``min_gap`` apart (rejection sampling)."""
    for _ in range(200):
        az = np.sort(rng.uniform(-half_width, half_width, n))
        if n < 2 or np.diff(az).min() >= min_gap:
            return [centre + a for a in rng.permutation(az)]
    return [centre + a for a in np.linspace(-half_width, half_width, n)]  # fallback: evenly spread


def _camera(rng: np.random.Generator, config: SynthConfig, yaw0: float) -> CameraPath:
    if config.camera == "fixed":
        pitch = rng.uniform(-15, 15) * DEG
        return CameraPath("fixed", np.zeros(1), np.array([yaw0]), np.array([pitch]), np.zeros(1))
    n_keys = math.ceil(config.duration) + 1
    yaw, pitch, roll = [yaw0], [rng.uniform(-10, 10) * DEG], [rng.uniform(-5, 5) * DEG]
    for _ in range(n_keys - 1):
        yaw.append(yaw[-1] + rng.uniform(-25, 25) * DEG)
        pitch.append(float(np.clip(pitch[-1] + rng.uniform(-10, 10) * DEG, -20 * DEG, 20 * DEG)))
        roll.append(float(np.clip(roll[-1] + rng.uniform(-8, 8) * DEG, -12 * DEG, 12 * DEG)))
    return CameraPath("trajectory", np.arange(n_keys, dtype=np.float64), *map(np.asarray, (yaw, pitch, roll)))


def sample_scene(config: SynthConfig, seed: int, index: int) -> Scene:
    """Draw clip ``index`` of the dataset with ``seed`` (both non-negative integers) deterministically."""
    if int(seed) != seed or seed < 0 or int(index) != index or index < 0:
        raise ValueError(f"seed and index must be non-negative integers, got seed={seed!r}, index={index!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    # Distractors come from their own stream, so switching them off leaves the rest of the clip as is.
    rng_off = np.random.default_rng([int(seed), int(index), 1])
    yaw0 = rng.uniform(-np.pi, np.pi)
    n_visible = int(rng.integers(1, config.max_sources + 1))
    order = [str(c) for c in rng.permutation(list_sound_classes())]
    visible_az = _spread_azimuths(rng, n_visible, yaw0, 50 * DEG, 25 * DEG)
    sources = [
        SceneSource(
            label=order[i],
            visible=True,
            path=_motion(rng, float(visible_az[i]), float(rng.uniform(-20, 20) * DEG)),
            gain_db=float(rng.uniform(-6, 0)),
            size_deg=float(rng.uniform(6, 9)),
            sound_seed=int(rng.integers(2**62)),
        )
        for i in range(n_visible)
    ]
    n_distractors = int(rng_off.integers(0, 3)) if config.distractors else 0
    for label in order[n_visible : n_visible + n_distractors]:
        az0 = yaw0 + np.pi + rng_off.uniform(-60, 60) * DEG
        sources.append(
            SceneSource(
                label=label,
                visible=False,
                path=_motion(rng_off, float(az0), float(rng_off.uniform(-30, 30) * DEG)),
                gain_db=float(rng_off.uniform(-12, -4)),
                size_deg=0.0,
                sound_seed=int(rng_off.integers(2**62)),
            )
        )
    camera = _camera(rng, config, float(yaw0))
    background = {
        "sky": float(rng.uniform(150, 200)),
        "ground": float(rng.uniform(60, 100)),
        "grid_offset": float(rng.uniform(0, 30) * DEG),
    }
    # Drawn last, so turning reverb on changes the audio only.
    room = None
    if config.reverb:
        room = Room(
            half_size=tuple(float(v) for v in (rng.uniform(2, 5), rng.uniform(2, 5), rng.uniform(1.3, 2))),
            distance=float(rng.uniform(1.5, 3)),
            reflection=float(rng.uniform(0.5, 0.8)),
            rt60=float(rng.uniform(0.3, 0.8)),
            tail_db=float(rng.uniform(-12, -6)),
        )
    return Scene(int(index), int(seed), sources, camera, room, background)
