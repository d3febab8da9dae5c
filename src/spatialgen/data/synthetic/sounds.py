"""Sound classes of the synthetic scenes: one synthetic sound, one shape and one colour per class.

Every class owns a frequency band, and classes never share bands (guard gaps of at least 150 Hz), so
the direction of each source in a mixture can be measured on its own by band-limited intensity DOA
(:func:`spatialgen.spatial.doa.intensity_doa` with ``band=cls.band``). All bands lie below 6.6 kHz, so
a sample rate of 16 kHz (:data:`MIN_SAMPLE_RATE`) or more carries all of them.

A generator returns ``(signal, active)``: the mono waveform (float64, unit RMS over the clip, exactly
band-limited to the class band by an FFT-domain raised-cosine window) and a boolean per-sample mask of
when the sound is on (gated classes pause; the others are always on). The mask becomes the per-frame
``activity`` in the metadata and the object's brightness in the video.

Classes (name: sound — shape, colour):

- ``harmonic``: harmonic tone (f0 100–125 Hz, partials with slow vibrato) — disc, red.
- ``chirp``: repeated linear sweeps up or down — square, green.
- ``am_tone``: sine tone with slow amplitude modulation — triangle, blue.
- ``siren``: frequency-modulated (FM) tone — ring, yellow.
- ``noise_burst``: band-passed noise, gated on/off in 0.25–0.9 s segments — diamond, magenta.
- ``clicks``: trains of short clicks (14–24 Hz) in bursts separated by pauses — cross, cyan.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spatialgen.registry import Registry

__all__ = [
    "MIN_SAMPLE_RATE",
    "SOUND_CLASSES",
    "SoundClass",
    "band_limit",
    "get_sound_class",
    "list_sound_classes",
]

MIN_SAMPLE_RATE = 16000
_TAPER_HZ = 40.0  # raised-cosine edge width inside each band

Generator = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SoundClass:
    """A sound class: its name, band ``(f_lo, f_hi)`` in Hz, visual shape, RGB colour and generator."""

    name: str
    band: tuple[float, float]
    shape: str
    colour: tuple[int, int, int]
    generate: Generator

    def synthesize(
        self, rng: np.random.Generator, n_samples: int, sample_rate: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(signal [n_samples] float64, active [n_samples] bool)``: unit RMS, limited to ``band``."""
        if sample_rate < MIN_SAMPLE_RATE:
            raise ValueError(
                f"sample_rate must be >= {MIN_SAMPLE_RATE} Hz for the synthetic classes, got {sample_rate}"
            )
        raw, active = self.generate(rng, n_samples, sample_rate)
        signal = band_limit(raw, sample_rate, self.band)
        rms = float(np.sqrt(np.mean(signal**2)))
        if rms == 0.0:  # cannot happen for the built-in classes; guards custom generators
            raise ValueError(f"sound class {self.name!r} produced silence")
        return signal / rms, active


SOUND_CLASSES: Registry[SoundClass] = Registry("sound class")


def band_limit(x: np.ndarray, sample_rate: int, band: tuple[float, float]) -> np.ndarray:
    """Keep only ``band`` of ``x [..., T]`` with an FFT-domain window (raised-cosine edges inside the band).

    Bins outside ``band`` become exactly zero, so sources of different classes do not overlap in
    frequency (up to the slight spreading by their motion).
    """
    lo, hi = band
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    rise = np.clip((freqs - lo) / _TAPER_HZ, 0.0, 1.0)
    fall = np.clip((hi - freqs) / _TAPER_HZ, 0.0, 1.0)
    window = np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * window, n=x.shape[-1], axis=-1)


def _time(n_samples: int, sample_rate: int) -> np.ndarray:
    return np.arange(n_samples) / sample_rate


def _always_on(n_samples: int) -> np.ndarray:
    return np.ones(n_samples, dtype=bool)


