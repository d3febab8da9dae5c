"""Binaural latents: per-ear mono coding, joint normalisation that keeps the interaural level ratio."""

import pytest
import torch

from spatialgen.codecs import create_codec
from spatialgen.errors import InvalidAudioError
from spatialgen.models.visaudio import BinauralLatentCoder, LatentNormalizer, joint_peak_normalize


def _binaural(gain_r=0.25, n=4000):
    gen = torch.Generator().manual_seed(0)
    mono = torch.randn(3, 1, n, generator=gen, dtype=torch.float64) * 0.3
    return torch.cat((mono, gain_r * mono), dim=1)  # right ear 12 dB quieter


def test_joint_peak_keeps_level_ratio():
    x = _binaural()
    y = joint_peak_normalize(x, 0.95)
    torch.testing.assert_close(y.abs().amax(dim=(1, 2)), torch.full((3,), 0.95, dtype=torch.float64))
    torch.testing.assert_close(
        y[:, 1].norm(dim=-1) / y[:, 0].norm(dim=-1), torch.full((3,), 0.25, dtype=torch.float64)
    )
    assert torch.equal(joint_peak_normalize(torch.zeros(1, 2, 5)), torch.zeros(1, 2, 5))
    with pytest.raises(InvalidAudioError):
        joint_peak_normalize(torch.zeros(2, 5))


def test_joint_normalisation_preserves_ild():
    """One statistic for both ears: normalised latents keep the ears' ratio (per-ear stats would erase it)."""
    codec = create_codec("stft", n_fft=64, hop_length=16)
    coder = BinauralLatentCoder(codec, peak=0.95)
    raw = coder.encode(_binaural(), normalize=False)
    coder.normalizer.fit(raw)
    z = coder.encode(_binaural())
    zero = coder.normalizer.normalize(torch.zeros(1, 1, codec.latent_dim, 1, dtype=torch.float64))
    ild = (z[:, 1] - zero[:, 0]).norm() / (z[:, 0] - zero[:, 0]).norm()
    assert float(ild) == pytest.approx(0.25, rel=1e-9)
    # control: normalising each ear with its own statistics erases most of the level difference
    per_ear = [LatentNormalizer(codec.latent_dim).fit(raw[:, e : e + 1]).normalize(raw[:, e]) for e in (0, 1)]
    assert float(per_ear[1].norm() / per_ear[0].norm()) > 0.8
    # statistics are pooled over both ears: the per-channel mean of the normalised pair is 0, the std 1
    flat = z.transpose(-2, -1).reshape(-1, z.shape[-2])
    torch.testing.assert_close(
        flat.mean(0), torch.zeros(flat.shape[1], dtype=torch.float64), atol=1e-7, rtol=0
    )
    live = coder.normalizer.std > 1e-4  # imag(DC), imag(Nyquist) are identically 0
    assert int(live.sum()) == codec.latent_dim - 2
    torch.testing.assert_close(
        flat.std(0)[live], torch.ones(int(live.sum()), dtype=torch.float64), atol=1e-6, rtol=0
    )
    # decode inverts the normalisation and the codec (ears kept apart)
    back = coder.decode(z, length=4000)
    torch.testing.assert_close(back, joint_peak_normalize(_binaural(), 0.95), atol=1e-9, rtol=0)


def test_normalizer_roundtrip_and_errors():
    norm = LatentNormalizer(3)
    with torch.no_grad():
        norm.mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        norm.std.copy_(torch.tensor([2.0, 0.5, 4.0]))
    x = torch.randn(2, 2, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
    assert set(norm.state_dict()) == {"mean", "std"}  # saved with the model
    with pytest.raises(ValueError, match="latents must be"):
        norm.normalize(torch.zeros(2, 2, 4, 7))
    with pytest.raises(InvalidAudioError, match="binaural"):
        BinauralLatentCoder(create_codec("stft", n_fft=64, hop_length=16)).encode(torch.zeros(1, 4, 100))
