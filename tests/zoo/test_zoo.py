"""The zoo: entries and their metadata, debug models generating audio from a video (API and CLI),
clear errors for unknown names, absent demo exports and unreachable official weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from spatialgen.cli import main as cli_main
from spatialgen.generate import GenerateOptions, generate_video
from spatialgen.io import write_video
from spatialgen.models.pipeline import GenerationPipeline
from spatialgen.registry import UnknownNameError
from spatialgen.weights import WeightsNotFoundError
from zoo import get_entry, list_pretrained, load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")

MMAUDIO_NAMES = [f"visaudio-mmaudio-{s}" for s in ("l-44k", "l-44k-v2", "m-44k", "s-16k", "s-44k")]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """1 s of 8 fps video: a bright square moving left to right."""
    frames = torch.full((8, 3, 48, 64), 30, dtype=torch.uint8)
    for t in range(8):
        frames[t, :, 16:32, 4 + 6 * t : 20 + 6 * t] = 220
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, 8.0)


def test_entries_and_metadata():
    names = list_pretrained()
    expected = {
        "visage-ytambigen",
        "visage-vggsound-mono",
        "visage-synthetic",
        "visaudio-synthetic",
        "visage-debug",
        "visaudio-debug",
        "dac-44khz",
        "clip-vit-b32",
    }
    assert expected <= set(names) and names == sorted(names)
    assert list_pretrained("*-debug") == ["visage-debug", "visaudio-debug"]
    assert list_pretrained("visaudio-*") == ["visaudio-debug", *MMAUDIO_NAMES, "visaudio-synthetic"]
    official = get_entry("visage-ytambigen")
    assert "jaeyeonkim99/visage" in official.weights and official.sample_rate == 44100
    assert official.architecture["network"]["num_channels"] == 4 and "ICLR" in official.citation
    assert get_entry("visaudio-debug").output_format == "binaural"


@pytest.mark.parametrize("name", list_pretrained())
def test_every_entry_has_its_metadata(name):
    entry = get_entry(name)
    assert entry.name == name and entry.description and entry.weights and entry.licence and entry.architecture
    if entry.kind in ("visage", "visaudio"):
        assert entry.output_format in ("foa", "binaural") and entry.sample_rate and entry.citation


@pytest.mark.parametrize(("name", "channels"), [("visage-debug", 4), ("visaudio-debug", 2)])
def test_debug_models_generate_audio_from_a_video(name, channels, video, tmp_path):
    pipe = load_pretrained(name)
    assert isinstance(pipe, GenerationPipeline) and not pipe.training
    assert pipe.num_channels == channels and pipe.sample_rate == 16000
    again = load_pretrained(name)  # seeded: the same weights on every call and machine
    assert all(torch.equal(a, b) for a, b in zip(pipe.state_dict().values(), again.state_dict().values()))
    fmt = "foa" if channels == 4 else "binaural"
    paths = generate_video(video, pipe, GenerateOptions(out_dir=tmp_path, format=fmt, mp4=False))
    assert [p.name for p in paths] == [f"clip.{fmt}.wav"]
    audio, sr = sf.read(paths[0], always_2d=True)
    assert sr == 16000 and audio.shape == (16000, channels)
    assert 0 < abs(audio).max() <= 1.0


def test_generate_cli_with_zoo_name(video, tmp_path):
    out = tmp_path / "out"
    assert cli_main(["generate", str(video), "--model", "visage-debug", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["clip.binaural.mp4", "clip.binaural.wav", "clip.foa.mp4", "clip.foa.wav"]
    info = sf.info(str(out / "clip.foa.wav"))
    assert (info.channels, info.samplerate, info.frames) == (4, 16000, 16000)


def test_unknown_names_and_missing_weights_are_clear(tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="visage-debug") as err:
        load_pretrained("visage-debgu")
    assert "Did you mean" in str(err.value)
    monkeypatch.setenv("SPATIALGEN_DEMO_OUT", str(tmp_path / "demo_out"))
    with pytest.raises(WeightsNotFoundError, match="run `make demo` first") as err:
        load_pretrained("visaudio-synthetic")
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="jaeyeonkim99/visage"):  # tests run with HF_HUB_OFFLINE=1
        load_pretrained("visage-ytambigen", cache_dir=str(tmp_path / "empty-cache"))


def test_demo_export_is_found(tmp_path, monkeypatch):
    from spatialgen.hub.save import save_pipeline

    pipe = load_pretrained("visaudio-debug")
    save_pipeline(pipe, tmp_path / "demo_out" / "export" / "visaudio-synthetic")
    monkeypatch.setenv("SPATIALGEN_DEMO_OUT", str(tmp_path / "demo_out"))
    loaded = load_pretrained("visaudio-synthetic")
    assert all(
        torch.equal(a, b)
        for a, b in zip(pipe.export_state_dict().values(), loaded.export_state_dict().values())
    )
