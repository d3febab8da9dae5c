"""``spatialgen generate --prompt`` and ``GenerateOptions.prompt``: the text reaches every window's
``generate`` through ``generate_long``, changes a text-conditioned ViSAudio's audio, and a model without
text conditioning refuses it with one line before anything is generated."""

from __future__ import annotations

import pytest
import torch

from spatialgen.errors import SpatialgenError
from spatialgen.generate import GenerateOptions, generate_video, main
from tests.test_generate_cli import FakeVisage, make_video, never_load, one_error_line, run


class FakeTextModel(FakeVisage):
    """The fake FOA pipeline with text conditioning: it records the prompt each window is generated with."""

    kind = "test-fake-text"

    @property
    def takes_prompt(self) -> bool:
        return True


def test_prompt_reaches_every_window(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 3.0)  # 2-s windows, 1 s overlap: two windows
    pipe = FakeTextModel()
    argv = [str(video), "--model", "t", "--out", str(tmp_path / "o"), "--no-mp4", "--format", "foa"]
    code, _, err = run([*argv, "--prompt", "a dog barks", "--batch-size", "1"], lambda name: pipe, capsys)
    assert code == 0, err
    assert [c["prompt"] for c in pipe.calls] == ["a dog barks", "a dog barks"]
    pipe.calls.clear()
    code, _, _ = run([*argv, "--overwrite"], lambda name: pipe, capsys)
    assert code == 0 and pipe.calls and all("prompt" not in c for c in pipe.calls)  # no prompt: not passed


def test_model_without_text_refuses_prompt_in_one_line(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    pipe = FakeVisage()
    argv = [str(video), "--model", "vis", "--out", str(tmp_path / "o"), "--prompt", "rain"]
    code, _, err = run(argv, lambda name: pipe, capsys)
    assert code == 2 and pipe.calls == [] and not (tmp_path / "o").exists()
    assert one_error_line(err) == (
        "spatialgen generate: error: --prompt: --model vis has no text conditioning; leave --prompt out "
        "(text-conditioned models: ViSAudio with a text stream, e.g. the visaudio-mmaudio-* zoo entries)"
    )
    with pytest.raises(SpatialgenError, match="no text conditioning"):  # the Python API
        generate_video(video, pipe, GenerateOptions(out_dir=tmp_path / "o", format="foa", prompt="rain"))
    frames = {"enc": torch.zeros(4, 3, 32, 48, dtype=torch.uint8)}
    with pytest.raises(ValueError, match="FakeVisage has no text conditioning"):
        pipe.generate_long(frames, prompt="rain")
    assert pipe.calls == []


def test_multiline_prompt_is_refused_before_the_model_loads(tmp_path, capsys) -> None:
    video = make_video(tmp_path / "v.mp4", 1.0)
    code = main([str(video), "--model", "m", "--out", str(tmp_path / "o"), "--prompt", "a\nb"], never_load)
    assert code == 2
    assert one_error_line(capsys.readouterr().err).endswith(
        "--prompt must be one line of text (no line breaks)"
    )


def test_prompt_conditions_a_real_visaudio(tmp_path, monkeypatch) -> None:
    """visaudio-debug (a text stream of 4 tokens): the prompt's features enter the network and change the
    audio; the empty prompt is the same as none (MMAudio's empty-string features)."""
    import spatialgen.models.visaudio.pipeline as visaudio_pipeline
    from zoo import load_pretrained

    seen: list[tuple] = []

    def fake_text_tower(prompt, batch_size, *, width, device=None, encoder="clip_text_h14_384"):
        seen.append((prompt, batch_size))  # the published DFN5B tower is not offline; features by hash
        if not prompt:
            return None
        g = torch.Generator().manual_seed(len(prompt))
        return torch.randn(batch_size, 4, width, generator=g).to(device)

    monkeypatch.setattr(visaudio_pipeline, "prompt_features", fake_text_tower)
    pipe = load_pretrained("visaudio-debug")
    assert pipe.takes_prompt
    video = make_video(tmp_path / "v.mp4", 1.0)
    outs = {}
    for name, prompt in (("none", None), ("empty", ""), ("text", "footsteps on gravel")):
        opts = GenerateOptions(out_dir=tmp_path / name, format="binaural", mp4=False, prompt=prompt,
                               sampling={"steps": 2})  # fmt: skip
        from spatialgen.io import read_audio

        outs[name] = read_audio(generate_video(video, pipe, opts)[0])[0]
    assert ("footsteps on gravel", 1) in seen
    assert torch.equal(outs["none"], outs["empty"])
    assert not torch.allclose(outs["none"], outs["text"], atol=1e-4)
