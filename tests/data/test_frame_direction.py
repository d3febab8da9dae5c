"""Frame-direction labels: PIV physics per video frame, weights, and the in-memory dataset vs meta.json truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfilt

from spatialgen.data.clips import ClipOptions, DatasetError
from spatialgen.data.frame_direction import FrameDirectionDataModule, frame_directions, load_frame_directions
from spatialgen.data.registry import create_dataset
from spatialgen.data.synthetic import generate_dataset

SR, FPS = 16000, 8.0
VIEW = (32, 32)


@pytest.fixture(scope="session")
def frame_direction_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """6 one-second clips (3 train, 3 val), fixed camera, one visible moving source, 32x32 views."""
    root = tmp_path_factory.mktemp("frame_direction_synth")
    generate_dataset(
        root,
        6,
        0,
        duration=1.0,
        camera="fixed",
        max_sources=1,
        distractors=False,
        equirect_size=(64, 128),
        view_size=VIEW,
        split_ratios={"train": 0.5, "val": 0.5, "test": 0.0},
        progress=False,
    )
    return str(root)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Band-limited (200 Hz - 4 kHz) white noise."""
    s = np.random.default_rng(seed).standard_normal(round(seconds * SR))
    return sosfilt(butter(4, [200, 4000], btype="band", fs=SR, output="sos"), s)


def _plane_wave(s: np.ndarray, az_deg: float, el_deg: float) -> torch.Tensor:
    """AmbiX SN3D [W, Y, Z, X] of a plane wave from (az, el): s * [1, sin az cos el, sin el, cos az cos el]."""
    az, el = math.radians(az_deg), math.radians(el_deg)
    gains = np.array([1.0, math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    return torch.from_numpy(gains[:, None] * s[None])


def _unit(az_deg: float, el_deg: float) -> np.ndarray:
    az, el = math.radians(az_deg), math.radians(el_deg)
    return np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])


