"""Synthetic 360° scenes: determinism, audio/video/metadata agreement, schema, manifest, CLI."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spatialgen.data.synthetic import (
    ClipMeta,
    SourceTrack,
    SynthConfig,
    generate_dataset,
    get_sound_class,
    list_sound_classes,
    read_manifest,
    read_meta,
    render_clip,
    sample_scene,
    write_meta,
)
from spatialgen.data.synthetic.cli import main as synth_main
from spatialgen.data.synthetic.metadata import FILE_ROLES, assign_splits
from spatialgen.errors import MediaError
from spatialgen.io import read_audio, read_video, write_video
from spatialgen.spatial import doa

SMALL = {"duration": 1.5, "progress": False}
N_CLIPS = 3
SEED = 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 1.5-s clips, moving camera, no distractors (every sound belongs to a visible object)."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, N_CLIPS, SEED, distractors=False, **SMALL)
    return root


def _clip_dirs(root: Path) -> list[Path]:
    return [root / entry.path for entry in read_manifest(root).clips]


def _angle_deg(az1: float, el1: float, az2: float, el2: float) -> float:
    """Great-circle angle in degrees (numpy reference, independent of spatialgen.geometry)."""
    u = [
        np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)])
        for a, e in ((az1, el1), (az2, el2))
    ]
    return math.degrees(math.atan2(np.linalg.norm(np.cross(u[0], u[1])), float(u[0] @ u[1])))


def _separation_deg(a: SourceTrack, b: SourceTrack, k: int) -> float:
    """World-frame angle between two sources at frame ``k``."""
    angles = (a.world_az_deg[k], a.world_el_deg[k], b.world_az_deg[k], b.world_el_deg[k])
    return _angle_deg(*(math.radians(v) for v in angles))


def _inner_band(band: list[float]) -> tuple[float, float]:
    return band[0] + 50.0, band[1] - 50.0


# ---------------------------------------------------------------------------------------- sounds


def test_sound_classes_are_distinct_and_band_limited() -> None:
    names = list_sound_classes()
    assert len(names) >= 6
    classes = [get_sound_class(n) for n in names]
    assert len({c.shape for c in classes}) == len(classes)
    assert len({c.colour for c in classes}) == len(classes)
    bands = sorted(c.band for c in classes)
    assert all(b[0] - a[1] >= 100 for a, b in itertools.pairwise(bands))
    sr, n = 16000, 16000
    freqs = np.fft.rfftfreq(n, 1 / sr)
    for cls in classes:
        x, active = cls.synthesize(np.random.default_rng(0), n, sr)
        assert x.shape == active.shape == (n,) and active.dtype == bool and active.any()
        assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-9)
        power = np.abs(np.fft.rfft(x)) ** 2
        inside = (freqs >= cls.band[0]) & (freqs <= cls.band[1])
        assert power[~inside].sum() <= 1e-20 * power.sum(), cls.name
    with pytest.raises(ValueError, match="sample_rate"):
        classes[0].synthesize(np.random.default_rng(0), 100, 8000)


# ---------------------------------------------------------------------------------- determinism


def test_same_seed_same_files_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    """Guarantee: with one FFmpeg/x264 build, clip i's files depend only on (seed, i) and the settings.

    Byte-identical for fewer clips, two worker processes and another torch thread count in the caller
    (the render runs with one torch thread; x264 runs one thread without macroblock-tree rate control).
    """
    again = tmp_path / "again"
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate_dataset(again, 2, SEED, distractors=False, workers=2, **SMALL)
    finally:
        torch.set_num_threads(previous)
    for name in ("clip_000000", "clip_000001"):
        for file in (*FILE_ROLES.values(), "meta.json"):
            assert (again / name / file).read_bytes() == (dataset / name / file).read_bytes(), (
                f"{name}/{file}"
            )


def test_same_frames_same_video_bytes(tmp_path: Path) -> None:
    """The video encoder is deterministic: one clip's view encoded four times gives one file.

    (With x264's macroblock-tree rate control the first encode in a process differed from the next.)
    """
    config = SynthConfig(duration=1.5, distractors=False)
    clip = render_clip(sample_scene(config, SEED, 0), config)
    files = [write_video(tmp_path / f"{i}.mp4", clip.video, config.fps, threads=1) for i in range(4)]
    assert len({f.read_bytes() for f in files}) == 1


def test_render_independent_of_torch_threads() -> None:
    config = SynthConfig(duration=1.0, distractors=False)
    previous = torch.get_num_threads()
    views = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            views.append(render_clip(sample_scene(config, SEED, 1), config).video)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(views[0], views[1])


def test_different_seeds_differ(dataset: Path) -> None:
    config = SynthConfig(duration=1.5, distractors=False)
    a, b = sample_scene(config, SEED, 0), sample_scene(config, SEED + 1, 0)
    assert a.camera.yaw[0] != b.camera.yaw[0]
    assert [s.path.az0 for s in a.sources] != [s.path.az0 for s in b.sources]
    # Clip 0 and clip 1 of one dataset differ too.
    metas = [read_meta(d) for d in _clip_dirs(dataset)]
    assert metas[0].camera != metas[1].camera


# ------------------------------------------------------------------------ audio agrees with video


def test_band_doa_matches_camera_direction(dataset: Path) -> None:
    """Each source's band-limited intensity DOA in foa.wav equals its camera-frame direction in meta."""
    checked = 0
    for clip in _clip_dirs(dataset):
        meta = read_meta(clip)
        x, sr = read_audio(meta.path(clip, "foa"), channels=4, dtype=torch.float64)
        for src in meta.sources:
            az, el = doa.intensity_doa(x, sr, band=_inner_band(src.band_hz), per_frame=1 / meta.fps)
            for k in range(meta.n_frames):
                if src.activity[k] < 1.0:  # gated classes: only frames where the source sounds throughout
                    continue
                truth = math.radians(src.camera_az_deg[k]), math.radians(src.camera_el_deg[k])
                assert _angle_deg(float(az[k]), float(el[k]), *truth) < 3.0, (clip.name, src.label, k)
                checked += 1
    assert checked >= 30


def test_world_foa_doa_matches_world_direction(dataset: Path) -> None:
    clip = _clip_dirs(dataset)[0]
    meta = read_meta(clip)
    x, sr = read_audio(meta.path(clip, "foa_world"), channels=4, dtype=torch.float64)
    for src in meta.sources:
        az, el = doa.intensity_doa(x, sr, band=_inner_band(src.band_hz), per_frame=1 / meta.fps)
        for k in range(meta.n_frames):
            if src.activity[k] == 1.0:
                truth = math.radians(src.world_az_deg[k]), math.radians(src.world_el_deg[k])
                assert _angle_deg(float(az[k]), float(el[k]), *truth) < 3.0


def _centroid(frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float, int]:
    """Centroid (row, col) and size of the pixels whose chroma points the way of ``colour``."""
    rgb = frame.astype(np.float64)  # [3, h, w]
    chroma = rgb - rgb.mean(axis=0, keepdims=True)
    ref = np.asarray(colour, dtype=np.float64) - np.mean(colour)
    strength = np.linalg.norm(chroma, axis=0)
    cosine = np.einsum("chw,c->hw", chroma, ref) / (strength * np.linalg.norm(ref) + 1e-9)
    mask = (strength > 40) & (cosine > 0.9)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return math.nan, math.nan, 0
    return float(rows.mean()), float(cols.mean()), int(rows.size)


def test_pixel_positions_match_object_centroids(dataset: Path) -> None:
    checked = 0
    for clip in _clip_dirs(dataset):
        meta = read_meta(clip)
        video, _ = read_video(meta.path(clip, "video"))
        assert tuple(video.shape) == (meta.n_frames, 3, *meta.view["size"])
        h, w = meta.view["size"]
        px_per_deg = (w / 2) / math.tan(math.radians(meta.view["hfov_deg"] / 2)) * math.pi / 180
        visible = [s for s in meta.sources if s.visible]
        for src in visible:
            margin = 1.6 * src.size_deg * px_per_deg * 1.5 + 2
            for k in range(meta.n_frames):
                row, col = src.row[k], src.col[k]
                if row is None or not (margin < row < h - margin and margin < col < w - margin):
                    continue
                apart = all(
                    _separation_deg(src, o, k) > 2.2 * (src.size_deg + o.size_deg)
                    for o in visible
                    if o is not src
                )
                if not apart:
                    continue
                r, c, n = _centroid(video[k].numpy(), tuple(src.colour))
                assert n > 20, (clip.name, src.label, k)
                assert math.hypot(r - row, c - col) < 2.5, (clip.name, src.label, k, (r, c), (row, col))
                checked += 1
    assert checked >= 20


def _band_ild(
    ears: torch.Tensor, sr: int, band: tuple[float, float], fps: float, n_frames: int
) -> np.ndarray:
    """Per-frame ILD (dB) of ``[2, T]`` in ``band``: 10 log10(E_L / E_R), numpy STFT-free block FFT."""
    x = ears.numpy()
    block = round(sr / fps)
    out = []
    for k in range(n_frames):
        seg = x[:, k * block : (k + 1) * block]
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.shape[1]), axis=-1)) ** 2
        f = np.fft.rfftfreq(seg.shape[1], 1 / sr)
        keep = (f >= band[0]) & (f <= band[1])
        left, right = spec[0, keep].sum(), spec[1, keep].sum()
        out.append(10 * math.log10(left / right))
    return np.asarray(out)


