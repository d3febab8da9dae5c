"""BiAudio-style builder on synthetic 360° output: audio agrees with the rendered video."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spatialgen.data.biaudio import BiAudioConfig, build_biaudio
from spatialgen.data.cli import main_biaudio
from spatialgen.data.clips import DatasetError
from spatialgen.data.synthetic import generate_dataset, read_manifest, read_meta
from spatialgen.io import read_audio, read_video
from spatialgen.spatial import doa


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("synth")
    generate_dataset(src, 2, 11, duration=1.0, progress=False)
    out = tmp_path_factory.mktemp("biaudio") / "bi"
    build_biaudio(src, out, BiAudioConfig(clips_per_video=2, seed=5), progress=False)
    return out


def _pixel_to_camera(row: float, col: float, h: int, w: int, hfov_deg: float) -> tuple[float, float]:
    """Pinhole pixel centre -> camera (az, el), numpy reference (+x front, +y left, +z up)."""
    f = (w / 2) / math.tan(math.radians(hfov_deg) / 2)
    x, y, z = f, (w / 2 - 0.5) - col, (h / 2 - 0.5) - row
    return math.atan2(y, x), math.atan2(z, math.hypot(x, y))


def _angle_deg(a1: float, e1: float, a2: float, e2: float) -> float:
    u = [
        np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)])
        for a, e in ((a1, e1), (a2, e2))
    ]
    return math.degrees(math.atan2(np.linalg.norm(np.cross(u[0], u[1])), float(u[0] @ u[1])))


def _centroid(frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float, int]:
    """Centroid of pixels close to a saturated ``colour`` (brightness may be scaled by activity)."""
    rgb = frame.astype(np.float64)
    c = np.asarray(colour, dtype=np.float64)
    scale = (rgb * c[:, None, None]).sum(0) / (c @ c)
    close = np.linalg.norm(rgb - scale[None] * c[:, None, None], axis=0) < 30
    mask = close & (scale > 0.5)
    rows, cols = np.nonzero(mask)
    return (rows.mean(), cols.mean(), rows.size) if rows.size else (math.nan, math.nan, 0)


def test_layout_and_splits_inherited(built: Path) -> None:
    manifest = read_manifest(built)
    assert len(manifest.clips) == 4
    src_splits = {e.clip_id: e.split for e in read_manifest(Path(manifest.config["source"])).clips}
    for entry in manifest.clips:
        meta = read_meta(built / entry.path)
        assert meta.camera_mode == "trajectory" and len(meta.camera_keyframes["time"]) >= 2
        assert entry.split == src_splits[entry.clip_id.rsplit("_", 1)[0]]
        video, fps = read_video(meta.path(built / entry.path, "video"))
        assert tuple(video.shape) == (meta.n_frames, 3, 112, 112) and fps == meta.fps
        for role, ch in (("foa", 4), ("binaural", 2), ("foa_world", 4)):
            x, sr = read_audio(meta.path(built / entry.path, role), channels=ch)
            assert sr == meta.sample_rate and x.shape[-1] == round(meta.duration * sr)


def test_camera_foa_doa_matches_pixel_position(built: Path) -> None:
    """Band-limited intensity DOA of each visible source == direction of its blob in the video (< 3°)."""
    checked = 0
    for entry in read_manifest(built).clips:
        folder = built / entry.path
        meta = read_meta(folder)
        x, sr = read_audio(meta.path(folder, "foa"), channels=4, dtype=torch.float64)
        video = read_video(meta.path(folder, "video"))[0].numpy()
        h, w = meta.view["size"]
        visible = [s for s in meta.sources if s.visible]
        for src in visible:
            band = (src.band_hz[0] + 50, src.band_hz[1] - 50)
            az, el = doa.intensity_doa(x, sr, band=band, per_frame=1 / meta.fps)
            for k in range(meta.n_frames):
                if not src.on_screen[k] or src.activity[k] < 1.0:
                    continue
                if min(src.row[k], src.col[k], h - src.row[k], w - src.col[k]) < 20:
                    continue  # blob cut by the image border
                if any(
                    o is not src
                    and o.on_screen[k]
                    and math.hypot(o.row[k] - src.row[k], o.col[k] - src.col[k]) < 40
                    for o in visible
                ):
                    continue  # overlapping blobs
                r, c, n = _centroid(video[k], tuple(src.colour))
                assert n > 15, (entry.clip_id, src.label, k)
                pix_az, pix_el = _pixel_to_camera(r, c, h, w, meta.view["hfov_deg"])
                err = _angle_deg(pix_az, pix_el, float(az[k]), float(el[k]))
                assert err < 3.0, (entry.clip_id, src.label, k, err)
                checked += 1
    assert checked >= 6


def test_binaural_ild_sign_matches_image_side(built: Path) -> None:
    checked = 0
    for entry in read_manifest(built).clips:
        folder = built / entry.path
        meta = read_meta(folder)
        ears, sr = read_audio(meta.path(folder, "binaural"), channels=2, dtype=torch.float64)
        w = meta.view["size"][1]
        block = round(sr / meta.fps)
        for src in meta.sources:
            for k in range(meta.n_frames):
                if not src.on_screen[k] or src.activity[k] < 1.0 or abs(src.col[k] - (w - 1) / 2) < 15:
                    continue
                seg = ears[:, k * block : (k + 1) * block].numpy()
                spec = np.abs(np.fft.rfft(seg * np.hanning(seg.shape[1]), axis=-1)) ** 2
                f = np.fft.rfftfreq(seg.shape[1], 1 / sr)
                keep = (f >= src.band_hz[0] + 50) & (f <= src.band_hz[1] - 50)
                ild = 10 * math.log10(spec[0, keep].sum() / spec[1, keep].sum())
                assert (ild > 0) == (src.col[k] < (w - 1) / 2), (entry.clip_id, src.label, k, ild)
                checked += 1
    assert checked >= 5


def test_bad_inputs_skipped_and_all_fail_error(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="all 1 inputs failed"):
        build_biaudio(folder, tmp_path / "out", progress=False)
    assert main_biaudio(["--src", str(tmp_path / "missing"), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
