"""Weights resolution: local paths, hf:// specs and official URLs, offline, with one clear error."""

from __future__ import annotations

import warnings
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from spatialgen.codecs import (
    DAC_CONFIGS,
    create_codec,
    dac_weights_cache_path,
    dac_weights_url,
    save_dac_codec,
)
from spatialgen.weights import WeightsNotFoundError, parse_hf_spec, resolve_weights, sibling_spec

DAC44_URL = "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth"


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_dac_urls_and_cache_paths(offline_home: Path) -> None:
    assert dac_weights_url("44khz") == DAC44_URL
    assert dac_weights_url("16khz").endswith("/0.0.5/weights_16khz.pth")
    assert dac_weights_url("24khz", tag="0.0.1").endswith("/0.0.1/weights_24khz.pth")
    expected = offline_home / ".cache" / "descript" / "dac" / "weights_44khz_8kbps_0.0.1.pth"
    assert dac_weights_cache_path("44khz", "8kbps", "0.0.1") == expected


def test_missing_official_dac_weights_offline(offline_home: Path) -> None:
    target = offline_home / ".cache" / "descript" / "dac" / "weights_44khz_8kbps_0.0.1.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        create_codec("dac_44khz", pretrained=True)
    msg = str(info.value)
    assert "HF_HUB_OFFLINE" in msg and f"download {DAC44_URL} and save it as {target}" in msg
    assert "\n" not in msg and isinstance(info.value, FileNotFoundError)


def test_official_cache_file_is_used_offline(offline_home: Path) -> None:
    """A file pre-placed where the dac package caches it is loaded without any network."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import dac

        net = dac.DAC(**{**DAC_CONFIGS["dac_tiny"], "sample_rate": 44100})
    target = dac_weights_cache_path("44khz", "8kbps", "0.0.1")
    target.parent.mkdir(parents=True)
    net.save(str(target), package=False)
    codec = create_codec("dac_44khz", pretrained=True)
    assert (codec.sample_rate, codec.hop_length, codec.num_codebooks) == (44100, 8, 4)
    x = 0.3 * torch.randn(1, 1, 64)
    assert torch.equal(codec.encode(x)[:, 0], net.eval()(x)["codes"])


def test_local_path(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    with pytest.raises(WeightsNotFoundError, match=r"weights not found at .*w\.bin"):
        resolve_weights(f)
    f.write_bytes(b"x")
    assert resolve_weights(str(f)) == f


def test_url_uses_cache_path_without_network(offline_home: Path) -> None:
    target = offline_home / "cached.pth"
    target.write_bytes(b"x")
    assert resolve_weights("https://example.com/w/cached.pth", cache_path=target) == target
    with pytest.raises(
        WeightsNotFoundError, match=r"download https://example.com/w/other.pth and save it as"
    ):
        resolve_weights("https://example.com/w/other.pth")


def test_hf_spec_parsing() -> None:
    spec = parse_hf_spec("hf://org/repo/sub/model.safetensors@v1")
    assert (spec.repo_id, spec.filename, spec.revision) == ("org/repo", "sub/model.safetensors", "v1")
    assert str(sibling_spec(str(spec), "config.json")) == "hf://org/repo/sub/config.json@v1"
    assert sibling_spec("/a/b/model.safetensors", "config.json") == Path("/a/b/config.json")
    with pytest.raises(ValueError, match="owner/repo/filename"):
        parse_hf_spec("hf://org/model.safetensors")


def test_hf_missing_offline(tmp_path: Path) -> None:
    with pytest.raises(
        WeightsNotFoundError, match=r"hf://org/nothing/model\.safetensors not available.*hf download"
    ):
        resolve_weights("hf://org/nothing/model.safetensors", cache_dir=tmp_path)


def test_hf_cache_loads_codec_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub cache snapshot (refs/main -> snapshots/<commit>/) resolves config beside weights offline."""
    codec = create_codec("dac_tiny")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny-dac"
    save_dac_codec(codec, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loaded = create_codec("dac_tiny", pretrained="hf://org/tiny-dac/model.safetensors")
    x = 0.3 * torch.randn(1, 2, 48)
    assert torch.equal(loaded.encode(x), codec.encode(x))
