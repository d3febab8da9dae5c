"""Every registered codec: properties, shapes, dtypes, lengths and per-channel coding."""

from __future__ import annotations

import math

import pytest
import torch

from spatialgen.codecs import AudioCodec, create_codec, list_codecs
from spatialgen.errors import InvalidAudioError
from spatialgen.registry import UnknownNameError

# Full-size official DACs (~75 M params) are built on the meta device here: properties only. The
# full-size MMAudio VAE codecs (~280-430 M params) are covered in test_mmaudio_codec.py.
FULL_SIZE = {"dac_44khz", "dac_24khz", "dac_16khz"}
SMALL = [n for n in list_codecs() if n not in FULL_SIZE | {"mmaudio_vae_16k", "mmaudio_vae_44k"}]

# (sample_rate, hop, Q, codebook_size, latent_dim) from descript-audio-codec conf/final/*.yml.
OFFICIAL = {
    "dac_44khz": (44100, 512, 9, 1024, 1024),
    "dac_24khz": (24000, 320, 32, 1024, 1024),
    "dac_16khz": (16000, 320, 12, 1024, 1024),
}

_CACHE: dict[str, AudioCodec] = {}


def small(name: str) -> AudioCodec:
    """Random-init (or, for k-means codecs, quickly fitted) codec, built once per session."""
    if name not in _CACHE and name == "stft_vq":  # an unfitted k-means codec refuses to encode
        noise = 0.1 * torch.randn(2, 4, 8000, generator=torch.Generator().manual_seed(0))
        _CACHE[name] = create_codec(name, shape_size=16).fit(noise, iters=2)
    if name not in _CACHE:
        _CACHE[name] = create_codec(name, pretrained=False)
    return _CACHE[name]


def test_registry_lists_all_entries() -> None:
    assert set(list_codecs()) >= {"stft", "dac_44khz", "dac_24khz", "dac_16khz", "dac_tiny", "dac_synthetic"}
    assert list_codecs("dac_*khz") == ["dac_16khz", "dac_24khz", "dac_44khz"]


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown codec 'dac_44k'.*Did you mean 'dac_44khz'"):
        create_codec("dac_44k")


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_official_dac_properties(name: str) -> None:
    with torch.device("meta"):
        codec = create_codec(name, pretrained=False)
    sr, hop, q, size, dim = OFFICIAL[name]
    assert (codec.kind, codec.sample_rate, codec.hop_length) == ("discrete", sr, hop)
    assert (codec.num_codebooks, codec.codebook_size, codec.latent_dim) == (q, size, dim)
    assert codec.frame_rate == pytest.approx(sr / hop)
    assert codec.num_frames(5 * sr) == math.ceil(5 * sr / hop)
    # Stride-5 transposed convs lose 1 sample each at 1/8 of the output rate: 8 samples short.
    assert codec.num_samples(10) == 10 * hop - (8 if sr != 44100 else 0)
    assert not codec.has_weight_norm and not any(p.requires_grad for p in codec.parameters())


def test_visage_frame_count() -> None:
    """ViSAGe: 5 s at 44.1 kHz -> 431 DAC frames at 86.13 Hz (jaeyeonkim99/visage ``data/infer_dac.py``)."""
    with torch.device("meta"):
        codec = create_codec("dac_44khz")
    assert codec.num_frames(5 * 44100) == 431
    assert codec.frame_rate == pytest.approx(86.1328125)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("length", [1, 333, 800])
def test_shapes_dtypes_lengths(name: str, length: int) -> None:
    codec = small(name)
    x = 0.1 * torch.randn(2, 3, length)
    out = codec.encode(x, sample_rate=codec.sample_rate)
    n_frames = codec.num_frames(length)
    assert n_frames == math.ceil(length / codec.hop_length)
    if codec.kind == "discrete":
        assert out.shape == (2, 3, codec.num_codebooks, n_frames) and out.dtype == torch.int64
        assert int(out.min()) >= 0 and int(out.max()) < codec.codebook_size
    else:
        assert out.shape == (2, 3, codec.latent_dim, n_frames) and out.dtype == torch.float32
    lat = codec.encode_latents(x)
    assert lat.shape == (2, 3, codec.latent_dim, n_frames)
    y = codec.decode(out)
    assert y.shape == (2, 3, codec.num_samples(n_frames)) and y.dtype == torch.float32
    assert codec.decode(out, length=length).shape == (2, 3, length)
    assert codec.decode_latents(lat, length=length).shape == (2, 3, length)


