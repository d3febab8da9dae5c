"""``spatialgen generate`` command line: every misuse is one line before any work; inputs, outputs, options."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from spatialgen import cli
from spatialgen.generate import main
from spatialgen.io import read_audio
from spatialgen.models.pipeline import GenerationPipeline
from spatialgen.spatial import foa
from tests.fake_pipeline import FakeFoaPipeline, make_video


class FakeVisage(FakeFoaPipeline):
    """A FOA pipeline that declares ViSAGe's sampling options and records what it was called with."""

    kind = "test-fake-visage"

    @property
    def sampling_options(self):
        from spatialgen.models.visage.pipeline import ViSAGePipeline

        return ViSAGePipeline.sampling_options.fget(self)

    def generate(self, frames, *, camera_direction=None, seed=None, **sampling):
        video = frames["enc"]
        self.calls.append({"shape": tuple(video.shape), **sampling})
        noise = torch.randn(video.shape[0], int(self.clip_seconds * self.sample_rate)) * 0.1
        return foa.encode(noise, math.radians(60), 0.0)


def never_load(name: str) -> GenerationPipeline:
    raise AssertionError("the model must not be loaded when an option is wrong")


def run(argv: list[str], loader, capsys) -> tuple[int, str, str]:
    code = main(argv, loader)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--batch-size", "-2"], "--batch-size must be at least 1, got -2"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        (["--overlap", "-1"], "--overlap must be a number of seconds >= 0"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--sample", "top_k"], "--sample takes NAME=VALUE"),
        (["--camera-direction", "north"], "--camera-direction must be 'AZ,EL'"),
    ],
)
def test_bad_options_are_one_line_before_the_model_loads(tmp_path, capsys, extra, needle) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    code, _, err = run([str(video), "--model", "x", "--out", str(tmp_path / "o"), *extra], never_load, capsys)
    assert code == 2 and needle in one_error_line(err)


