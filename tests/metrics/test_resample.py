"""The metric path's sinc-Hann resampler equals its definition and torchaudio's resampler."""

import math

import numpy as np
import pytest
import torch

from spatialgen.metrics.functional.resample import sinc_resample

RATES = [(44100, 16000), (48000, 16000), (16000, 32000), (22050, 16000), (32000, 44100)]


def reference_resample(x: np.ndarray, orig_sr: int, new_sr: int, width: int = 6, rolloff: float = 0.99):
    """Direct sum of the definition: y[n] = Σ_k x[k] (base/orig) sinc(u) cos²(πu/2W), u = base(k/orig − n/new)."""
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    base = min(orig, new) * rolloff
    n_out = math.ceil(len(x) * new / orig)
    k = np.arange(len(x))
    y = np.empty(n_out)
    for n in range(n_out):
        u = base * (k / orig - n / new)
        h = np.where(np.abs(u) < width, np.sinc(u) * np.cos(np.pi * u / (2 * width)) ** 2, 0.0) * base / orig
        y[n] = (x * h).sum()
    return y


@pytest.mark.parametrize("orig, new", RATES)
def test_resampler_equals_its_definition(orig, new):
    x = np.random.RandomState(orig + new).randn(600)
    ours = sinc_resample(torch.from_numpy(x), orig, new).numpy()
    np.testing.assert_allclose(ours, reference_resample(x, orig, new), rtol=0, atol=1e-12)
    assert ours.shape == (math.ceil(600 * new / orig),)


@pytest.mark.parametrize("orig, new", RATES)
def test_resampler_equals_torchaudio(orig, new):
    ta = pytest.importorskip("torchaudio.functional")
    x = torch.randn(2, 3, 4000, generator=torch.Generator().manual_seed(1))
    ours = sinc_resample(x, orig, new)
    torch.testing.assert_close(ours, ta.resample(x, orig, new), rtol=0, atol=1e-6)  # same float32 taps
    ours64 = sinc_resample(x.double(), orig, new)
    torch.testing.assert_close(ours64, ta.resample(x.double(), orig, new), rtol=0, atol=1e-12)


def test_resampler_passes_a_tone_and_keeps_device_and_dtype():
    t = torch.arange(44100, dtype=torch.float64) / 44100
    y = sinc_resample(torch.sin(2 * math.pi * 1000 * t), 44100, 16000)
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(16000, dtype=torch.float64) / 16000)
    torch.testing.assert_close(y[200:-200], expected[200:-200], rtol=0, atol=1e-3)  # in-band: unity gain
    assert y.dtype == torch.float64 and y.device == t.device
    assert sinc_resample(t, 16000, 16000) is t
    with pytest.raises(ValueError, match="positive integers"):
        sinc_resample(t, 0, 16000)
