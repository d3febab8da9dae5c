"""``spatialgen generate``: windowing, crossfades, outputs for long and short videos, bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spatialgen.generate import GenerateOptions, crossfade_concat, generate_video, main, plan_windows
from spatialgen.io import probe_video, read_audio, read_audio_track, read_spatial_audio_box, write_video
from spatialgen.models.windows import row_seeds
from spatialgen.spatial import doa, foa
from tests.fake_pipeline import FakeFoaPipeline, make_video


class LeftSource(FakeFoaPipeline):
    """Noise from +60° azimuth, whose level encodes the mean brightness of the window's frames."""

    kind = "test-left-source"

    def generate(self, frames, *, camera_direction=None, seed=None, **sampling):
        video = frames["enc"]
        self.calls.append(tuple(video.shape))
        n = int(self.clip_seconds * self.sample_rate)
        seeds = row_seeds(seed, video.shape[0]) or [0] * video.shape[0]
        noise = torch.stack([torch.randn(n, generator=torch.Generator().manual_seed(s)) for s in seeds]) * 0.1
        return foa.encode(noise, math.radians(60), 0.0)


def test_plan_windows() -> None:
    assert plan_windows(1.5, 5.0, 1.0) == [0.0]
    assert plan_windows(5.0, 5.0, 1.0) == [0.0]
    assert plan_windows(13.0, 5.0, 1.0) == [0.0, 4.0, 8.0]
    starts = plan_windows(14.0, 5.0, 1.0)
    assert starts == [0.0, 4.0, 8.0, 9.0]  # the last window is aligned to the end
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10.0, 5.0, 5.0)


def test_crossfade_is_equal_power_and_exact_outside_overlaps() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 40_000, generator=gen), torch.randn(1, 40_000, generator=gen)
    out = crossfade_concat([a, b], [0, 30_000], 70_000)
    assert out.shape == (1, 70_000)
    assert torch.equal(out[:, :30_000], a[:, :30_000]) and torch.equal(out[:, 40_000:], b[:, 10_000:])
    mid = out[:, 30_000:40_000]
    assert mid.pow(2).mean().item() == pytest.approx(1.0, abs=0.05)  # independent windows keep their level
    with pytest.raises(ValueError, match="gap"):
        crossfade_concat([a, b], [0, 50_000], 90_000)


def test_long_video_is_windowed_and_written(tmp_path: Path) -> None:
    video = make_video(tmp_path / "long.mp4", 30.0)
    pipe = LeftSource()
    paths = generate_video(video, pipe, GenerateOptions(out_dir=tmp_path / "out", batch_size=8))
    names = sorted(p.name for p in paths)
    assert names == ["long.binaural.mp4", "long.binaural.wav", "long.foa.mp4", "long.foa.wav"]
    assert sum(c[0] for c in pipe.calls) == len(plan_windows(30.0, 2.0, 1.0)) == 29
    assert all(c[1:] == (8, 3, 32, 48) for c in pipe.calls)  # 2 s at 4 fps, native size
    audio, sr = read_audio(tmp_path / "out" / "long.foa.wav")
    assert audio.shape == (4, 30 * 8000) and sr == 8000
    az, _ = doa.intensity_doa(audio.double(), sr)
    assert math.degrees(az) == pytest.approx(60.0, abs=2.0)
    mp4 = tmp_path / "out" / "long.foa.mp4"
    track, _ = read_audio_track(mp4)
    assert track.shape[0] == 4 and probe_video(mp4).duration == pytest.approx(30.0, abs=0.1)
    assert read_spatial_audio_box(mp4) is not None
    ears, _ = read_audio(tmp_path / "out" / "long.binaural.wav")
    assert ears.shape == (2, 30 * 8000)
    assert ears[0].pow(2).mean() > 2 * ears[1].pow(2).mean()  # the +60° source is on the left


def test_short_video_is_padded_and_trimmed(tmp_path: Path) -> None:
    video = make_video(tmp_path / "short.mp4", 1.0)
    pipe = LeftSource()
    options = GenerateOptions(out_dir=tmp_path / "out", format="foa", mp4=False)
    assert [p.name for p in generate_video(video, pipe, options)] == ["short.foa.wav"]
    assert pipe.calls == [(1, 8, 3, 32, 48)]
    audio, _ = read_audio(tmp_path / "out" / "short.foa.wav")
    assert audio.shape == (4, 8000)


def test_main_reports_bad_files_and_continues(tmp_path: Path, capsys) -> None:
    good = make_video(tmp_path / "good.mp4", 1.0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    code = main(
        [str(bad), str(good), "--model", "x", "--out", str(tmp_path / "o"), "--no-mp4"],
        lambda name: LeftSource(),
    )
    captured = capsys.readouterr()
    assert code == 1
    assert (tmp_path / "o" / "good.foa.wav").is_file()
    errors = [line for line in captured.err.splitlines() if "bad.mp4" in line]
    assert len(errors) == 1 and "Traceback" not in captured.err


def test_dry_run_generates_nothing(tmp_path: Path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 3.0)
    assert (
        main(
            [str(video), "--model", "x", "--out", str(tmp_path / "o"), "--dry-run"], lambda name: LeftSource()
        )
        == 0
    )
    assert "2 window(s)" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_one_frame_video_is_padded_to_a_window(tmp_path: Path) -> None:
    video = write_video(tmp_path / "one.mp4", torch.full((1, 3, 32, 48), 90, dtype=torch.uint8), 8.0)
    pipe = LeftSource()
    options = GenerateOptions(out_dir=tmp_path / "out", format="foa", mp4=False)
    assert [p.name for p in generate_video(video, pipe, options)] == ["one.foa.wav"]
    assert pipe.calls == [(1, 8, 3, 32, 48)]  # the single frame repeated over the 2-s window
    audio, sr = read_audio(tmp_path / "out" / "one.foa.wav")
    assert audio.shape == (4, round(probe_video(video).duration * sr)) and audio.abs().max() > 0


def test_batch_size_never_changes_the_audio(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", 7.0)
    out = {}
    for batch in (1, 4):
        options = GenerateOptions(out_dir=tmp_path / f"b{batch}", format="foa", mp4=False, batch_size=batch)
        generate_video(video, LeftSource(), options)
        out[batch] = read_audio(tmp_path / f"b{batch}" / "v.foa.wav")[0]
    assert torch.equal(out[1], out[4])