def test_out_naming_a_file_and_missing_inputs_are_refused_first(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    (tmp_path / "file").write_text("x")
    code, _, err = run([str(video), "--model", "x", "--out", str(tmp_path / "file")], never_load, capsys)
    assert code == 2 and "--out" in one_error_line(err) and "is a file" in err
    code, _, err = run(
        [str(tmp_path / "nope.mp4"), "--model", "x", "--out", str(tmp_path)], never_load, capsys
    )
    assert code == 2 and "nope.mp4: file not found" in one_error_line(err)
    (tmp_path / "empty").mkdir()
    code, _, err = run(
        [str(tmp_path / "empty"), "--model", "x", "--out", str(tmp_path / "o")], never_load, capsys
    )
    assert code == 2 and "holds no video" in one_error_line(err)


def test_cuda_without_a_gpu_is_refused_before_loading(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    video = make_video(tmp_path / "v.mp4", 1.0)
    for device in ("cuda", "cuda:1"):
        argv = [str(video), "--model", "x", "--out", str(tmp_path / "o"), "--device", device]
        code, _, err = run(argv, never_load, capsys)
        assert code == 2 and f"--device {device}: torch sees no CUDA GPU" in one_error_line(err)


def test_visage_rejects_flow_options_and_names_its_own(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    base = [str(video), "--model", "vis", "--out", str(tmp_path / "o")]
    for extra, flag in ((["--steps", "10"], "--steps"),):
        pipe = FakeVisage()
        code, _, err = run([*base, *extra], lambda name, pipe=pipe: pipe, capsys)
        line = one_error_line(err)
        assert code == 2 and line.startswith(f"spatialgen generate: error: {flag}: --model vis has no")
        assert "guidance, cfg_scale, direction_cfg_scale, temperature, top_k, top_p, do_sample" in line
        assert pipe.calls == [] and not (tmp_path / "o").exists()
    code, _, err = run([*base, "--sample", "top_kk=3"], lambda name: FakeVisage(), capsys)
    assert code == 2 and "did you mean 'top_k'?" in one_error_line(err)
    code, _, err = run([*base, "--sample", "guidance=both"], lambda name: FakeVisage(), capsys)
    assert code == 2 and "--sample guidance=both: expected one of none, joint, dual" in one_error_line(err)


def test_visage_sampling_options_reach_generate(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    pipe = FakeVisage()
    argv = [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--no-mp4", "--format", "foa"]
    argv += ["--sample", "guidance=dual", "--sample", "top_k=none", "--sample", "temperature=0.7"]
    argv += ["--sample", "do_sample=false", "--cfg-scale", "3"]
    code, _, _ = run(argv, lambda name: pipe, capsys)
    assert code == 0
    assert pipe.calls == [{"shape": (1, 8, 3, 32, 48), "guidance": "dual", "top_k": None, "temperature": 0.7,
                           "do_sample": False, "cfg_scale": 3.0}]  # fmt: skip


def test_sample_help_lists_the_models_options(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    code, out, _ = run(
        [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--sample", "help"],
        lambda name: FakeVisage(),
        capsys,
    )
    assert code == 0 and "top_k" in out and "int|none, default 256" in out
    assert not (tmp_path / "o").exists()


def test_declared_sampling_options_match_generate_signatures() -> None:
    from spatialgen.models.visage.pipeline import ViSAGePipeline
    from spatialgen.models.visaudio.pipeline import _DEFAULT_SAMPLING, ViSAudioPipeline

    declared = {
        ViSAGePipeline: ViSAGePipeline.sampling_options.fget(None),
        ViSAudioPipeline: ViSAudioPipeline.sampling_options.fget(SimpleNamespace(sampling=_DEFAULT_SAMPLING)),
    }
    for cls, options in declared.items():
        params = inspect.signature(cls.generate).parameters
        kwonly = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"camera_direction", "seed"}
        # the window length is the pipeline's, the prompt has its own option (--prompt): neither is --sample
        assert set(options) == kwonly - {"seconds", "prompt"}, cls
        for name, option in options.items():
            if params[name].default is not None:
                assert option.default == params[name].default, (cls, name)
    assert declared[ViSAudioPipeline]["steps"].default == _DEFAULT_SAMPLING["steps"]


def test_overlap_beyond_half_the_window_is_refused(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 5.0)
    pipe = FakeVisage()
    argv = [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--overlap", "5"]
    code, _, err = run(argv, lambda name: pipe, capsys)
    assert code == 2 and "--overlap 5: at most half of the model's 2 s window (1 s)" in one_error_line(err)
    assert pipe.calls == []


def test_same_names_in_two_folders_never_share_an_output(tmp_path, capsys) -> None:
    a, b = (
        make_video(tmp_path / "in" / "a" / "clip.mp4", 1.0),
        make_video(tmp_path / "in" / "b" / "clip.mp4", 1.0),
    )
    out = tmp_path / "o"
    pipe = FakeVisage()
    code, _, err = run([str(a), str(b), "--model", "vis", "--out", str(out)], lambda name: pipe, capsys)
    line = one_error_line(err)
    assert code == 2 and "would both write" in line and "common parent folder" in line and pipe.calls == []
    # A folder keeps the relative paths (recursive, sorted); our own outputs inside it are skipped.
    argv = [str(tmp_path / "in"), "--model", "vis", "--out", str(tmp_path / "in" / "out"), "--no-mp4"]
    code, _, _ = run(argv, lambda name: pipe, capsys)
    assert code == 0 and len(pipe.calls) == 2
    written = sorted(
        p.relative_to(tmp_path / "in" / "out").as_posix() for p in (tmp_path / "in" / "out").rglob("*.wav")
    )
    assert written == ["a/clip.binaural.wav", "a/clip.foa.wav", "b/clip.binaural.wav", "b/clip.foa.wav"]
    code, _, err = run([*argv, "--overwrite"], lambda name: pipe, capsys)
    assert code == 0 and len(pipe.calls) == 4  # the earlier outputs are not taken for inputs
    code, _, err = run([str(a), str(a), "--model", "vis", "--out", str(out)], lambda name: pipe, capsys)
    assert code == 2 and f"{a}: given twice; pass each video once" in one_error_line(err)


def test_existing_outputs_need_overwrite(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    out = tmp_path / "o"
    out.mkdir()
    (out / "v.foa.wav").write_bytes(b"old")
    pipe = FakeVisage()
    argv = [str(video), "--model", "vis", "--out", str(out), "--no-mp4", "--format", "foa"]
    code, _, err = run(argv, lambda name: pipe, capsys)
    assert code == 2 and f"{out / 'v.foa.wav'} exists; pass --overwrite" in one_error_line(err)
    assert pipe.calls == [] and (out / "v.foa.wav").read_bytes() == b"old"
    code, _, _ = run([*argv, "--overwrite"], lambda name: pipe, capsys)
    assert code == 0 and read_audio(out / "v.foa.wav")[0].shape == (4, 8000)


def test_one_frame_video_passes_dry_run_and_real_run(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "one.mp4", 0.125)  # a single frame at 8 fps
    pipe = FakeVisage()
    base = [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--format", "foa"]
    code, out, _ = run([*base, "--dry-run"], lambda name: pipe, capsys)
    assert code == 0 and "1 window(s); ok" in out
    code, _, err = run(base, lambda name: pipe, capsys)
    assert code == 0, err
    assert pipe.calls[0]["shape"] == (1, 8, 3, 32, 48)  # the one frame, repeated over the window
    audio, sr = read_audio(tmp_path / "o" / "one.foa.wav")
    assert audio.shape == (4, 1000) and sr == 8000  # trimmed back to the video's 0.125 s


def test_real_visaudio_takes_cfg_scale_and_steps(tmp_path, capsys) -> None:
    from zoo import load_pretrained

    video = make_video(tmp_path / "v.mp4", 1.0)
    argv = [str(video), "--model", "visaudio-debug", "--out", str(tmp_path / "o"), "--no-mp4"]
    code, _, err = run(
        [*argv, "--cfg-scale", "3", "--steps", "2", "--sample", "method=heun"], load_pretrained, capsys
    )
    assert code == 0, err
    assert read_audio(tmp_path / "o" / "v.binaural.wav")[0].shape == (2, 16000)
    code, _, err = run([*argv, "--sample", "top_k=5"], load_pretrained, capsys)
    assert code == 2 and "it takes: cfg_scale, steps, method, sequential" in one_error_line(err)
    code, _, err = run([*argv, "--format", "foa"], load_pretrained, capsys)
    assert code == 2 and "--format foa: --model visaudio-debug generates binaural audio" in one_error_line(
        err
    )
    code, _, err = run([*argv, "--camera-direction", "30,0"], load_pretrained, capsys)
    assert code == 2 and "--camera-direction: --model visaudio-debug generates binaural" in one_error_line(
        err
    )


def test_unknown_hrir_is_refused_before_generating(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    pipe = FakeVisage()
    argv = [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--hrir", "mit-kemr"]
    code, _, err = run(argv, lambda name: pipe, capsys)
    assert code == 2 and one_error_line(err).startswith("spatialgen generate: error: --hrir mit-kemr: ")
    assert pipe.calls == []
    code, _, _ = run([*argv, "--format", "foa", "--dry-run"], lambda name: pipe, capsys)
    assert code == 0  # no binaural output, no HRIR needed


def test_debug_shows_the_traceback(tmp_path, monkeypatch) -> None:
    from spatialgen.errors import SpatialgenError

    video = make_video(tmp_path / "v.mp4", 1.0)
    with pytest.raises(SpatialgenError, match="--batch-size"):
        main(
            [str(video), "--model", "x", "--out", str(tmp_path / "o"), "--batch-size", "0", "--debug"],
            never_load,
        )
    monkeypatch.setenv("SPATIALGEN_DEBUG", "1")
    with pytest.raises(SpatialgenError, match="--batch-size"):
        main([str(video), "--model", "x", "--out", str(tmp_path / "o"), "--batch-size", "0"], never_load)


def test_help_is_light_and_shows_defaults_and_examples() -> None:
    code = (
        "import sys; from spatialgen.cli import main\n"
        "try:\n    main(['generate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'av', 'zoo', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "(default: 4)" in out and "examples:" in out and "--sample help" in out


def test_generate_errors_via_the_spatialgen_command(tmp_path, capsys) -> None:
    assert (
        cli.main(
            ["generate", str(tmp_path / "x.mp4"), "--model", "m", "--out", str(tmp_path), "--batch-size", "0"]
        )
        == 2
    )
    assert "spatialgen generate: error: --batch-size" in one_error_line(capsys.readouterr().err)


def test_truncated_input_is_announced_and_generated(tmp_path, capsys) -> None:
    from tests.io.test_video import H, W, _write_faststart

    noise = torch.randint(
        0, 256, (48, 3, H, W), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    full = _write_faststart(tmp_path / "full.mp4", noise, 8)  # 6 s at 8 fps
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    pipe = FakeVisage()
    argv = [str(cut), "--model", "vis", "--out", str(tmp_path / "o"), "--format", "foa", "--no-mp4"]
    code, _, err = run(argv, lambda name: pipe, capsys)
    line = one_error_line(err)
    assert code == 0 and "cut.mp4 is truncated: its header says 6.00 s but its data end at" in line
    seconds = float(line.split("data end at ")[1].split(" s")[0])
    assert 1.0 < seconds < 5.0
    audio, sr = read_audio(tmp_path / "o" / "cut.foa.wav")
    assert audio.shape[1] == pytest.approx(seconds * sr, abs=0.01 * sr)


def test_generate_video_keeps_existing_outputs_when_asked(tmp_path) -> None:
    from spatialgen.errors import SpatialgenError
    from spatialgen.generate import GenerateOptions, generate_video

    video = make_video(tmp_path / "v.mp4", 1.0)
    out = tmp_path / "o"
    out.mkdir()
    (out / "v.binaural.wav").write_bytes(b"old")
    options = GenerateOptions(out_dir=out, mp4=False, overwrite=False)
    with pytest.raises(SpatialgenError, match=r"v\.binaural\.wav exists; pass --overwrite"):
        generate_video(video, FakeVisage(), options)
    assert (out / "v.binaural.wav").read_bytes() == b"old" and not (out / "v.foa.wav").exists()
    written = generate_video(video, FakeVisage(), GenerateOptions(out_dir=out, mp4=False))  # library default
    assert sorted(p.name for p in written) == ["v.binaural.wav", "v.foa.wav"]