def test_binaural_ild_sign_matches_image_side(dataset: Path) -> None:
    checked = 0
    for clip in _clip_dirs(dataset):
        meta = read_meta(clip)
        ears, sr = read_audio(meta.path(clip, "binaural"), channels=2, dtype=torch.float64)
        w = meta.view["size"][1]
        for src in meta.sources:
            ild = _band_ild(ears, sr, _inner_band(src.band_hz), meta.fps, meta.n_frames)
            for k in range(meta.n_frames):
                if not src.on_screen[k] or src.activity[k] < 1.0 or abs(src.camera_az_deg[k]) < 15:
                    continue
                left_half = src.col[k] < (w - 1) / 2
                assert left_half == (src.camera_az_deg[k] > 0)
                assert (ild[k] > 0) == left_half, (clip.name, src.label, k, ild[k], src.col[k])
                checked += 1
    assert checked >= 5


# ------------------------------------------------------------------------------ scene variants


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0.0}, "duration"),
        ({"fps": 0.5, "duration": 1.0}, "fps"),
        ({"view_size": (111, 112)}, "view_size"),
        ({"equirect_size": (256,)}, "equirect_size"),
        ({"hfov_deg": 180.0}, "hfov_deg"),
        ({"camera": "orbit"}, "camera"),
        ({"max_sources": 0}, "max_sources"),
    ],
)
def test_config_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_fixed_camera_and_reverb() -> None:
    dry_cfg = SynthConfig(duration=1.0, camera="fixed", distractors=False)
    wet_cfg = SynthConfig(duration=1.0, camera="fixed", distractors=False, reverb=True)
    dry = render_clip(sample_scene(dry_cfg, 3, 0), dry_cfg)
    wet = render_clip(sample_scene(wet_cfg, 3, 0), wet_cfg)
    assert dry.meta.camera_mode == "fixed" and len(set(dry.meta.camera["yaw_deg"])) == 1
    assert set(dry.meta.camera["roll_deg"]) == {0.0}
    # Same scene, only the room differs: identical video, reverberant audio.
    assert torch.equal(dry.video, wet.video) and dry.meta.sources == wet.meta.sources
    assert dry.meta.extra["room"] is None and wet.meta.extra["room"]["rt60"] > 0
    src = dry.meta.sources[0]
    band = _inner_band(src.band_hz)
    psi_dry = float(doa.diffuseness(dry.foa, 16000, band=band))
    psi_wet = float(doa.diffuseness(wet.foa, 16000, band=band))
    assert psi_dry < 0.01 < psi_wet
    # The direct sound still dominates the direction estimate.
    az, el = doa.intensity_doa(wet.foa, 16000, band=band)
    mid = dry.meta.n_frames // 2
    assert (
        _angle_deg(
            float(az), float(el), math.radians(src.camera_az_deg[mid]), math.radians(src.camera_el_deg[mid])
        )
        < 15
    )
    for audio in (wet.foa_world, wet.foa, wet.binaural):
        assert float(audio.abs().max()) <= 0.9 + 1e-12


