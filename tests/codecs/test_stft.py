"""STFT codec: exact inverse, and latents equal to a numpy STFT written from the definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialgen.codecs import STFTCodec, create_codec


def numpy_stft_latents(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[T] -> [2K, F]: pad to the hop, pad (n_fft - hop)/2 each side, sqrt-Hann frames, ortho rFFT."""
    n_frames = -(-len(x) // hop)
    x = np.pad(x, (0, n_frames * hop - len(x)))
    left = (n_fft - hop) // 2
    x = np.pad(x, (left, n_fft - hop - left))
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))
    frames = np.stack([x[f * hop : f * hop + n_fft] * window for f in range(n_frames)])
    spec = np.fft.rfft(frames, axis=-1) / np.sqrt(n_fft)
    return np.concatenate([spec.real, spec.imag], axis=-1).T


@pytest.mark.parametrize(("n_fft", "hop"), [(512, 128), (64, 32), (30, 10)])
def test_latents_match_numpy_reference(n_fft: int, hop: int) -> None:
    codec = STFTCodec(sample_rate=8000, n_fft=n_fft, hop_length=hop)
    x = torch.randn(2, 3, 1001, dtype=torch.float64)
    z = codec.encode(x)
    assert z.shape == (2, 3, 2 * (n_fft // 2 + 1), -(-1001 // hop))
    ref = numpy_stft_latents(x[1, 2].numpy(), n_fft, hop)
    np.testing.assert_allclose(z[1, 2].numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [1, 127, 128, 129, 1000, 4097])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_any_length(length: int, dtype: torch.dtype) -> None:
    codec = create_codec("stft")
    x = torch.randn(2, 4, length, dtype=dtype)
    y = codec.decode(codec.encode(x), length=length)
    assert y.shape == x.shape and y.dtype == dtype
    rel = float((y - x).norm() / x.norm())
    assert rel < (1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize(("n_fft", "hop", "compression"), [(256, 128, 1.0), (256, 64, 0.3), (400, 100, 0.5)])
def test_round_trip_configs(n_fft: int, hop: int, compression: float) -> None:
    codec = STFTCodec(sample_rate=16000, n_fft=n_fft, hop_length=hop, compression=compression)
    assert codec.frame_rate == 16000 / hop
    x = torch.randn(1, 2, 3333, dtype=torch.float64)
    z = codec.encode(x)
    y = codec.decode(z, length=3333)
    assert float((y - x).norm() / x.norm()) < 1e-10
    if compression != 1.0:  # compressed magnitude = |X|^c, same phase
        plain = STFTCodec(sample_rate=16000, n_fft=n_fft, hop_length=hop).encode(x)
        k = codec.latent_dim // 2
        cz, pz = torch.complex(z[:, :, :k], z[:, :, k:]), torch.complex(plain[:, :, :k], plain[:, :, k:])
        torch.testing.assert_close(cz.abs(), pz.abs() ** compression, rtol=1e-9, atol=1e-12)
        big = pz.abs() > 1e-3
        torch.testing.assert_close(torch.angle(cz)[big], torch.angle(pz)[big], rtol=0, atol=1e-9)


def test_parseval_energy() -> None:
    """Ortho FFT + sqrt-Hann at 50 % overlap (sum of w^2 = 1): latent energy equals signal energy."""
    codec = STFTCodec(sample_rate=16000, n_fft=256, hop_length=128)
    x = torch.zeros(1, 1, 4096, dtype=torch.float64)
    x[..., 512:3584] = torch.randn(3072, dtype=torch.float64)  # zero edges: no boundary frames cut
    z = codec.encode(x)
    k = codec.latent_dim // 2
    spec = torch.complex(z[:, :, :k], z[:, :, k:])
    weights = torch.full((k,), 2.0, dtype=torch.float64)
    weights[0] = weights[-1] = 1.0  # DC and Nyquist appear once in a real FFT
    energy = (spec.abs() ** 2 * weights[:, None]).sum()
    torch.testing.assert_close(energy, (x**2).sum(), rtol=1e-10, atol=0)


def test_differentiable() -> None:
    codec = create_codec("stft")
    x = torch.randn(1, 1, 500, requires_grad=True)
    codec.decode(codec.encode(x), length=500).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=1e-4, atol=1e-5)


def test_invalid_configs() -> None:
    with pytest.raises(ValueError, match="hop_length=512 must be in"):
        STFTCodec(n_fft=512, hop_length=512)
    with pytest.raises(ValueError, match="even"):
        STFTCodec(n_fft=511, hop_length=128)
    with pytest.raises(ValueError, match="compression"):
        STFTCodec(compression=0.0)
    with pytest.raises(ValueError, match="no weights"):
        create_codec("stft", pretrained="/some/weights.pth")
