"""The ``visaudio-mmaudio-*`` entries: one per network MMAudio released, converted on load (shown on a
small MMAudio-layout file), a model card that says what they are, and one line naming every missing file
offline."""

from __future__ import annotations

import pytest
import torch

import tests.models.visaudio.test_convert as official
from spatialgen.models.visaudio import config_from_mmaudio
from spatialgen.weights import WeightsNotFoundError
from zoo import get_entry, load_pretrained, model_card
from zoo.mmaudio import MMAUDIO_ENTRIES, MMAUDIO_EXACT, MMAudioSize, mmaudio_loader

RELEASED = {  # hkchengrex/MMAudio weights/ (MMAudio's README)
    "visaudio-mmaudio-s-16k": ("S_16k", "mmaudio_small_16k.pth", "mmaudio_vae_16k", 16000),
    "visaudio-mmaudio-s-44k": ("S_44k", "mmaudio_small_44k.pth", "mmaudio_vae_44k", 44100),
    "visaudio-mmaudio-m-44k": ("M_44k", "mmaudio_medium_44k.pth", "mmaudio_vae_44k", 44100),
    "visaudio-mmaudio-l-44k": ("L_44k", "mmaudio_large_44k.pth", "mmaudio_vae_44k", 44100),
    "visaudio-mmaudio-l-44k-v2": ("L_44k_v2", "mmaudio_large_44k_v2.pth", "mmaudio_vae_44k", 44100),
}
TINY_TOWERS = {
    "codec_pretrained": False,
    "clip_encoder": "tiny",
    "sync_encoder": "synchformer",  # MMAudio's sync path: segments of 16 frames, 8 tokens each
    "pe_encoder": "tiny",
    "encoder_pretrained": False,
    "encoder_kwargs": {
        "tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0},
        "synchformer": {"img_size": 32, "patch_size": 16, "dim": 16, "depth": 1, "heads": 2},
    },
    "clip_seconds": 1.0,
    "sampling": {"cfg_scale": 4.5, "steps": 2, "method": "euler"},
}


@pytest.mark.parametrize("size", MMAUDIO_ENTRIES, ids=lambda s: s.name)
def test_entry_matches_the_release(size):
    config, filename, codec, sr = RELEASED[size.name]
    entry = get_entry(size.name)
    assert (size.config, size.filename, size.codec, size.sample_rate) == (
        config,
        f"weights/{filename}",
        codec,
        sr,
    )
    assert entry.sample_rate == sr and entry.output_format == "binaural" and entry.licence == "cc-by-nc-4.0"
    assert entry.architecture["init_mmaudio"] == f"hf://hkchengrex/MMAudio/weights/{filename}"
    assert (
        entry.architecture["config_overrides"] == MMAUDIO_EXACT and entry.architecture["codec_name"] == codec
    )


@pytest.mark.parametrize("size", MMAUDIO_ENTRIES, ids=lambda s: s.name)
def test_offline_names_every_missing_file_in_one_line(size, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path / "spatialgen"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as err:
        load_pretrained(size.name)
    text = str(err.value)
    assert "\n" not in text and text.startswith("6 weights file(s) missing:")
    vae, vocoder = (
        ("v1-16.pth", "best_netG.pt") if size.sample_rate == 16000 else ("v1-44.pth", "bigvgan_v2_44khz")
    )
    for needed in (size.filename, vae, vocoder, "dfn5b", "synchformer_state_dict.pth", "vit_pe_spatial"):
        assert needed in text, needed


def _small_release(tmp_path, monkeypatch, latent_dim: int = 4):
    """A random MMAudio-layout file (every tensor random) whose latent width is the tiny MMAudio VAE's."""
    monkeypatch.setattr(official, "LAT", latent_dim)
    state = {k: v.float() for k, v in official.official_state(seed=1, scale=0.08).items()}
    path = tmp_path / f"mmaudio_{latent_dim}.pth"
    torch.save(state, path)
    return state, path


def test_converted_on_load_from_a_release_file(tmp_path, monkeypatch):
    state, path = _small_release(tmp_path, monkeypatch)
    size = MMAudioSize("t", config_from_mmaudio(state), "weights/t.pth", "mmaudio_vae_tiny", 16000, "test")
    pipe = mmaudio_loader(size)(weights=str(path), **TINY_TOWERS)
    net = pipe.network
    assert not pipe.training and pipe.takes_prompt
    assert {k: getattr(net.config, k) for k in MMAUDIO_EXACT} == MMAUDIO_EXACT
    for ear in (0, 1):  # MMAudio's final layer, cloned into both ears' branches
        torch.testing.assert_close(net.branches[ear].final.conv.weight, state["final_layer.conv.weight"])
    # MMAudio's latent statistics come with the network (generation denormalises with them)
    torch.testing.assert_close(net.normalizer.mean.flatten(), state["latent_mean"].flatten())
    torch.testing.assert_close(net.normalizer.std.flatten(), state["latent_std"].flatten())
    frames = {
        n: torch.zeros(1, round(fps), 3, 32, 32, dtype=torch.uint8) for n, fps in pipe.frame_rates.items()
    }
    audio = pipe.generate(frames, seed=0)
    assert audio.shape == (1, 2, 16000) and bool(torch.isfinite(audio).all())


def test_a_file_of_another_network_is_refused(tmp_path, monkeypatch):
    state, _ = _small_release(tmp_path, monkeypatch)
    _, other = _small_release(tmp_path, monkeypatch, latent_dim=8)  # another latent width: not this size
    size = MMAudioSize("t", config_from_mmaudio(state), "weights/t.pth", "mmaudio_vae_tiny", 16000, "test")
    with pytest.raises(ValueError, match=r"t: .*mmaudio_8.pth is not the MMAudio test network"):
        mmaudio_loader(size)(weights=str(other), **TINY_TOWERS)


def test_model_card_says_what_the_entry_is(tmp_path, monkeypatch):
    state, path = _small_release(tmp_path, monkeypatch)
    size = MMAudioSize("t", config_from_mmaudio(state), "weights/t.pth", "mmaudio_vae_tiny", 16000, "test")
    pipe = mmaudio_loader(size)(weights=str(path), **TINY_TOWERS)
    card = str(model_card("visaudio-mmaudio-s-16k", pipe))
    assert "base_model: hkchengrex/MMAudio" in card and "license: cc-by-nc-4.0" in card
    assert "mmaudio_small_16k.pth" in card and "Not a trained binaural model" in card
    assert "cheng2025mmaudio" in card and "2512.03036" in card