@pytest.mark.parametrize("name", SMALL)
def test_float64_audio_keeps_dtype(name: str) -> None:
    codec = small(name)
    x = 0.1 * torch.randn(1, 2, 400, dtype=torch.float64)
    lat = codec.encode_latents(x)
    assert lat.dtype == torch.float64
    assert codec.decode_latents(lat, length=400).dtype == torch.float64


@pytest.mark.parametrize("name", SMALL)
def test_decode_length_exact_for_any_length(name: str) -> None:
    codec = small(name)
    hop = codec.hop_length
    for length in (1, hop - 1, hop, hop + 1, 3 * hop - 1):
        enc = codec.encode(0.1 * torch.randn(1, 1, length))
        assert enc.shape[-1] == codec.num_frames(length)
        assert codec.decode(enc, length=length).shape[-1] == length
    with pytest.raises(ValueError, match=r"length=.*needs"):
        codec.decode(enc, length=enc.shape[-1] * hop + 1)


@pytest.mark.parametrize("name", SMALL)
def test_foa_channels_coded_independently(name: str) -> None:
    """A 4-channel FOA clip codes exactly like each channel alone (channels folded into the batch)."""
    codec = small(name)
    x = 0.2 * torch.randn(2, 4, 700)
    joint = codec.encode(x)
    alone = torch.cat([codec.encode(x[:, c : c + 1]) for c in range(4)], dim=1)
    if codec.kind == "discrete":
        assert torch.equal(joint, alone)
    else:
        torch.testing.assert_close(joint, alone, rtol=0, atol=1e-6)
    y = codec.decode(joint, length=700)
    y_alone = torch.cat([codec.decode(joint[:, c : c + 1], length=700) for c in range(4)], dim=1)
    torch.testing.assert_close(y, y_alone, rtol=0, atol=1e-6)
    # Changing one channel leaves the others' codes untouched.
    x2 = x.clone()
    x2[:, 2] = 0.2 * torch.randn(2, 700)
    other = codec.encode(x2)
    keep = [0, 1, 3]
    if codec.kind == "discrete":
        assert torch.equal(other[:, keep], joint[:, keep])
        assert not torch.equal(other[:, 2], joint[:, 2])
    else:
        torch.testing.assert_close(other[:, keep], joint[:, keep], rtol=0, atol=1e-6)
        assert (other[:, 2] - joint[:, 2]).abs().max() > 1e-2


@pytest.mark.parametrize("name", SMALL)
def test_bad_audio_raises_clear_errors(name: str) -> None:
    codec = small(name)
    with pytest.raises(InvalidAudioError, match=r"\[batch, channels, samples\]"):
        codec.encode(torch.randn(4, 100))
    with pytest.raises(InvalidAudioError, match="resample"):
        codec.encode(torch.randn(1, 1, 100), sample_rate=codec.sample_rate + 1)
    with pytest.raises(InvalidAudioError, match="NaN"):
        codec.encode(torch.full((1, 1, 100), float("nan")))
    with pytest.raises(InvalidAudioError, match="floating"):
        codec.encode(torch.ones(1, 1, 100, dtype=torch.int16))
    with pytest.raises(ValueError, match="latent_dim"):
        codec.decode_latents(torch.zeros(1, 1, codec.latent_dim + 1, 3))


@pytest.mark.parametrize("name", SMALL)
def test_frozen_codec_stays_in_eval(name: str) -> None:
    codec = small(name)
    codec.train()
    assert not codec.training and not any(m.training for m in codec.modules())
    assert not any(p.requires_grad for p in codec.parameters())


def test_continuous_codec_has_no_codes() -> None:
    codec = small("stft")
    assert codec.num_codebooks is None and codec.codebook_size is None
    with pytest.raises(TypeError, match="continuous"):
        codec.codes_to_latents(torch.zeros(1, 1, 1, 1, dtype=torch.long))


def test_discrete_codes_validated() -> None:
    codec = small("dac_tiny")
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 64\)"):
        codec.decode(torch.full((1, 1, 4, 3), 64))
    with pytest.raises(ValueError, match="codebooks"):
        codec.decode(torch.zeros(1, 1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        codec.decode(torch.zeros(1, 1, 4, 3))


@pytest.mark.slow
def test_dac_44khz_short_forward() -> None:
    codec = create_codec("dac_44khz", pretrained=False)
    x = 0.1 * torch.randn(1, 4, 4410)
    codes = codec.encode(x, sample_rate=44100)
    assert codes.shape == (1, 4, 9, 9) and codes.dtype == torch.int64
    assert codec.decode(codes, length=4410).shape == (1, 4, 4410)