def test_distractors_are_invisible_and_behind() -> None:
    config = SynthConfig(duration=1.0)
    quiet = SynthConfig(duration=1.0, distractors=False)
    # Switching distractors off removes them and changes nothing else.
    for i in range(5):
        with_off, without = sample_scene(config, 11, i), sample_scene(quiet, 11, i)
        assert [s for s in with_off.sources if s.visible] == without.sources
        assert with_off.camera.yaw.tolist() == without.camera.yaw.tolist()
        assert with_off.background == without.background
    scenes = [sample_scene(config, 11, i) for i in range(30)]
    distractors = [(sc, s) for sc in scenes for s in sc.sources if not s.visible]
    assert distractors, "30 scenes should hold some distractors"
    for scene, s in distractors:
        offset = (s.path.az0 - scene.camera.yaw[0] + np.pi) % (2 * np.pi) - np.pi
        assert abs(offset) >= math.radians(110)
    for scene in scenes:
        labels = [s.label for s in scene.sources]
        assert len(set(labels)) == len(labels)  # distinct classes -> separable bands
        assert 1 <= sum(s.visible for s in scene.sources) <= config.max_sources


# ----------------------------------------------------------------------------- metadata/manifest


def test_metadata_round_trip_and_errors(dataset: Path, tmp_path: Path) -> None:
    clip = _clip_dirs(dataset)[0]
    meta = read_meta(clip)
    assert meta.schema_version == 1 and meta.n_frames == 12 and meta.files == FILE_ROLES
    raw = json.loads((clip / "meta.json").read_text())
    assert meta.to_dict() == raw
    assert ClipMeta.from_dict(raw) == meta
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path / "meta.json") == meta

    def broken(change: dict) -> Path:
        path = tmp_path / "broken.json"
        path.write_text(json.dumps({**raw, **change}))
        return path

    with pytest.raises(MediaError, match="newer"):
        read_meta(broken({"schema_version": 2}))
    with pytest.raises(MediaError, match="camera_mode"):
        read_meta(broken({"camera_mode": "drone"}))
    with pytest.raises(MediaError, match="frame_times"):
        read_meta(broken({"frame_times": raw["frame_times"][:-1]}))
    bad_source = dict(raw["sources"][0], activity=[1.0])
    with pytest.raises(MediaError, match="activity"):
        read_meta(broken({"sources": [bad_source]}))
    without = {k: v for k, v in raw.items() if k != "camera"}
    (tmp_path / "missing.json").write_text(json.dumps(without))
    with pytest.raises(MediaError, match="missing keys"):
        read_meta(tmp_path / "missing.json")
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(MediaError, match="not valid JSON"):
        read_meta(tmp_path / "garbage.json")
    with pytest.raises(MediaError, match="file not found"):
        read_meta(tmp_path / "nope")
    with pytest.raises(MediaError, match="no 'depth' file"):
        meta.path(clip, "depth")


