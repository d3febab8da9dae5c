"""MMAudio's log-mel front end against a float64 numpy reference written from the formulas.

Reference (hkchengrex/MMAudio ``mmaudio/ext/mel_converter.py``): clamp to [-1, 1], reflect-pad
``(n_fft - hop) / 2`` per side, frames every ``hop`` with no centring, periodic Hann window, real FFT,
``sqrt(|X|² + 1e-9)``, Slaney mel filterbank (librosa's default, built here by loops over bins from the
Slaney mel scale), ``max(·, 1e-5)``, then ``log10`` (16 kHz) or ``ln`` (44.1 kHz).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.codecs.mmaudio_codec import MMAUDIO_CODECS
from spatialgen.codecs.mmaudio_mel import MelConfig, MelFrontEnd, slaney_mel_filterbank
from spatialgen.data.synthetic.sounds import get_sound_class

MEL_16K = MMAUDIO_CODECS["mmaudio_vae_16k"].mel
MEL_44K = MMAUDIO_CODECS["mmaudio_vae_44k"].mel


def ref_mel_scale(f: float) -> float:
    """Slaney: 3 mel per 200 Hz up to 1 kHz (15 mel), then 27 mel per factor 6.4 in frequency."""
    return f * 3.0 / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def ref_mel_inverse(m: float) -> float:
    return m * 200.0 / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)


def ref_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    lo, hi = ref_mel_scale(fmin), ref_mel_scale(fmax)
    pts = [ref_mel_inverse(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = pts[m], pts[m + 1], pts[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if left < f <= centre:
                fb[m, k] = (f - left) / (centre - left)
            elif centre < f < right:
                fb[m, k] = (right - f) / (right - centre)
        fb[m] *= 2.0 / (right - left)  # Slaney area normalisation
    return fb


def ref_log_mel(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    assert cfg.win_length == cfg.n_fft  # both MMAudio modes
    x = np.clip(x.astype(np.float64), -1.0, 1.0)
    pad = (cfg.n_fft - cfg.hop_length) // 2
    x = np.pad(x, (pad, pad), mode="reflect")
    n_frames = (len(x) - cfg.n_fft) // cfg.hop_length + 1
    n = np.arange(cfg.n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.n_fft)  # periodic Hann
    frames = np.stack([x[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] for i in range(n_frames)], 1)
    spec = np.fft.rfft(frames * window[:, None], axis=0)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = np.maximum(ref_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax) @ mag, 1e-5)
    return np.log10(mel) if cfg.log == "log10" else np.log(mel)


def synthetic(name: str, n: int, sr: int, seed: int = 0) -> np.ndarray:
    signal, _ = get_sound_class(name).synthesize(np.random.default_rng(seed), n, sr)
    return 0.3 * signal


@pytest.mark.parametrize("cfg", [MEL_16K, MEL_44K], ids=["16k", "44k"])
def test_filterbank_equals_formula(cfg: MelConfig) -> None:
    ours = slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax).numpy()
    ref = ref_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)
    assert (ref.sum(1) > 0).all()  # no empty filter at these sizes
    stored = MelFrontEnd(cfg).mel_basis
    assert stored.dtype == torch.float32  # as librosa returns it (MMAudio stores it so)
    np.testing.assert_allclose(stored.double().numpy(), ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    ("cfg", "sound", "n"),
    [(MEL_16K, "chirp", 8192), (MEL_16K, "noise_burst", 5000), (MEL_44K, "siren", 11025)],
)
def test_log_mel_equals_reference(cfg: MelConfig, sound: str, n: int) -> None:
    x = synthetic(sound, n, cfg.sample_rate)
    x[100:140] = 1.7  # beyond full scale: MMAudio clamps to [-1, 1] first
    x[-3000:] = 0.0  # silence: exercises the 1e-5 floor
    ref = ref_log_mel(x, cfg)
    front = MelFrontEnd(cfg)
    ours32 = front(torch.from_numpy(x).float()[None])[0].numpy()
    ours64 = front(torch.from_numpy(x)[None])[0].numpy()
    assert ours32.shape == ref.shape == (cfg.n_mels, n // cfg.hop_length)
    np.testing.assert_allclose(ours64, ref, rtol=0, atol=1e-6)  # float32 filterbank is the only rounding
    # float32 (as MMAudio runs): the STFT's rounding noise is ~1e-7 of each frame's peak, which is
    # large in log terms only in bins near the floor; so compare the mel energies against the peak.
    base = 10.0 if cfg.log == "log10" else math.e
    err = np.abs(base**ours32 - base**ref) / (base**ref).max(axis=0, keepdims=True)
    assert err.max() < 2e-6
    floor = math.log10(1e-5) if cfg.log == "log10" else math.log(1e-5)
    assert ref[:, -2].max() == pytest.approx(floor)  # the silent tail sits on the floor


def test_log_base_per_mode() -> None:
    """The same magnitude gives log10 at 16 kHz and ln at 44.1 kHz: values differ by a factor ln(10)."""
    cfg_10 = MelConfig(16000, 1024, 1024, 256, 80, 0.0, 8000.0, "log10")
    cfg_e = MelConfig(16000, 1024, 1024, 256, 80, 0.0, 8000.0, "ln")
    x = torch.from_numpy(synthetic("harmonic", 4096, 16000))[None]
    torch.testing.assert_close(MelFrontEnd(cfg_e)(x), MelFrontEnd(cfg_10)(x) * math.log(10.0))
    with pytest.raises(ValueError, match="'log10' or 'ln'"):
        MelFrontEnd(MelConfig(16000, 1024, 1024, 256, 80, 0.0, 8000.0, "log2"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cfg", "n", "frames"), [(MEL_16K, 128000, 500), (MEL_44K, 353280, 690)], ids=["16k", "44k"]
)
def test_published_clip_lengths(cfg: MelConfig, n: int, frames: int) -> None:
    """8 s clips: 128000 samples -> 500 mel frames (16k), 353280 -> 690 (44.1k), then /2 by the VAE."""
    front = MelFrontEnd(cfg)
    assert front.num_frames(n) == frames
    assert front(torch.zeros(1, n)).shape == (1, cfg.n_mels, frames)


def test_too_short_for_reflect_padding() -> None:
    with pytest.raises(ValueError, match="more than 384 samples"):
        MelFrontEnd(MEL_16K)(torch.zeros(1, 300))
