"""Head-related impulse response (HRIR) sets: the analytic spherical head, SOFA files, a name registry.

Directions are in the project frame (+x front, +y left, +z up; azimuth anticlockwise, +90° = left),
which is also the frame of SOFA ``SimpleFreeFieldHRIR`` spherical source positions. Ears are ordered
``[L, R]``. Every set can be produced at any sample rate:

- ``"spherical-head"`` (default, no data): Brown & Duda (1998) head shadow + Woodworth delay on a dense
  sphere, regenerated exactly at each rate.
- ``"mit-kemar"``: MIT KEMAR (normal pinna) from the Debian package ``libmysofa1``.
- any path to a ``SimpleFreeFieldHRIR`` SOFA file, read with ``sofar``.

Measured sets are resampled with a polyphase filter and scaled by ``old_rate / new_rate`` so that the
frequency response (not the sample values) is preserved.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from spatialgen.errors import MediaError
from spatialgen.registry import Registry
from spatialgen.spatial.geometry import AngleLike, direction

__all__ = [
    "HRIR_SETS",
    "KEMAR_DEBIAN_PACKAGE",
    "KEMAR_SOFA_PATH",
    "HRIRModel",
    "HRIRSet",
    "HRIRSource",
    "SphericalHead",
    "angle64",
    "list_hrirs",
    "load_hrir",
    "read_sofa",
    "sphere_grid",
]

KEMAR_SOFA_PATH = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
KEMAR_DEBIAN_PACKAGE = "libmysofa1"


class HRIRModel(Protocol):
    """An analytic HRIR model that can be evaluated at any direction and sample rate."""

    key: str

    def impulse_responses(self, azimuth: np.ndarray, elevation: np.ndarray, sample_rate: int) -> np.ndarray:
        """Float64 HRIRs ``[N, 2, taps]`` for ``N`` directions (radians)."""
        ...


@dataclass(eq=False)
class HRIRSet:
    """A set of HRIRs: ``irs[n]`` (ears ``[L, R]``) is the response to a source at ``directions[n]``.

    Attributes:
        directions: ``[N, 2]`` (azimuth, elevation) in radians, project frame.
        irs: ``[N, 2, taps]`` impulse responses.
        sample_rate: rate of ``irs`` in Hz.
        name: human-readable origin (registry name or file path).
        model: analytic model the set was sampled from, if any; used for exact evaluation at arbitrary
            directions (:meth:`at`) and exact re-generation in :meth:`resample`.
    """

    directions: Tensor
    irs: Tensor
    sample_rate: int
    name: str = ""
    model: HRIRModel | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.directions.ndim != 2 or self.directions.shape[1] != 2:
            raise ValueError(f"HRIRSet: directions must be [N, 2], got {tuple(self.directions.shape)}")
        if self.irs.ndim != 3 or self.irs.shape[1] != 2 or self.irs.shape[0] != self.directions.shape[0]:
            raise ValueError(
                f"HRIRSet: irs must be [N, 2, taps] with N = {self.directions.shape[0]}, "
                f"got {tuple(self.irs.shape)}"
            )
        if self.irs.shape[-1] < 1 or not bool(torch.isfinite(self.irs).all()):
            raise ValueError(f"HRIRSet {self.name!r}: irs must be non-empty and finite")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"HRIRSet: sample_rate must be positive, got {self.sample_rate}")
        self.sample_rate = int(self.sample_rate)

    @property
    def taps(self) -> int:
        """Length of each impulse response in samples."""
        return int(self.irs.shape[-1])

    @property
    def vectors(self) -> Tensor:
        """Unit direction vectors ``[N, 3]``."""
        return direction(self.directions[:, 0], self.directions[:, 1])

    @property
    def fingerprint(self) -> str:
        """A content key (model parameters or a hash of the data) used to cache derived filters."""
        if self._fingerprint is None:
            if self.model is not None:
                key = f"{self.model.key}@{self.sample_rate}"
            else:
                digest = hashlib.sha1()
                digest.update(self.directions.detach().cpu().double().numpy().tobytes())
                digest.update(self.irs.detach().cpu().double().numpy().tobytes())
                key = f"{digest.hexdigest()}@{self.sample_rate}"
            self._fingerprint = key
        return self._fingerprint

    def nearest(self, azimuth: AngleLike, elevation: AngleLike) -> Tensor:
        """Indices (long, broadcast shape of the angles) of the measured directions closest to the query."""
        query = direction(angle64(azimuth), angle64(elevation)).to(self.directions.device)
        return torch.argmax(query @ self.vectors.to(torch.float64).T, dim=-1)

    def at(self, azimuth: AngleLike, elevation: AngleLike) -> Tensor:
        """HRIRs ``[..., 2, taps]`` at the given directions: exact for analytic sets, nearest otherwise."""
        if self.model is None:
            return self.irs[self.nearest(azimuth, elevation)]
        az, el = torch.broadcast_tensors(angle64(azimuth), angle64(elevation))
        irs = self.model.impulse_responses(
            az.detach().cpu().reshape(-1).numpy(), el.detach().cpu().reshape(-1).numpy(), self.sample_rate
        )
        out = torch.from_numpy(irs).to(dtype=self.irs.dtype, device=self.irs.device)
        return out.reshape(*az.shape, 2, irs.shape[-1])

    def resample(self, sample_rate: int) -> HRIRSet:
        """The same set at ``sample_rate`` (exact for analytic sets, polyphase for measured ones)."""
        sample_rate = int(sample_rate)
        if sample_rate <= 0:
            raise ValueError(f"HRIRSet.resample: sample_rate must be positive, got {sample_rate}")
        if sample_rate == self.sample_rate:
            return self
        if self.model is not None:
            irs = self.model.impulse_responses(
                self.directions[:, 0].cpu().double().numpy(),
                self.directions[:, 1].cpu().double().numpy(),
                sample_rate,
            )
        else:
            from scipy.signal import resample_poly

            g = math.gcd(sample_rate, self.sample_rate)
            up, down = sample_rate // g, self.sample_rate // g
            # resample_poly is zero-phase, so onsets (and thus ITDs) stay put; the rate ratio keeps the
            # frequency response gain, since an IR's spectrum scales with its sample spacing.
            irs = resample_poly(self.irs.detach().cpu().double().numpy(), up, down, axis=-1)
            irs = irs * (self.sample_rate / sample_rate)
        return HRIRSet(
            directions=self.directions,
            irs=torch.from_numpy(np.ascontiguousarray(irs)).to(dtype=self.irs.dtype, device=self.irs.device),
            sample_rate=sample_rate,
            name=self.name,
            model=self.model,
        )

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> HRIRSet:
        """A copy with ``irs`` (and ``directions``, device only) moved/cast."""
        out = HRIRSet(
            directions=self.directions.to(device=device),
            irs=self.irs.to(dtype=dtype, device=device),
            sample_rate=self.sample_rate,
            name=self.name,
            model=self.model,
        )
        out._fingerprint = self._fingerprint
        return out


def angle64(value: AngleLike) -> Tensor:
    """A float64 angle tensor (floats are converted directly, without a float32 round trip)."""
    if isinstance(value, Tensor):
        return value.to(torch.float64)
    return torch.tensor(float(value), dtype=torch.float64)


def sphere_grid(step_deg: float = 5.0) -> Tensor:
    """Near-uniform (azimuth, elevation) grid ``[N, 2]`` in radians: rings every ``step_deg`` in elevation.

    Each ring has a multiple of 4 azimuths (≈ 360·cos(el)/step), so 0°, ±90° and 180° are on the horizon.
    """
    rings = round(180.0 / step_deg)
    points = []
    for i in range(rings + 1):
        el = -math.pi / 2 + math.pi * i / rings
        n_az = max(1, 4 * round(90.0 / step_deg * math.cos(el)))
        az = np.arange(n_az) * (2 * math.pi / n_az)
        az = np.where(az > math.pi, az - 2 * math.pi, az)
        points.append(np.stack([az, np.full(n_az, el)], axis=-1))
    return torch.from_numpy(np.concatenate(points, axis=0))


@dataclass(frozen=True)
class SphericalHead:
    """Brown & Duda (1998) spherical-head HRIR model (no pinna, no torso).

    Per ear, with θ the angle between the source and the ear axis:
    shadow ``H(ω,θ) = (1 + j·α(θ)·ω/(2ω0)) / (1 + j·ω/(2ω0))``, ``ω0 = c/a``,
    ``α(θ) = (1 + α_min/2) + (1 − α_min/2)·cos(π·θ/θ_min)``, and delay
    ``τ(θ) = (a/c)(1 − cos θ)`` for θ < π/2, ``(a/c)(1 + θ − π/2)`` otherwise, which gives the Woodworth
    ITD ``(a/c)(lat + sin lat)``. HRIR = irfft of ``H·exp(−jω(τ + bulk))``, frequency-sampled at the
    filter length. The length is the power of two ≥ 5.3 ms (256 taps at 48 kHz) with a bulk delay of
    1/8 of it, which keeps the fractional-delay ringing causal.
    """

    radius: float = 0.0875
    speed_of_sound: float = 343.0
    ear_azimuth: float = math.pi / 2
    alpha_min: float = 0.1
    theta_min: float = 150.0 * math.pi / 180.0

    @property
    def key(self) -> str:
        """Identity of the model parameters (for caches)."""
        return (
            f"spherical-head(a={self.radius!r},c={self.speed_of_sound!r},ear={self.ear_azimuth!r},"
            f"amin={self.alpha_min!r},tmin={self.theta_min!r})"
        )

    def taps(self, sample_rate: int) -> int:
        """Filter length at ``sample_rate``: the smallest power of two ≥ 5.33 ms (≥ 64 taps)."""
        return max(64, 2 ** math.ceil(math.log2(256.0 * sample_rate / 48000.0) - 1e-9))

    def impulse_responses(self, azimuth: np.ndarray, elevation: np.ndarray, sample_rate: int) -> np.ndarray:
        """Float64 HRIRs ``[N, 2, taps]`` for source directions (radians)."""
        az = np.asarray(azimuth, dtype=np.float64).reshape(-1)
        el = np.asarray(elevation, dtype=np.float64).reshape(-1)
        u = np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)], axis=-1)
        ears = np.array(
            [
                [math.cos(self.ear_azimuth), math.sin(self.ear_azimuth), 0.0],
                [math.cos(self.ear_azimuth), -math.sin(self.ear_azimuth), 0.0],
            ]
        )
        theta = np.arccos(np.clip(u @ ears.T, -1.0, 1.0))[..., None]  # [N, 2, 1]
        a_c = self.radius / self.speed_of_sound
        tau = np.where(theta < math.pi / 2, a_c * (1 - np.cos(theta)), a_c * (1 + theta - math.pi / 2))
        alpha = (1 + self.alpha_min / 2) + (1 - self.alpha_min / 2) * np.cos(math.pi * theta / self.theta_min)
        n = self.taps(sample_rate)
        bulk = n // 8
        omega = 2 * math.pi * np.fft.rfftfreq(n, d=1.0 / sample_rate)
        w0 = self.speed_of_sound / self.radius
        shadow = (1 + 1j * alpha * omega / (2 * w0)) / (1 + 1j * omega / (2 * w0))
        spectrum = shadow * np.exp(-1j * omega * (tau + bulk / sample_rate))
        return np.fft.irfft(spectrum, n=n, axis=-1)

    def to_set(self, sample_rate: int, step_deg: float = 5.0) -> HRIRSet:
        """The model sampled on :func:`sphere_grid` at ``sample_rate``."""
        grid = sphere_grid(step_deg)
        irs = self.impulse_responses(grid[:, 0].numpy(), grid[:, 1].numpy(), sample_rate)
        return HRIRSet(grid, torch.from_numpy(irs), int(sample_rate), name="spherical-head", model=self)


def _left_first(path: Path, receivers: np.ndarray, kind: str, units: str, n_measurements: int) -> np.ndarray:
    """Per measurement, whether receiver 0 is the left ear (larger lateral coordinate y; ties: SOFA order).

    ``receivers`` is SOFA's ``ReceiverPosition``: ``[R, C]``, ``[R, C, 1]`` or per measurement
    ``[R, C, M]``, with ``C = 3`` coordinates of type ``kind`` (cartesian x, y, z; or spherical azimuth
    anticlockwise from +x, elevation, radius).
    """
    if receivers.ndim == 2:
        receivers = receivers[..., None]
    if receivers.ndim != 3 or receivers.shape[0] != 2 or receivers.shape[1] != 3:
        raise MediaError(
            path, f"ReceiverPosition must be [2, 3] or [2, 3, M] (two ears), got {receivers.shape}"
        )
    if receivers.shape[2] not in (1, n_measurements):
        raise MediaError(
            path,
            f"ReceiverPosition has {receivers.shape[2]} positions per ear for {n_measurements} measurements",
        )
    if "spherical" in kind:
        scale = math.pi / 180.0 if "degree" in units else 1.0
        az, el, radius = receivers[:, 0] * scale, receivers[:, 1] * scale, receivers[:, 2]
        lateral = radius * np.cos(el) * np.sin(az)
    elif "cartesian" in kind:
        lateral = receivers[:, 1]
    else:
        raise MediaError(path, f"unsupported ReceiverPosition_Type {kind!r}")
    return np.broadcast_to(lateral[0] >= lateral[1], (n_measurements,))


def read_sofa(path: str | os.PathLike, sample_rate: int | None = None) -> HRIRSet:
    """Read a ``SimpleFreeFieldHRIR`` SOFA file into an :class:`HRIRSet` (float64).

    Source positions (spherical degrees or cartesian) are converted to the project frame; receivers are
    ordered ``[L, R]`` by their lateral (y, +left) coordinate, read from ``ReceiverPosition`` in its
    ``ReceiverPosition_Type`` (cartesian, or spherical azimuth/elevation/radius), per measurement when
    the positions are given per measurement (``[R, C, M]``); non-zero ``Data_Delay`` is applied as whole
    samples.
    The set is resampled to ``sample_rate`` when given. Any problem raises :class:`MediaError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "HRIR file not found; pass an existing SimpleFreeFieldHRIR .sofa file")
    import sofar

    try:
        sofa = sofar.read_sofa(str(path), verify=False, verbose=False)
    except Exception as exc:  # sofar/netCDF raise many types for corrupt files
        raise MediaError(path, f"not a readable SOFA file ({type(exc).__name__}: {exc})") from None
    convention = str(getattr(sofa, "GLOBAL_SOFAConventions", ""))
    if convention != "SimpleFreeFieldHRIR":
        raise MediaError(path, f"SOFA convention is {convention!r}; only SimpleFreeFieldHRIR is supported")
    try:
        irs = np.asarray(sofa.Data_IR, dtype=np.float64)
        rate = float(np.asarray(sofa.Data_SamplingRate).reshape(-1)[0])
        positions = np.atleast_2d(np.asarray(sofa.SourcePosition, dtype=np.float64))
        pos_type = str(sofa.SourcePosition_Type).lower()
        units = str(sofa.SourcePosition_Units).lower()
        receivers = np.asarray(sofa.ReceiverPosition, dtype=np.float64)
        receiver_type = str(getattr(sofa, "ReceiverPosition_Type", "cartesian")).lower()
        receiver_units = str(getattr(sofa, "ReceiverPosition_Units", "metre")).lower()
        delays = np.asarray(getattr(sofa, "Data_Delay", np.zeros((1, 2))), dtype=np.float64)
    except (AttributeError, ValueError, TypeError) as exc:
        raise MediaError(path, f"SOFA file lacks a required field ({exc})") from None
    if irs.ndim != 3 or irs.shape[1] != 2 or irs.shape[2] < 1:
        raise MediaError(path, f"Data_IR must be [M, 2, N] (two ears), got {irs.shape}")
    if positions.shape[0] == 1 and irs.shape[0] > 1:
        positions = np.repeat(positions, irs.shape[0], axis=0)
    if positions.shape != (irs.shape[0], 3):
        raise MediaError(path, f"SourcePosition {positions.shape} does not match {irs.shape[0]} measurements")
    if not np.isfinite(irs).all() or rate <= 0 or rate != round(rate):
        raise MediaError(path, f"invalid data (non-finite IRs or sample rate {rate})")
    if "spherical" in pos_type:
        # SOFA spherical = (azimuth anticlockwise from +x, elevation up, radius): our frame already.
        scale = math.pi / 180.0 if "degree" in units else 1.0
        az, el = positions[:, 0] * scale, positions[:, 1] * scale
    elif "cartesian" in pos_type:
        x, y, z = positions.T
        az, el = np.arctan2(y, x), np.arctan2(z, np.hypot(x, y))
    else:
        raise MediaError(path, f"unsupported SourcePosition_Type {pos_type!r}")
    left_first = _left_first(path, receivers, receiver_type, receiver_units, irs.shape[0])
    irs = np.where(left_first[:, None, None], irs, irs[:, ::-1])  # reorder each measurement to [L, R]
    delays = np.broadcast_to(np.round(delays).astype(int).reshape(-1, 2)[:, :2], (irs.shape[0], 2))
    if delays.any():
        max_delay = int(delays.max())
        padded = np.zeros((*irs.shape[:2], irs.shape[2] + max_delay))
        for m, r in np.ndindex(*irs.shape[:2]):
            padded[m, r, delays[m, r] : delays[m, r] + irs.shape[2]] = irs[m, r]
        irs = padded
    az = np.angle(np.exp(1j * az))  # wrap to (−π, π]
    hrir = HRIRSet(
        directions=torch.from_numpy(np.stack([az, el], axis=-1)),
        irs=torch.from_numpy(np.ascontiguousarray(irs)),
        sample_rate=int(rate),
        name=str(path),
    )
    return hrir if sample_rate is None else hrir.resample(sample_rate)


class HRIRSource(Protocol):
    """A registry entry: builds the set at a sample rate."""

    def __call__(self, sample_rate: int) -> HRIRSet: ...


HRIR_SETS: Registry[HRIRSource] = Registry("HRIR set")


@HRIR_SETS.register("spherical-head")
def _spherical_head(sample_rate: int) -> HRIRSet:
    """Analytic Brown & Duda spherical head, 8.75 cm radius, ears at ±90°, 5° grid."""
    return SphericalHead().to_set(sample_rate)


@HRIR_SETS.register("mit-kemar")
def _mit_kemar(sample_rate: int) -> HRIRSet:
    """MIT KEMAR normal pinna (710 directions, elevation ≥ −40°) from Debian's libmysofa1."""
    if not KEMAR_SOFA_PATH.is_file():
        raise MediaError(
            KEMAR_SOFA_PATH,
            f"MIT KEMAR HRIRs are not installed; install them with `apt-get install {KEMAR_DEBIAN_PACKAGE}` "
            "or pass the path of a SimpleFreeFieldHRIR .sofa file",
        )
    hrir = read_sofa(KEMAR_SOFA_PATH, sample_rate)
    hrir.name = "mit-kemar"
    return hrir


def list_hrirs(pattern: str = "*") -> list[str]:
    """Registered HRIR set names matching a glob."""
    return HRIR_SETS.list(pattern)


@functools.lru_cache(maxsize=16)
def _load_cached(name_or_path: str, sample_rate: int, mtime: float) -> HRIRSet:
    if name_or_path in HRIR_SETS:
        return HRIR_SETS.get(name_or_path)(sample_rate)
    return read_sofa(name_or_path, sample_rate)


def load_hrir(name_or_path: str | os.PathLike | HRIRSet, sample_rate: int) -> HRIRSet:
    """An HRIR set at ``sample_rate`` from a registry name, a SOFA path, or an existing set (resampled).

    Results are cached per (name/path, rate, file mtime); treat the returned set as read-only.
    Unknown names raise :class:`~spatialgen.registry.UnknownNameError`; missing/invalid files raise
    :class:`MediaError`.
    """
    if isinstance(name_or_path, HRIRSet):
        return name_or_path.resample(sample_rate)
    key = os.fspath(name_or_path)
    if key in HRIR_SETS:
        return _load_cached(key, int(sample_rate), 0.0)
    path = Path(key)
    if path.is_file():
        return _load_cached(str(path.resolve()), int(sample_rate), path.stat().st_mtime)
    if path.suffix.lower() == ".sofa" or os.sep in key:
        raise MediaError(path, "HRIR file not found; pass an existing SimpleFreeFieldHRIR .sofa file")
    return HRIR_SETS.get(key)(int(sample_rate))  # raises UnknownNameError with suggestions
