"""Model card metadata (pipeline tag, licence only when chosen) and the figure's motion over time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spatialgen.hub.card import (
    PIPELINE_TAG,
    CardInfo,
    azimuth_time,
    build_model_card,
    figure_caption,
    ild_time,
    render_card_figure,
)

SR = 16000


def _front_matter(card) -> dict:
    text = str(card)
    return yaml.safe_load(text.split("---")[1])


def test_no_licence_claimed_unless_chosen(visaudio_pipe) -> None:
    meta = _front_matter(build_model_card(visaudio_pipe, CardInfo()))
    assert "license" not in meta
    assert meta["pipeline_tag"] == PIPELINE_TAG == "any-to-any"
    assert "model-index" not in meta  # no metrics given: no model-index
    card = build_model_card(visaudio_pipe, CardInfo())
    assert "No licence was chosen for these weights" in card.content
    chosen = _front_matter(build_model_card(visaudio_pipe, CardInfo(license="apache-2.0")))
    assert chosen["license"] == "apache-2.0"


def test_metadata_fields_with_metrics(visaudio_pipe) -> None:
    info = CardInfo(
        model_name="visaudio-x",
        datasets=["me/biaudio"],
        base_model="me/visaudio-pretrained",
        metrics={"lr_confusion": 0.05, "nan_metric": math.nan},
        metrics_dataset="BiAudio test",
    )
    meta = _front_matter(build_model_card(visaudio_pipe, info))
    assert meta["datasets"] == ["me/biaudio"] and meta["base_model"] == "me/visaudio-pretrained"
    (entry,) = meta["model-index"]
    (result,) = entry["results"]
    assert result["task"]["type"] == "any-to-any"
    assert result["dataset"]["name"] == "BiAudio test"
    assert result["metrics"] == [{"type": "lr_confusion", "value": 0.05, "name": "lr_confusion"}]


def _moving_plane_wave(
    seconds: float = 2.0, az0: float = 60.0, az1: float = -60.0
) -> tuple[torch.Tensor, np.ndarray]:
    """AmbiX SN3D plane wave of noise, azimuth moving linearly from az0 to az1 (deg), elevation 0."""
    n = int(seconds * SR)
    s = np.random.default_rng(0).standard_normal(n)
    az = np.deg2rad(np.linspace(az0, az1, n))
    return torch.from_numpy(np.stack([s, s * np.sin(az), 0 * s, s * np.cos(az)])), np.rad2deg(az)


def test_azimuth_time_follows_a_moving_source() -> None:
    foa, truth = _moving_plane_wave()
    times, azimuths, energy, doa = azimuth_time(foa, SR)
    assert energy.shape == (8, 180) and times.shape == doa.shape == (8,)
    np.testing.assert_allclose(times.numpy(), 0.125 + 0.25 * np.arange(8))
    centre = truth[(times.numpy() * SR).astype(int)]
    peak = azimuths[energy.argmax(dim=-1)].numpy()
    assert np.abs(peak - centre).max() < 6.0  # 2° grid, a block spans 15° of motion
    assert np.abs(doa.numpy() - centre).max() < 3.0
    assert np.all(np.diff(peak) < 0)  # left to right: azimuth decreasing


def test_ild_time_sign_follows_the_louder_ear() -> None:
    s = np.random.default_rng(1).standard_normal(SR)
    gain = np.where(np.arange(SR) < SR // 2, 2.0, 0.5)
    times, ild = ild_time(torch.from_numpy(np.stack([s * gain, s])), SR)
    assert times.shape == (4,)
    np.testing.assert_allclose(ild.numpy(), [20 * math.log10(2)] * 2 + [20 * math.log10(0.5)] * 2, atol=1e-9)


@pytest.mark.parametrize("kind", ["visaudio", "visage"])
def test_card_figure_shows_time(kind: str, request, tmp_path, monkeypatch) -> None:
    import matplotlib.axes

    pipe = request.getfixturevalue(f"{kind}_pipe")
    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", lambda self, t, **k: labels.append(("y", t)))
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel", lambda self, t, **k: labels.append(("x", t)))
    out = render_card_figure(pipe, tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("time (s)" in t for _, t in labels)  # one axis is time: the motion is visible
    caption = figure_caption(pipe, None)
    assert "over time" in caption and "left to right" in caption


def test_export_claims_no_licence_by_default() -> None:
    from spatialgen.hub.export import build_parser, card_info_from_run

    assert build_parser().parse_args(["run.ckpt", "--out", "x"]).license is None
    info = card_info_from_run(Path("nowhere/run.ckpt"), license=None)
    assert info.license is None
