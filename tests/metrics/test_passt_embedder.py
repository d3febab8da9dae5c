"""PaSST embedder: front-end vs numpy, released-key conversion + forward vs reference, size, offline error;
``spatialgen evaluate --video`` with tiny scorers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spatialgen.metrics.embedders import create_embedder
from spatialgen.metrics.embedders.passt import PaSST
from spatialgen.weights import WeightsNotFoundError
from tests.metrics._av_refs import attention, gelu_mlp, kaldi_mel_ref, ln, stft_power_ref

TINY = dict(dim=16, depth=1, heads=2, n_mels=32, seconds=1.0, time_patches=9)


def test_frontend_matches_numpy_reference():
    emb = PaSST(**{**TINY, "n_mels": 128})
    x = np.random.default_rng(0).standard_normal(20000) * 0.1  # shorter than 1 s: zero-padded
    ours = emb.features(torch.from_numpy(x)[None].float())[0, 0].double().numpy()
    xp = np.pad(x, (0, 32000 - 20000))
    pre = xp[1:] - 0.97 * xp[:-1]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 799)  # symmetric
    mel = kaldi_mel_ref(128, 1024, 32000, 0.0, 15000.0) @ stft_power_ref(pre, 1024, 320, hann)
    ref = (np.log(mel + 1e-5) + 4.5) / 5
    assert ours.shape == ref.shape == (128, 100)
    np.testing.assert_allclose(ours, ref, atol=2e-4)  # float32 STFT


def _official(gen):
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    d = TINY["dim"]
    sd = {"patch_embed.proj.weight": r(d, 1, 16, 16), "patch_embed.proj.bias": r(d)}
    sd |= {"cls_token": r(1, 1, d), "dist_token": r(1, 1, d), "new_pos_embed": r(1, 2, d)}
    sd |= {"freq_new_pos_embed": r(1, d, 2, 1), "time_new_pos_embed": r(1, d, 1, 9)}
    b = "blocks.0."
    sd |= {b + "attn.qkv.weight": r(3 * d, d), b + "attn.qkv.bias": r(3 * d)}
    sd |= {b + "attn.proj.weight": r(d, d), b + "attn.proj.bias": r(d)}
    sd |= {b + "mlp.fc1.weight": r(4 * d, d), b + "mlp.fc1.bias": r(4 * d)}
    sd |= {b + "mlp.fc2.weight": r(d, 4 * d), b + "mlp.fc2.bias": r(d)}
    for nm in (b + "norm1", b + "norm2", "norm", "head.0"):
        sd |= {nm + ".weight": 1 + r(d), nm + ".bias": r(d)}
    sd |= {
        "head.1.weight": r(527, d),
        "head.1.bias": r(527),
        "head_dist.weight": r(527, d),
        "head_dist.bias": r(527),
    }
    return sd


def test_released_layout_loads_and_forward_equals_reference(tmp_path):
    sd = _official(torch.Generator().manual_seed(0))
    torch.save(sd, tmp_path / "passt.pt")
    emb = create_embedder("passt", pretrained=tmp_path / "passt.pt", **TINY)
    wave = torch.randn(2, 32000)
    out = emb(wave)
    spec = emb.features(wave - wave.mean(-1, keepdim=True))  # [2, 1, 32, 100] -> 2 x 9 patches
    x = F.conv2d(spec, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=10)
    x = (x + sd["time_new_pos_embed"] + sd["freq_new_pos_embed"]).flatten(2).transpose(1, 2)
    sp = torch.cat([sd["cls_token"], sd["dist_token"]], 1) + sd["new_pos_embed"]
    x = torch.cat([sp.expand(2, -1, -1), x], 1)
    q, k, v = F.linear(
        ln(x, sd, "blocks.0.norm1", 1e-6), sd["blocks.0.attn.qkv.weight"], sd["blocks.0.attn.qkv.bias"]
    ).chunk(3, -1)
    x = x + F.linear(attention(q, k, v, 2), sd["blocks.0.attn.proj.weight"], sd["blocks.0.attn.proj.bias"])
    x = ln(
        x + gelu_mlp(ln(x, sd, "blocks.0.norm2", 1e-6), sd, "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"),
        sd,
        "norm",
        1e-6,
    )
    e = (x[:, 0] + x[:, 1]) / 2
    logits = F.linear(ln(e, sd, "head.0", 1e-5), sd["head.1.weight"], sd["head.1.bias"])
    assert out.embeddings.shape == (2, 1, 16) and out.logits.shape == (2, 527)
    torch.testing.assert_close(out.embeddings[:, 0], e, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)


def test_full_size_on_meta_and_offline_error(tmp_path, monkeypatch):
    with torch.device("meta"):
        emb = PaSST()
    # PaSST-S (DeiT-B/16, stride 10, 12 x 99 patches) without the unused head_dist: 85,748,495
    # (86,153,758 with it, the ~86M of the release)
    assert sum(p.numel() for p in emb.parameters()) == 85_748_495
    assert emb.time_new_pos_embed.shape == (1, 768, 1, 99) and emb.freq_new_pos_embed.shape == (1, 768, 12, 1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"passt-s-f128-p16-s10-ap\.476-swa\.pt.*kkoutini/PaSST"):
        create_embedder("passt", pretrained=True)


def test_evaluate_video_writes_ib_and_desync(tmp_path):
    from spatialgen.evaluate import main
    from spatialgen.io import write_audio, write_video

    rng = np.random.default_rng(0)
    for d in ("pred", "gt", "video"):
        (tmp_path / d).mkdir()
    for stem in ("clip_a", "clip_b"):
        for d in ("pred", "gt"):
            write_audio(tmp_path / d / f"{stem}.wav", rng.standard_normal((2, 16000)) * 0.1, 16000)
        frames = torch.from_numpy(rng.integers(0, 255, (8, 3, 16, 16), dtype=np.uint8))
        write_video(tmp_path / "video" / f"{stem}.mp4", frames, 8.0)
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--video", str(tmp_path / "video"),
            "--metrics", "ib,desync", "--ib-scorer", "tiny_imagebind", "--sync-scorer", "tiny_sync",
            "--seconds", "1", "--random-weights", "--no-progress", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ib, ds = report["metrics"]["ib_score"], report["metrics"]["desync"]
    assert -1.0 <= ib <= 1.0 and 0.0 <= ds <= 2.0
    assert set(report["per_clip"]["clip_a"]) == {"ib_score", "desync"}
    assert np.isclose(np.mean([report["per_clip"][s]["ib_score"] for s in ("clip_a", "clip_b")]), ib)
    table = (tmp_path / "out" / "metrics.md").read_text()
    assert "| ib_score |" in table and "| desync |" in table
    (tmp_path / "video" / "clip_b.mp4").unlink()
    assert main(args) == 2  # missing video: one-line error, exit status 2
    args[args.index("--video") : args.index("--video") + 2] = []
    assert main(args) == 2  # ib without --video
