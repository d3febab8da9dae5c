"""ImageBind scorer: kaldi fbank front-end, clip sampling, crops, official-key conversion, forward, sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spatialgen.metrics import create_av_scorer
from spatialgen.metrics.embedders.kaldi import kaldi_fbank, kaldi_mel_banks
from spatialgen.metrics.scorers.imagebind import (
    ImageBindConfig,
    ImageBindScorer,
    convert_imagebind_state_dict,
)
from spatialgen.weights import WeightsNotFoundError
from tests.metrics._av_refs import gelu_mlp, kaldi_fbank_ref, kaldi_mel_ref, ln, mha

TINY = dict(
    vision_dim=16, vision_depth=2, vision_heads=2, img_size=28, audio_dim=12, audio_depth=2, audio_heads=3,
    n_mels=32, target_frames=36, out_dim=8,
)  # fmt: skip


def test_kaldi_mel_banks_match_loop_reference():
    ours = kaldi_mel_banks(128, 512, 16000, 20.0, 0.0).numpy()
    np.testing.assert_allclose(ours, kaldi_mel_ref(128, 512, 16000, 20.0, 8000.0), atol=1e-12)
    assert ours[:, -1].max() == 0.0


def test_kaldi_fbank_matches_numpy_reference():
    x = np.random.default_rng(0).standard_normal(4000) * 0.1 + 0.05
    ours = kaldi_fbank(torch.from_numpy(x), 16000, 128).numpy()
    ref = kaldi_fbank_ref(x, 16000, 128)
    assert ours.shape == (1 + (4000 - 400) // 160, 128)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_audio_features_clip_starts_channel_zero_and_padding():
    scorer = ImageBindScorer(ImageBindConfig(**{**TINY, "n_mels": 128, "target_frames": 204}))
    rng = np.random.default_rng(1)
    wave = rng.standard_normal((1, 2, 8 * 16000))
    feats = scorer.audio_features(torch.from_numpy(wave))
    assert feats.shape == (1, 3, 1, 128, 204) and feats.dtype == torch.float64
    for k, start in enumerate((0, 3, 6)):  # 3 clips of 2 s, evenly spread over 8 s
        seg = wave[0, 0, start * 16000 : (start + 2) * 16000]
        ref = (kaldi_fbank_ref(seg - seg.mean(), 16000, 128).T + 4.268) / 9.138  # 198 frames
        np.testing.assert_allclose(feats[0, k, 0, :, :198].numpy(), ref, atol=1e-9)
        np.testing.assert_allclose(feats[0, k, 0, :, 198:].numpy(), 4.268 / 9.138)  # zero-padded fbank
    wave2 = wave.copy()
    wave2[0, 1] = 0.0  # the right channel is ignored (kaldi reads channel 0)
    torch.testing.assert_close(scorer.audio_features(torch.from_numpy(wave2)), feats)


def test_video_clips_crops_pairs_and_normalisation():
    scorer = ImageBindScorer(ImageBindConfig(**TINY))
    frames = torch.rand(1, 3, 3, 28, 40, dtype=torch.float64)  # already 28 high: crop only
    clips = scorer.video_clips(frames)
    assert clips.shape == (1, 2 * 3, 3, 2, 28, 28)  # (T-1) clips x 3 crops
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float64).view(3, 1, 1)
    for c in range(2):
        for j, off in enumerate((0, 6, 12)):  # left, centre, right
            for t in range(2):
                ref = (frames[0, c + t, :, :, off : off + 28] - mean) / std
                torch.testing.assert_close(clips[0, 3 * c + j, :, t], ref)
    tall = scorer.video_clips(torch.rand(2, 2, 3, 56, 28))  # portrait: top / centre / bottom crops
    assert tall.shape == (2, 3, 3, 2, 28, 28)
    with pytest.raises(ValueError, match="at least 2 frames"):
        scorer.video_clips(torch.rand(1, 1, 3, 28, 28))


def _official_state(cfg: ImageBindConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights in imagebind_huge.pth's key layout (from ImageBindModel's module tree)."""
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    sd = {}
    f, t = cfg.audio_grid
    towers = {
        "vision": (cfg.vision_dim, cfg.vision_depth, cfg.vision_patches, False),
        "audio": (cfg.audio_dim, cfg.audio_depth, f * t, True),
    }
    for m, (d, depth, n, bias_kv) in towers.items():
        sd[f"modality_preprocessors.{m}.cls_token"] = r(1, 1, d)
        sd[f"modality_preprocessors.{m}.pos_embedding_helper.pos_embed"] = r(1, 1 + n, d)
        for i in range(depth):
            b = f"modality_trunks.{m}.blocks.{i}."
            sd |= {b + "attn.in_proj_weight": r(3 * d, d), b + "attn.in_proj_bias": r(3 * d)}
            sd |= {b + "attn.out_proj.weight": r(d, d), b + "attn.out_proj.bias": r(d)}
            if bias_kv:
                sd |= {b + "attn.bias_k": r(1, 1, d), b + "attn.bias_v": r(1, 1, d)}
            for nm in ("norm_1", "norm_2"):
                sd |= {b + nm + ".weight": 1 + r(d), b + nm + ".bias": r(d)}
            sd |= {b + "mlp.fc1.weight": r(4 * d, d), b + "mlp.fc1.bias": r(4 * d)}
            sd |= {b + "mlp.fc2.weight": r(d, 4 * d), b + "mlp.fc2.bias": r(d)}
        sd |= {f"modality_heads.{m}.0.weight": 1 + r(d), f"modality_heads.{m}.0.bias": r(d)}
        sd[f"modality_heads.{m}.2.weight"] = r(cfg.out_dim, d)
    sd["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] = r(
        cfg.vision_dim, 3, 2, cfg.patch, cfg.patch
    )
    sd["modality_trunks.vision.pre_transformer_layer.0.weight"] = 1 + r(cfg.vision_dim)
    sd["modality_trunks.vision.pre_transformer_layer.0.bias"] = r(cfg.vision_dim)
    sd["modality_preprocessors.audio.rgbt_stem.proj.weight"] = r(cfg.audio_dim, 1, 16, 16)
    sd["modality_preprocessors.audio.rgbt_stem.norm_layer.weight"] = 1 + r(cfg.audio_dim)
    sd["modality_preprocessors.audio.rgbt_stem.norm_layer.bias"] = r(cfg.audio_dim)
    # other modalities and postprocessors are in the file too; the converter must drop them
    sd["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(np.log(20.0))
    sd["modality_postprocessors.text.1.log_logit_scale"] = torch.tensor(2.0)
    sd["modality_preprocessors.text.token_embedding.weight"] = r(10, 4)
    sd["modality_trunks.depth.blocks.0.attn.bias_k"] = r(1, 1, 4)
    return sd


def _ref_tower(x, sd, m, heads, depth, audio):
    stem = f"modality_preprocessors.{m}.rgbt_stem."
    if audio:
        tok = F.conv2d(x, sd[stem + "proj.weight"], stride=10).flatten(2).transpose(1, 2)
        tok = ln(tok, sd, stem + "norm_layer", 1e-5)
    else:
        tok = F.conv3d(x, sd[stem + "proj.1.weight"], stride=(2, 14, 14)).flatten(2).transpose(1, 2)
    pre = f"modality_preprocessors.{m}."
    tok = (
        torch.cat([sd[pre + "cls_token"].expand(len(x), -1, -1), tok], 1)
        + sd[pre + "pos_embedding_helper.pos_embed"]
    )
    if not audio:
        tok = ln(tok, sd, "modality_trunks.vision.pre_transformer_layer.0", 1e-6)
    for i in range(depth):
        b = f"modality_trunks.{m}.blocks.{i}."
        tok = tok + mha(ln(tok, sd, b + "norm_1", 1e-6), sd, b + "attn", heads)
        tok = tok + gelu_mlp(ln(tok, sd, b + "norm_2", 1e-6), sd, b + "mlp.fc1", b + "mlp.fc2")
    out = F.linear(ln(tok[:, 0], sd, f"modality_heads.{m}.0", 1e-6), sd[f"modality_heads.{m}.2.weight"])
    return F.normalize(out, dim=-1)


def test_converter_strict_load_and_forward_equal_reference(tmp_path):
    cfg = ImageBindConfig(**TINY)
    sd = _official_state(cfg, torch.Generator().manual_seed(0))
    torch.save(sd, tmp_path / "imagebind_huge.pth")
    scorer = create_av_scorer("imagebind", pretrained=tmp_path / "imagebind_huge.pth", **TINY)
    assert not any(k.startswith(("text", "depth")) for k in convert_imagebind_state_dict(sd))
    audio = torch.randn(2, 1, 5 * 16000)
    frames = torch.rand(2, 3, 3, 30, 42)
    got_a, got_v = scorer.embed_audio(audio), scorer.embed_video(frames)
    feats = scorer.audio_features(audio).float()
    ref_a = _ref_tower(feats.flatten(0, 1), sd, "audio", 3, 2, True).reshape(2, 3, -1).mean(1)
    clips = scorer.video_clips(frames)
    ref_v = _ref_tower(clips.flatten(0, 1), sd, "vision", 2, 2, False).reshape(2, 6, -1).mean(1)
    torch.testing.assert_close(got_a, ref_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_v, ref_v, rtol=1e-5, atol=1e-5)
    assert got_a.shape == got_v.shape == (2, 8)


def test_full_size_builds_on_meta_with_published_sizes():
    with torch.device("meta"):
        scorer = ImageBindScorer()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # ViT-H/14 (1280-d, 32 blocks, MLP 5120) with a 2-frame Conv3d stem: 632,829,440 (OpenCLIP ViT-H/14 ~632M)
    assert count(scorer.vision) == 632_829_440
    # ViT-B audio (768-d, 12 blocks, bias_kv) over 12 x 19 fbank patches: 86,235,648
    assert count(scorer.audio) == 86_235_648
    assert scorer.audio.pos_embed.shape == (1, 229, 768) and scorer.vision.pos_embed.shape == (1, 257, 1280)


def test_offline_pretrained_names_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path))
    with pytest.raises(
        WeightsNotFoundError, match=r"imagebind_huge\.pth.*dl\.fbaipublicfiles\.com/imagebind"
    ):
        create_av_scorer("imagebind")