def _gate(
    rng: np.random.Generator,
    n_samples: int,
    sample_rate: int,
    on: tuple[float, float],
    off: tuple[float, float],
) -> np.ndarray:
    """Random on/off segments (durations in seconds), starting on; the first segment is at least 0.4 s."""
    mask = np.zeros(n_samples, dtype=bool)
    pos, state, first = 0, True, True
    while pos < n_samples:
        lo, hi = on if state else off
        seconds = rng.uniform(max(lo, 0.4) if first else lo, max(hi, 0.4) if first else hi)
        length = max(1, round(seconds * sample_rate))
        mask[pos : pos + length] = state
        pos, state, first = pos + length, not state, False
    return mask


def _smooth_envelope(mask: np.ndarray, sample_rate: int, ramp_s: float = 0.01) -> np.ndarray:
    """A 0/1 mask with 10-ms raised-cosine ramps (no clicks at gate edges)."""
    n = max(1, round(ramp_s * sample_rate))
    kernel = np.hanning(2 * n + 1)
    kernel /= kernel.sum()
    return np.convolve(mask.astype(np.float64), kernel, mode="same")


def _harmonic(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    t = _time(n, sr)
    f0 = rng.uniform(100.0, 125.0)
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7))
    return x, _always_on(n)


def _chirp(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    t = _time(n, sr)
    period = rng.uniform(0.3, 0.7)
    f_start, f_end = (750.0, 1150.0) if rng.random() < 0.5 else (1150.0, 750.0)
    frac = np.mod(t + rng.uniform(0, period), period) / period
    freq = f_start + (f_end - f_start) * frac
    return np.sin(2 * np.pi * np.cumsum(freq) / sr), _always_on(n)


def _am_tone(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    t = _time(n, sr)
    carrier = rng.uniform(1500.0, 1700.0)
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * t + rng.uniform(0, 2 * np.pi))
    return envelope * np.sin(2 * np.pi * carrier * t), _always_on(n)


def _siren(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    t = _time(n, sr)
    freq = 2450.0 + 250.0 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr), _always_on(n)


def _noise_burst(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    mask = _gate(rng, n, sr, on=(0.4, 0.9), off=(0.25, 0.5))
    return rng.standard_normal(n) * _smooth_envelope(mask, sr), mask


def _clicks(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    mask = _gate(rng, n, sr, on=(0.5, 1.2), off=(0.25, 0.5))
    rate = rng.uniform(14.0, 24.0)
    x = np.zeros(n)
    step = sr / rate
    click_len = round(0.004 * sr)
    click = np.hanning(click_len) * np.sin(2 * np.pi * 5600.0 * np.arange(click_len) / sr)
    for start in np.arange(rng.uniform(0, step), n - click_len, step).astype(int):
        if mask[start]:
            x[start : start + click_len] += click
    return x, mask


for _cls in (
    SoundClass("harmonic", (200.0, 600.0), "disc", (230, 40, 40), _harmonic),
    SoundClass("chirp", (750.0, 1150.0), "square", (40, 200, 40), _chirp),
    SoundClass("am_tone", (1400.0, 1800.0), "triangle", (50, 90, 245), _am_tone),
    SoundClass("siren", (2000.0, 2900.0), "ring", (235, 215, 30), _siren),
    SoundClass("noise_burst", (3200.0, 4400.0), "diamond", (225, 40, 225), _noise_burst),
    SoundClass("clicks", (4800.0, 6600.0), "cross", (30, 215, 225), _clicks),
):
    SOUND_CLASSES.register(_cls.name, _cls)


def get_sound_class(name: str) -> SoundClass:
    """The sound class registered as ``name`` (unknown names raise with close-match suggestions)."""
    return SOUND_CLASSES.get(name)


def list_sound_classes(pattern: str = "*") -> list[str]:
    """Names of the registered sound classes matching a glob, sorted."""
    return SOUND_CLASSES.list(pattern)


def _check_bands() -> None:
    """Bands of the built-in classes are disjoint (import-time guard for edits to the table)."""
    bands = sorted(SOUND_CLASSES.get(n).band for n in SOUND_CLASSES.list())
    for (_, hi), (lo, _) in itertools.pairwise(bands):
        if lo - hi < 100.0:
            raise RuntimeError(f"synthetic sound bands overlap or touch: {bands}")


_check_bands()