def _angle_deg(dirs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    cos = (dirs * ref).sum(-1) / np.linalg.norm(dirs, axis=-1) / np.linalg.norm(ref, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# ------------------------------------------------------------------------------------------ physics
def test_plane_wave_from_the_left() -> None:
    """az = +90° is +y (left); a lone plane wave is fully directional (weight 1), even with a -30 dB floor."""
    s = _noise(2.0)
    floor = 10 ** (-30 / 20) * s.std() * np.random.default_rng(9).standard_normal((4, s.size))
    dirs, w = frame_directions(_plane_wave(s, 90.0, 0.0) + torch.from_numpy(floor), SR, FPS, 16)
    assert dirs.shape == (16, 3) and w.shape == (16,) and dirs.dtype == w.dtype == torch.float32
    assert _angle_deg(dirs.numpy(), np.array([0.0, 1.0, 0.0])).max() < 2.0
    assert (dirs[:, 1] > 0.99).all()
    assert (w > 0.9).all() and (w <= 1.0).all()
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(16), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("az", "el"), [(30.0, -20.0), (-120.0, 45.0), (170.0, 5.0)])
def test_plane_wave_any_direction(az: float, el: float) -> None:
    dirs, w = frame_directions(_plane_wave(_noise(1.0, seed=1), az, el), SR, FPS, 8)
    assert _angle_deg(dirs.numpy(), _unit(az, el)).max() < 2.0
    assert (w > 0.9).all()


def test_frames_follow_a_source_that_jumps() -> None:
    """Frame k is block [k/fps, (k+1)/fps): left for the first 0.5 s, right afterwards (no one-frame shift)."""
    s = _noise(1.0, seed=2)
    half = s.size // 2
    left, right = _plane_wave(s, 90.0, 0.0), _plane_wave(s, -90.0, 0.0)
    foa = torch.cat((left[:, :half], right[:, half:]), dim=1)
    dirs, _ = frame_directions(foa, SR, FPS, 8)
    assert dirs[:, 1].sign().tolist() == [1.0] * 4 + [-1.0] * 4


def test_level_gate_zeroes_quiet_and_silent_frames() -> None:
    """Second half silent -> weight 0; second half 40 dB down (still a plane wave) -> 0 as well (level gate)."""
    s = _noise(2.0, seed=3)
    quiet = s.copy()
    quiet[s.size // 2 :] *= 0.01  # -40 dB: below level_range_db = 30 under the loudest block
    silent = s.copy()
    silent[s.size // 2 :] = 0.0
    for sig in (silent, quiet):
        _, w = frame_directions(_plane_wave(sig, 45.0, 10.0), SR, FPS, 16)
        assert (w[:7] > 0.9).all() and (w[9:] == 0).all()
    # a wider range lets the quiet (but directional) half back in
    _, w = frame_directions(_plane_wave(quiet, 45.0, 10.0), SR, FPS, 16, level_range_db=60.0)
    assert (w > 0.9).all()


def test_diffuse_noise_weighs_less_than_a_plane_wave() -> None:
    """Four independent noise channels have no net intensity: diffuseness near 1, weight near 0."""
    g = np.random.default_rng(4)
    diffuse = torch.from_numpy(np.stack([_noise(1.0, seed=int(g.integers(1000))) for _ in range(4)]))
    _, w_diffuse = frame_directions(diffuse, SR, FPS, 8)
    _, w_plane = frame_directions(_plane_wave(_noise(1.0, seed=5), 0.0, 0.0), SR, FPS, 8)
    assert w_diffuse.max() < 0.2 and w_plane.min() > 0.9


def test_frames_beyond_the_audio_get_weight_zero() -> None:
    dirs, w = frame_directions(_plane_wave(_noise(1.0, seed=6), 90.0, 0.0), SR, FPS, 12)
    assert (w[:8] > 0.9).all() and (w[8:] == 0).all()
    assert dirs.shape == (12, 3)


def test_bad_arguments_raise() -> None:
    foa = _plane_wave(_noise(0.5), 0.0, 0.0)
    with pytest.raises(ValueError, match="foa must be"):
        frame_directions(foa[:3], SR, FPS, 4)
    with pytest.raises(ValueError, match="foa must be"):
        frame_directions(foa[None], SR, FPS, 4)
    with pytest.raises(ValueError, match="fps"):
        frame_directions(foa, SR, 0.0, 4)
    with pytest.raises(ValueError, match="num_frames"):
        frame_directions(foa, SR, FPS, 0)


# ------------------------------------------------------------------------------------------ dataset
def _truth(root: str, split: str) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Per clip of ``split`` (dataset order): its decoded frames and the visible source's camera direction."""
    clips = create_dataset(
        "synthetic", root, split, ClipOptions(clip_seconds=None, sample_rate=SR, fps=FPS, video_size=VIEW)
    )
    videos, truths = [], []
    for i in range(len(clips)):
        item = clips[i]
        meta = json.loads((Path(root) / item["clip_id"] / "meta.json").read_text())
        (src,) = [s for s in meta["sources"] if s["visible"]]
        az, el = np.array(src["camera_az_deg"]), np.array(src["camera_el_deg"])
        videos.append(item["video"])
        truths.append(np.stack([_unit(a, e) for a, e in zip(az, el, strict=True)]))
    return videos, truths


def test_load_frame_directions_matches_meta(frame_direction_root: str) -> None:
    ds, summary = load_frame_directions(
        "synthetic", frame_direction_root, "train", fps=FPS, sample_rate=SR, video_size=VIEW, progress=False
    )
    frames, dirs, weights = ds.tensors
    assert summary["clips"] == 3 and summary["skipped"] == {} and summary["frames"] == len(ds) > 0
    assert frames.dtype == torch.uint8 and frames.shape[1:] == (3, *VIEW)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(len(ds)), rtol=0, atol=1e-5)
    assert (weights > 0).all() and (weights <= 1).all()
    # Find every stored frame in its clip's decoded video (exact pixels) -> that frame's truth direction.
    videos, truths = _truth(frame_direction_root, "train")
    errors, matched = [], 0
    for frame, d, w in zip(frames, dirs.numpy(), weights.tolist(), strict=True):
        hits = [(c, k) for c, v in enumerate(videos) for k in range(len(v)) if torch.equal(v[k], frame)]
        assert len(hits) == 1
        matched += 1
        c, k = hits[0]
        if w > 0.5:
            errors.append(_angle_deg(d, truths[c][k]))
    assert matched == len(ds) and len(errors) >= len(ds) // 2
    print(f"label error vs meta: median {np.median(errors):.2f} deg, max {np.max(errors):.2f} deg")
    assert np.median(errors) < 2.0 and np.max(errors) < 10.0


def test_datamodule_batches_and_missing_root(frame_direction_root: str, tmp_path: Path) -> None:
    dm = FrameDirectionDataModule(
        "synthetic",
        frame_direction_root,
        fps=FPS,
        sample_rate=SR,
        video_size=VIEW,
        batch_size=4,
        progress=False,
    )
    dm.setup("fit")
    assert set(dm.datasets) == {"train", "val"} and dm.summaries["val"]["clips"] == 3
    frames, dirs, weights = next(iter(dm.train_dataloader()))
    assert frames.shape == (4, 3, *VIEW) and frames.dtype == torch.uint8
    assert dirs.shape == (4, 3) and weights.shape == (4,)
    val = [b[1] for b in dm.val_dataloader()]
    torch.testing.assert_close(torch.cat(val), dm.datasets["val"].tensors[1])  # in order, nothing dropped
    before = dm.datasets["val"]
    dm.setup("fit")  # cached: the same tensors, not a second decode
    assert dm.datasets["val"] is before
    with pytest.raises(DatasetError, match="nowhere: dataset root not found"):
        load_frame_directions("synthetic", str(tmp_path / "nowhere"), "train", fps=FPS, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        FrameDirectionDataModule(batch_size=0)
    with pytest.raises(ValueError, match="fps"):
        FrameDirectionDataModule(fps=0.0)
    with pytest.raises(DatasetError, match="setup"):
        FrameDirectionDataModule(root=frame_direction_root, progress=False).train_dataloader()
