"""YT-Ambigen and VGGSound adapters on fixture trees in the official layouts; skip-and-count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spatialgen.data.clips import ClipOptions, DatasetError
from spatialgen.data.registry import create_dataset, list_datasets
from spatialgen.io import write_audio, write_video
from spatialgen.spatial import doa

SR, FPS, SECONDS = 16000, 4.0, 2.0
SOURCE_DEG = (59.0, 9.0)  # ambi.json bins e=40, a=60 -> phi = 179 - 120 = 59, theta = 89 - 80 = 9


def _equirect_with_blob(az_deg: float, el_deg: float, h: int = 64, w: int = 128) -> torch.Tensor:
    """Grey equirect frames with a red disc at (az, el); +azimuth is left of the centre column."""
    lon = np.pi * (1 - 2 * (np.arange(w) + 0.5) / w)
    lat = np.pi / 2 - np.pi * (np.arange(h) + 0.5) / h
    u = np.stack(
        [
            np.cos(lat)[:, None] * np.cos(lon),
            np.cos(lat)[:, None] * np.sin(lon),
            np.sin(lat)[:, None] * np.ones(w),
        ]
    )
    a, e = math.radians(az_deg), math.radians(el_deg)
    s = np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)])
    disc = np.einsum("chw,c->hw", u, s) > math.cos(math.radians(12))
    img = np.full((3, h, w), 100, np.uint8)
    img[:, disc] = np.array([230, 20, 20], np.uint8)[:, None]
    return torch.from_numpy(img)[None].repeat(int(SECONDS * FPS), 1, 1, 1)


def _foa_plane_wave(az_deg: float, el_deg: float) -> np.ndarray:
    """AmbiX SN3D [W, Y, Z, X] of band noise from (az, el) (numpy reference encoder)."""
    rng = np.random.default_rng(0)
    s = np.fft.irfft(
        np.fft.rfft(rng.standard_normal(int(SR * SECONDS)))
        * (np.arange(int(SR * SECONDS) // 2 + 1) < 3000 * SECONDS),
        int(SR * SECONDS),
    )
    s = 0.3 * s / np.abs(s).max()
    a, e = math.radians(az_deg), math.radians(el_deg)
    return np.stack([s, s * math.sin(a) * math.cos(e), s * math.sin(e), s * math.cos(a) * math.cos(e)])


@pytest.fixture(scope="module")
def ytambigen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ytambigen")
    (root / "csv" / "yt_ambigen").mkdir(parents=True)
    (root / "video").mkdir()
    (root / "audio").mkdir()
    good, missing, stereo = "abcdefghijk_120", "missingvid1_5", "stereoclip1_30"
    (root / "csv" / "yt_ambigen" / "train.csv").write_text(
        f"file_path\n{good}.npy\n{missing}.npy\n{stereo}.npy\n"
    )
    (root / "csv" / "yt_ambigen" / "valid.csv").write_text(f"file_path\n{missing}.npy\n")
    (root / "csv" / "yt_ambigen" / "test.csv").write_text("file_path\n")
    (root / "ambi.json").write_text(json.dumps({good: [40, 60], missing: [45, 90], stereo: [45, 90]}))
    for clip in (good, stereo):
        write_video(root / "video" / f"{clip}.mp4", _equirect_with_blob(*SOURCE_DEG), FPS)
    write_audio(root / "audio" / f"{good}.wav", _foa_plane_wave(*SOURCE_DEG), SR)
    write_audio(root / "audio" / f"{stereo}.wav", _foa_plane_wave(*SOURCE_DEG)[:2], SR)
    return root


def test_registry_lists_adapters() -> None:
    assert {"ytambigen", "vggsound", "synthetic", "biaudio"} <= set(list_datasets())
    with pytest.raises(KeyError, match="ytambigen"):
        create_dataset("ytambigen_x", ".")


def test_ytambigen_world_frame_label_and_crop(ytambigen: Path) -> None:
    opts = ClipOptions(clip_seconds=1.0, fps=FPS, video_size=(32, 32), format="foa", foa_frame="world")
    ds = create_dataset("ytambigen", ytambigen, "train", opts)
    assert len(ds) == 3
    item = ds[0]
    assert item["clip_id"] == "abcdefghijk_120"
    az, el = (math.degrees(v) for v in item["camera_direction"].tolist())
    assert az == pytest.approx(59.0, abs=1e-4) and el == pytest.approx(9.0, abs=1e-4)
    d_az, d_el = doa.intensity_doa(item["audio"].double(), SR)
    assert math.degrees(float(d_az)) == pytest.approx(59.0, abs=1.0)
    assert math.degrees(float(d_el)) == pytest.approx(9.0, abs=1.0)
    video = item["video"]
    assert tuple(video.shape) == (4, 3, 32, 32) and video.dtype == torch.uint8
    centre = video[:, :, 12:20, 12:20].float().mean((0, 2, 3))
    corner = video[:, :, :4, :4].float().mean((0, 2, 3))
    assert centre[0] > 140 and centre[1] < 70  # the crop looks at the red source ...
    assert abs(float(corner[0] - corner[1])) < 20  # ... with grey around it


def test_ytambigen_camera_frame_and_binaural(ytambigen: Path) -> None:
    cam = create_dataset(
        "ytambigen",
        ytambigen,
        "train",
        ClipOptions(clip_seconds=1.0, fps=FPS, video_size=(32, 32), foa_frame="camera"),
    )[0]
    assert cam["camera_direction"].abs().max() == 0
    d_az, d_el = doa.intensity_doa(cam["audio"].double(), SR)
    assert abs(math.degrees(float(d_az))) < 1.0 and abs(math.degrees(float(d_el))) < 1.0
    ears = create_dataset(
        "ytambigen",
        ytambigen,
        "train",
        ClipOptions(clip_seconds=1.0, fps=FPS, format="binaural", load_video=False),
    )[0]
    assert ears["audio"].shape == (2, SR)


def test_bad_samples_skipped_counted_and_all_fail(ytambigen: Path) -> None:
    opts = ClipOptions(clip_seconds=1.0, fps=FPS, video_size=(32, 32))
    ds = create_dataset("ytambigen", ytambigen, "train", opts)
    served = [ds[i]["clip_id"] for i in range(3)]
    assert served == ["abcdefghijk_120"] * 3  # bad clips replaced by the next good one, never zero-filled
    assert set(ds.skipped) == {"missingvid1_5", "stereoclip1_30"}
    assert "channels" in ds.skipped["stereoclip1_30"] and "not found" in ds.skipped["missingvid1_5"]
    assert sum(ds.skip_counts().values()) == 2
    too_long = create_dataset("ytambigen", ytambigen, "train", ClipOptions(clip_seconds=5.0, fps=FPS))
    with pytest.raises(DatasetError, match="all 3 clips failed"):
        too_long[0]
    assert any("too short" in r for r in too_long.skipped.values())
    with pytest.raises(DatasetError, match="all 1 clips failed"):
        create_dataset("ytambigen", ytambigen, "val", opts)[0]
    with pytest.raises(DatasetError, match="no clips"):
        create_dataset("ytambigen", ytambigen, "test", opts)


@pytest.fixture(scope="module")
def vggsound(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vggsound")
    (root / "video").mkdir()
    rows = [
        ("---g-f_I2yQ", 1, "people marching", "test"),
        ("--0PQM4-hqg", 30, "waterfall burbling", "train"),
        ("--56QUhyDQM", 185, "playing tennis", "train"),
    ]
    (root / "vggsound.csv").write_text("".join(f"{y},{s},{label},{sp}\n" for y, s, label, sp in rows))
    frames = torch.full((8, 3, 32, 32), 90, dtype=torch.uint8)
    stereo = (
        np.stack([np.sin(np.arange(int(SR * 2)) * 0.05), 0.5 * np.sin(np.arange(int(SR * 2)) * 0.05)]) * 0.5
    )
    for ytid, start, _, _ in rows[:2]:
        write_video(root / "video" / f"{ytid}_{start:06d}.mp4", frames, FPS, audio=stereo, sample_rate=SR)
    return root  # the third clip has no media


def test_vggsound_adapter(vggsound: Path) -> None:
    test = create_dataset("vggsound", vggsound, "test", ClipOptions(clip_seconds=1.0, fps=FPS, format="mono"))
    item = test[0]
    assert item["clip_id"] == "---g-f_I2yQ_000001" and item["labels"] == ["people marching"]
    assert item["audio"].shape == (1, SR) and item["video"].shape == (4, 3, 32, 32)
    ears = create_dataset(
        "vggsound", vggsound, "test", ClipOptions(clip_seconds=1.0, fps=FPS, format="binaural")
    )[0]["audio"]
    ratio = float(ears[1].abs().max() / ears[0].abs().max())
    assert ratio == pytest.approx(0.5, abs=0.05)  # channels kept as recorded
    train = create_dataset(
        "vggsound", vggsound, "train", ClipOptions(clip_seconds=1.0, fps=FPS, format="mono")
    )
    ids = {train.clip_id(i) for i in range(len(train))}
    assert ids <= {"--0PQM4-hqg_000030", "--56QUhyDQM_000185"}
    with pytest.raises(ValueError, match="no FOA"):
        create_dataset("vggsound", vggsound, "test", ClipOptions(format="foa"))
