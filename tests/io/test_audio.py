"""spatialgen.io.audio: round trips, layout checks, resampling, error paths, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from spatialgen.errors import InvalidAudioError, MediaError
from spatialgen.io import audio_info, read_audio, write_audio

SR = 16000
LSB16 = 1 / 32768  # libsndfile writes x*32767 and reads n/32768: at most one LSB apart


def _signal(channels: int, n: int = 4000) -> torch.Tensor:
    return (torch.rand(channels, n, dtype=torch.float64) * 1.8 - 0.9).to(torch.float32)


@pytest.mark.parametrize("ext", ["wav", "flac"])
@pytest.mark.parametrize("channels", [1, 2, 4])
def test_round_trip_pcm16(tmp_path, ext, channels):
    x = _signal(channels)
    path = write_audio(tmp_path / f"a.{ext}", x, SR)
    y, sr = read_audio(path, channels=channels, sample_rate=SR)
    assert sr == SR and y.shape == x.shape and y.dtype == torch.float32
    assert (y - x).abs().max() <= LSB16 + 1e-7
    # Not a trivially passing check: the values really went through 16-bit quantisation.
    assert torch.equal(torch.round(y.double() * 32768), y.double() * 32768)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.n_frames) == (SR, channels, x.shape[1])
    assert info.duration == pytest.approx(x.shape[1] / SR)
    assert info.format == ext.upper() and info.subtype == "PCM_16"


def test_float_round_trip_is_exact_and_keeps_overrange(tmp_path):
    x = torch.tensor([[0.0, 1.5, -2.0, 0.123456789]], dtype=torch.float64)
    write_audio(tmp_path / "f.wav", x, SR, subtype="FLOAT")
    y, _ = read_audio(tmp_path / "f.wav", dtype=torch.float64)
    assert y.dtype == torch.float64
    assert torch.equal(y, x.to(torch.float32).to(torch.float64))


def test_mono_1d_input_and_slicing(tmp_path):
    x = torch.arange(SR, dtype=torch.float64) / SR - 0.5  # a ramp: every sample identifies its index
    write_audio(tmp_path / "m.wav", x, SR, subtype="FLOAT")
    y, _ = read_audio(tmp_path / "m.wav", start=0.25, duration=0.5, dtype=torch.float64)
    assert y.shape == (1, SR // 2)
    torch.testing.assert_close(y[0], x[SR // 4 : SR // 4 + SR // 2].float().double())


def test_pcm_clips_with_warning(tmp_path):
    x = torch.tensor([[0.5, 1.7, -3.0, -0.25]])
    with pytest.warns(UserWarning, match="clipped"):
        write_audio(tmp_path / "c.wav", x, SR)
    y, _ = read_audio(tmp_path / "c.wav")
    assert y[0, 1] == pytest.approx(32767 / 32768) and y[0, 2] == -1.0
    assert y[0, 0] == pytest.approx(0.5, abs=LSB16)


def test_channel_and_rate_mismatch(tmp_path):
    path = write_audio(tmp_path / "s.wav", _signal(2), SR)
    with pytest.raises(MediaError, match=r"s\.wav: has 2 audio channels, expected 4"):
        read_audio(path, channels=4)
    with pytest.raises(MediaError, match=r"16000 Hz, expected 48000 Hz.*resample=True"):
        read_audio(path, sample_rate=48000)


def test_resample_matches_analytic_sine(tmp_path):
    sr_in, sr_out, f0 = 48000, 16000, 440.0
    t = np.arange(sr_in) / sr_in
    write_audio(
        tmp_path / "hi.wav", torch.from_numpy(0.5 * np.sin(2 * np.pi * f0 * t)), sr_in, subtype="FLOAT"
    )
    y, sr = read_audio(tmp_path / "hi.wav", sample_rate=sr_out, resample=True, dtype=torch.float64)
    assert sr == sr_out and y.shape == (1, sr_out)
    ref = 0.5 * np.sin(2 * np.pi * f0 * np.arange(sr_out) / sr_out)
    inner = slice(200, -200)  # the polyphase filter's edge transients
    assert np.abs(y[0, inner].numpy() - ref[inner]).max() < 2e-3


def test_zero_length_file(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2)), SR)
    with pytest.raises(MediaError, match=r"empty\.wav: contains no audio samples"):
        read_audio(tmp_path / "empty.wav")


def test_nan_in_file(tmp_path):
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1]), SR, subtype="FLOAT")
    with pytest.raises(MediaError, match="NaN"):
        read_audio(tmp_path / "nan.wav")


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as err:
        read_audio(bad)
    assert str(bad) in str(err.value) and "unreadable" in str(err.value)
    with pytest.raises(MediaError, match="file not found"):
        read_audio(tmp_path / "missing.flac")
    with pytest.raises(MediaError, match="file not found"):
        audio_info(tmp_path / "missing.flac")


def test_start_past_end(tmp_path):
    write_audio(tmp_path / "s.wav", _signal(1, 1600), SR)
    with pytest.raises(MediaError, match="past the end"):
        read_audio(tmp_path / "s.wav", start=0.2)


@pytest.mark.parametrize(
    ("audio", "match"),
    [
        (torch.zeros(2, 3, 100), "must be"),
        (torch.tensor([[0.0, float("nan"), 0.0]]), "NaN"),
        (torch.zeros(2, 0), "no samples"),
        (torch.zeros(1000, 2), "more channels than samples"),
    ],
)
def test_write_rejects_bad_audio(tmp_path, audio, match):
    with pytest.raises(InvalidAudioError, match=match):
        write_audio(tmp_path / "x.wav", audio, SR)
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_replaces(tmp_path):
    target = tmp_path / "a.flac"
    write_audio(target, _signal(2), SR)
    first = target.read_bytes()
    with pytest.raises(ValueError, match="sample_rate"):
        write_audio(target, _signal(2), 0)
    with pytest.raises(MediaError, match="cannot store subtype"):
        write_audio(target, _signal(2), SR, subtype="FLOAT")  # FLAC has no float subtype
    assert target.read_bytes() == first
    write_audio(target, _signal(2, 800), SR)
    assert audio_info(target).n_frames == 800
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]  # no temp files left behind