def test_manifest_splits_disjoint_and_complete(dataset: Path) -> None:
    manifest = read_manifest(dataset)
    ids = [c.clip_id for c in manifest.clips]
    assert ids == [f"clip_{i:06d}" for i in range(N_CLIPS)]
    parts = [{c.clip_id for c in manifest.split(s)} for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == N_CLIPS and set().union(*parts) == set(ids)
    with (dataset / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["clip_id"], r["split"], r["labels"].split(";")) for r in rows] == [
        (c.clip_id, c.split, c.labels) for c in manifest.clips
    ]
    for entry in manifest.clips:
        assert entry.labels == [s.label for s in read_meta(dataset / entry.path).sources]
    ratios = {"train": 0.7, "val": 0.2, "test": 0.1}
    labels = assign_splits(50, 1, ratios)
    assert (labels.count("train"), labels.count("val"), labels.count("test")) == (35, 10, 5)
    assert labels == assign_splits(50, 1, ratios) != assign_splits(50, 2, ratios)
    with pytest.raises(ValueError, match="split ratios"):
        assign_splits(10, 0, {"train": 0.5, "val": 0.1, "test": 0.1})


# ------------------------------------------------------------------------------------------ CLI


def test_cli_writes_clips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [
        "--out",
        str(out),
        "--n-clips",
        "2",
        "--seed",
        "4",
        "--duration",
        "1",
        "--camera",
        "fixed",
        "--quiet",
    ]
    assert synth_main(argv) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    for i in range(2):
        clip = out / f"clip_{i:06d}"
        assert sorted(p.name for p in clip.iterdir()) == sorted([*FILE_ROLES.values(), "meta.json"])
        meta = read_meta(clip)
        assert meta.camera_mode == "fixed" and meta.n_frames == 8
        foa_audio, sr = read_audio(clip / "foa.wav")
        assert sr == 16000 and tuple(foa_audio.shape) == (4, 16000)
        assert read_audio(clip / "binaural.wav")[0].shape[0] == 2
        assert tuple(read_video(clip / "equirect.mp4")[0].shape) == (8, 3, 256, 512)
    # An existing dataset is not overwritten silently.
    assert synth_main(argv) == 2
    assert "overwrite" in capsys.readouterr().err
    assert synth_main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-clips", "0"], "positive integer"),
        (["--n-clips", "1", "--camera", "drone"], "invalid choice"),
        (["--n-clips", "1", "--sample-rate", "8000"], "sample_rate must be an integer >= 16000"),
        (["--n-clips", "1", "--max-sources", "9"], "max_sources"),
        (["--n-clips", "1", "--hrir", "kemmar"], "unknown HRIR set 'kemmar'"),
    ],
)
def test_cli_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        code = synth_main(["--out", str(tmp_path / "x"), "--quiet", *args])
    except SystemExit as e:  # argparse rejects malformed values itself (exit 2, usage + one line)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "manifest.json").exists()
