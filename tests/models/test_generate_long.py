"""``GenerationPipeline.generate_long``: per-window seeds (batch size never changes the audio), windows,
short-video padding and the window helpers, for both models (the zoo's debug pipelines)."""

from __future__ import annotations

import pytest
import torch

from spatialgen.models.windows import plan_windows, row_seeds, window_frames, window_seed
from zoo import load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["visage-debug", "visaudio-debug"])
def pipe(request):
    return load_pretrained(request.param)


def _video(pipe, seconds: float, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.randint(0, 256, (max(1, round(seconds * fps)), 3, 40, 56), generator=g, dtype=torch.uint8)
        for name, fps in pipe.frame_rates.items()
    }


def _sampling(pipe) -> dict:
    # ViSAGe: top-k sampling (the released setting) so every token is a random draw
    return {"top_k": 8, "temperature": 1.0} if pipe.kind == "visage" else {"steps": 2}


def test_batch_size_does_not_change_the_audio(pipe):
    frames = _video(pipe, 2.0)
    kw = {"duration": 2.0, "seed": 7, "overlap": 0.5, **_sampling(pipe)}
    one = pipe.generate_long(frames, batch_size=1, **kw)
    four = pipe.generate_long(frames, batch_size=4, **kw)
    assert one.shape == (pipe.num_channels, round(2.0 * pipe.sample_rate))
    if pipe.kind == "visage":
        assert torch.equal(one, four)  # the same tokens: bit-identical audio
    else:  # the same noise; batched matrix products may round differently in the last bits
        torch.testing.assert_close(one, four, rtol=1e-5, atol=1e-5)
    other = pipe.generate_long(frames, batch_size=4, **{**kw, "seed": 8})
    assert not torch.allclose(one, other)  # the seed matters


def test_window_equals_generate_with_its_seed(pipe):
    """generate_long on a one-window video is generate() on the padded frames with window_seed(seed, 0)."""
    frames = _video(pipe, 0.5)
    long = pipe.generate_long(frames, seed=3, **_sampling(pipe))
    window = window_frames(frames, pipe.frame_rates, 0.0, pipe.clip_seconds)
    batch = {n: v[None] for n, v in window.items()}
    direct = pipe.generate(batch, seed=[window_seed(3, 0)], **_sampling(pipe))[0]
    assert long.shape == (pipe.num_channels, round(0.5 * pipe.sample_rate))
    torch.testing.assert_close(long, direct[:, : long.shape[-1]], rtol=1e-5, atol=1e-5)


def test_one_frame_video_is_padded(pipe):
    frames = {n: v[:1] for n, v in _video(pipe, 1.0).items()}
    audio = pipe.generate_long(frames, duration=0.25, **_sampling(pipe))
    assert audio.shape == (pipe.num_channels, round(0.25 * pipe.sample_rate)) and bool(audio.isfinite().all())


def test_generate_long_rejects_bad_input(pipe):
    with pytest.raises(ValueError, match="frames lack the encoders"):
        pipe.generate_long({})
    with pytest.raises(ValueError, match="batch_size"):
        pipe.generate_long(_video(pipe, 1.0), batch_size=0)


def test_window_helpers():
    assert window_seed(0, 1) != window_seed(0, 0) != window_seed(1, 0)
    assert window_seed(5, 2) == window_seed(5, 2) and 0 <= window_seed(5, 2) < 2**63
    assert row_seeds(None, 3) is None and row_seeds(5, 2) == [window_seed(5, 0), window_seed(5, 1)]
    assert row_seeds([4, 9], 2) == [4, 9]
    with pytest.raises(ValueError, match="one per row"):
        row_seeds([1, 2, 3], 2)
    video = torch.arange(6, dtype=torch.uint8).reshape(6, 1, 1, 1).expand(6, 3, 2, 2)
    cut = window_frames({"e": video}, {"e": 2.0}, 1.5, 2.0)["e"][:, 0, 0, 0]
    assert cut.tolist() == [3, 4, 5, 5]  # from round(1.5 * 2) = 3; past the end repeats the last frame
    assert plan_windows(2.6, 1.0, 0.5) == [0.0, 0.5, 1.0, 1.5, 1.6]


def test_visage_encodes_each_frame_once_and_matches_per_window_encoding():
    from spatialgen.models.pipeline import LONG_VIDEO_STATE, GenerationPipeline

    pipe = load_pretrained("visage-debug")
    frames = _video(pipe, 3.0)
    (T,) = {v.shape[0] for v in frames.values()}
    encoded = []
    hook = pipe.encoder.register_forward_hook(lambda m, args, out: encoded.append(args[0].shape[1]))
    try:
        shared = pipe.generate_long(frames, seed=2, overlap=0.5, top_k=8)
    finally:
        hook.remove()
    windows = len(plan_windows(3.0, pipe.clip_seconds, 0.5))
    assert sum(encoded) == T < windows * pipe.config.source_length  # every frame once, not once per window
    assert LONG_VIDEO_STATE not in pipe.__dict__  # nothing of the video is kept afterwards
    starts = plan_windows(3.0, pipe.clip_seconds, 0.5)
    per_window = GenerationPipeline.generate_windows(
        pipe, frames, starts, seed=row_seeds(2, len(starts)), top_k=8
    )
    from spatialgen.models.windows import crossfade_concat

    sr = pipe.sample_rate
    joined = crossfade_concat(list(per_window.float()), [round(s * sr) for s in starts], round(3.0 * sr))
    torch.testing.assert_close(shared, joined, rtol=1e-5, atol=1e-5)
