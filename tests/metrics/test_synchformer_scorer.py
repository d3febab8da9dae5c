"""Synchformer DeSync scorer: front-end, full-checkpoint conversion, forward vs reference, windows, sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spatialgen.encoders.synchformer import SynchformerConfig
from spatialgen.metrics import DeSync, create_av_scorer
from spatialgen.metrics.scorers.synchformer import (
    SynchformerAudioConfig,
    SynchformerScorer,
    SynchformerScorerConfig,
)
from spatialgen.weights import WeightsNotFoundError
from tests.encoders.test_synchformer import official_state_dict
from tests.metrics._av_refs import attention, gelu_mlp, htk_mel_ref, ln, stft_power_ref

VIS = dict(img_size=32, dim=8, depth=1, heads=2)
AUD = dict(dim=12, depth=1, heads=2, mlp_dim=24, n_mels=32)
TINY = dict(visual=SynchformerConfig(**VIS), audio=SynchformerAudioConfig(**AUD), dim=16, layers=1, heads=2)


def test_spectrogram_matches_numpy_reference():
    audio = SynchformerScorer(SynchformerScorerConfig(**TINY)).audio
    full = SynchformerAudioConfig()
    audio.config = full  # front-end only: the released 128-mel settings
    audio.mel = torch.from_numpy(htk_mel_ref(513, 16000, 128, 8000.0))
    wave = np.random.default_rng(0).standard_normal(10240 + 5120) * 0.1
    spec = audio.spectrogram(torch.from_numpy(wave)[None])
    assert spec.shape == (1, 2, 128, 66)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic
    for s in range(2):
        power = stft_power_ref(wave[s * 5120 : s * 5120 + 10240], 1024, 160, hann)  # [513, 65]
        logmel = np.log(htk_mel_ref(513, 16000, 128, 8000.0).T @ power + 1e-6)
        ref = (np.pad(logmel, ((0, 0), (0, 1))) + 4.2677393) / (2 * 4.5689974)
        np.testing.assert_allclose(spec[0, s].numpy(), ref, rtol=1e-9, atol=1e-9)


def test_htk_filterbank_matches_reference():
    from spatialgen.metrics.embedders.kaldi import htk_mel_filterbank

    np.testing.assert_allclose(
        htk_mel_filterbank(513, 0, 8000, 128, 16000).numpy(), htk_mel_ref(513, 16000, 128, 8000.0), atol=1e-12
    )


def _official_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights in synchformer_state_dict.pth's layout (Synchformer: AST + sync transformer)."""
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    d, dv, ds = AUD["dim"], VIS["dim"], TINY["dim"]
    a = "afeat_extractor."
    sd = {a + "ast.embeddings.cls_token": r(1, 1, d), a + "ast.embeddings.distillation_token": r(1, 1, d)}
    sd[a + "ast.embeddings.position_embeddings"] = r(1, 2 + 2 * 6, d)
    sd[a + "ast.embeddings.patch_embeddings.projection.weight"] = r(d, 1, 16, 16)
    sd[a + "ast.embeddings.patch_embeddings.projection.bias"] = r(d)
    lay = a + "ast.encoder.layer.0."
    for nm in ("query", "key", "value"):
        sd |= {f"{lay}attention.attention.{nm}.weight": r(d, d), f"{lay}attention.attention.{nm}.bias": r(d)}
    sd |= {lay + "attention.output.dense.weight": r(d, d), lay + "attention.output.dense.bias": r(d)}
    sd |= {lay + "intermediate.dense.weight": r(24, d), lay + "intermediate.dense.bias": r(24)}
    sd |= {lay + "output.dense.weight": r(d, 24), lay + "output.dense.bias": r(d)}
    for nm in (
        lay + "layernorm_before",
        lay + "layernorm_after",
        a + "ast.layernorm",
        a + "freq_attn_agg.norm1",
        a + "freq_attn_agg.norm2",
    ):
        sd |= {nm + ".weight": 1 + r(d), nm + ".bias": r(d)}
    g = a + "freq_attn_agg."
    sd |= {
        g + "cls_token": r(1, 1, d),
        g + "self_attn.in_proj_weight": r(3 * d, d),
        g + "self_attn.in_proj_bias": r(3 * d),
    }
    sd |= {g + "self_attn.out_proj.weight": r(d, d), g + "self_attn.out_proj.bias": r(d)}
    sd |= {
        g + "linear1.weight": r(24, d),
        g + "linear1.bias": r(24),
        g + "linear2.weight": r(d, 24),
        g + "linear2.bias": r(d),
    }
    sd |= {"vproj.weight": r(ds, dv), "vproj.bias": r(ds), "aproj.weight": r(ds, d), "aproj.bias": r(ds)}
    t = "transformer."
    sd |= {t + "OFF_tok": r(1, 1, ds), t + "MOD_tok": r(1, 1, ds), t + "pos_emb_cfg.pos_emb": r(1, 198, ds)}
    for nm in ("vis_in_lnorm", "aud_in_lnorm", "ln_f", "blocks.0.ln1", "blocks.0.ln2"):
        sd |= {t + nm + ".weight": 1 + r(ds), t + nm + ".bias": r(ds)}
    for nm in ("key", "query", "value", "proj"):
        sd |= {f"{t}blocks.0.attn.{nm}.weight": r(ds, ds), f"{t}blocks.0.attn.{nm}.bias": r(ds)}
    sd |= {t + "blocks.0.mlp.0.weight": r(4 * ds, ds), t + "blocks.0.mlp.0.bias": r(4 * ds)}
    sd |= {t + "blocks.0.mlp.2.weight": r(ds, 4 * ds), t + "blocks.0.mlp.2.bias": r(ds)}
    sd |= {t + "off_head.weight": r(21, ds), t + "off_head.bias": r(21)}
    # the visual branch in MotionFormer's layout, from the visual converter's own test
    vis_cfg = dict(VIS, patch_size=16, tubelet=2, segment_frames=16, segment_stride=8)
    vis = {k: v.float() for k, v in official_state_dict(vis_cfg, gen).items() if k.startswith("vfeat_")}
    return vis | sd


def _ref_audio(spec, sd):
    a = "afeat_extractor.ast."
    x = F.conv2d(
        spec[:, None],
        sd[a + "embeddings.patch_embeddings.projection.weight"],
        sd[a + "embeddings.patch_embeddings.projection.bias"],
        stride=10,
    )
    x = x.flatten(2).transpose(1, 2)
    sp = torch.cat([sd[a + "embeddings.cls_token"], sd[a + "embeddings.distillation_token"]], 1)
    x = torch.cat([sp.expand(len(x), -1, -1), x], 1) + sd[a + "embeddings.position_embeddings"]
    lay = a + "encoder.layer.0."
    h = ln(x, sd, lay + "layernorm_before", 1e-12)
    q, k, v = (
        F.linear(h, sd[f"{lay}attention.attention.{n}.weight"], sd[f"{lay}attention.attention.{n}.bias"])
        for n in ("query", "key", "value")
    )
    x = x + F.linear(
        attention(q, k, v, 2),
        sd[lay + "attention.output.dense.weight"],
        sd[lay + "attention.output.dense.bias"],
    )
    x = x + gelu_mlp(
        ln(x, sd, lay + "layernorm_after", 1e-12), sd, lay + "intermediate.dense", lay + "output.dense"
    )
    x = ln(x, sd, a + "layernorm", 1e-12)[:, 2:]  # [BS, f*t, D], frequency-major
    bs, _, d = x.shape
    x = x.transpose(1, 2).reshape(bs, d, 2, 6).permute(0, 3, 2, 1).reshape(bs * 6, 2, d)  # per time column
    g = "afeat_extractor.freq_attn_agg."
    x = torch.cat([sd[g + "cls_token"].expand(len(x), -1, -1), x], 1)
    h = ln(x, sd, g + "norm1", 1e-6)
    q, k, v = F.linear(h, sd[g + "self_attn.in_proj_weight"], sd[g + "self_attn.in_proj_bias"]).chunk(3, -1)
    x = x + F.linear(
        attention(q, k, v, 2), sd[g + "self_attn.out_proj.weight"], sd[g + "self_attn.out_proj.bias"]
    )
    x = x + gelu_mlp(ln(x, sd, g + "norm2", 1e-6), sd, g + "linear1", g + "linear2")
    return x[:, 0].reshape(bs, 6, d)


def _ref_head(v, a, sd):
    t = "transformer."
    v = ln(F.linear(v, sd["vproj.weight"], sd["vproj.bias"]), sd, t + "vis_in_lnorm", 1e-5)
    a = ln(F.linear(a, sd["aproj.weight"], sd["aproj.bias"]), sd, t + "aud_in_lnorm", 1e-5)
    b = len(v)
    x = (
        torch.cat([sd[t + "OFF_tok"].expand(b, -1, -1), v, sd[t + "MOD_tok"].expand(b, -1, -1), a], 1)
        + sd[t + "pos_emb_cfg.pos_emb"]
    )
    p = t + "blocks.0."
    h = ln(x, sd, p + "ln1", 1e-5)
    q, k, vv = (
        F.linear(h, sd[f"{p}attn.{n}.weight"], sd[f"{p}attn.{n}.bias"]) for n in ("query", "key", "value")
    )
    x = x + F.linear(attention(q, k, vv, 2), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    x = x + gelu_mlp(ln(x, sd, p + "ln2", 1e-5), sd, p + "mlp.0", p + "mlp.2")
    return F.linear(ln(x[:, 0], sd, t + "ln_f", 1e-5), sd[t + "off_head.weight"], sd[t + "off_head.bias"])


def test_full_checkpoint_conversion_and_forward_equal_reference(tmp_path):
    sd = _official_state(torch.Generator().manual_seed(0))
    torch.save(sd, tmp_path / "synchformer_state_dict.pth")
    scorer = create_av_scorer("synchformer", pretrained=tmp_path / "synchformer_state_dict.pth", **TINY)
    frames = torch.randint(0, 256, (1, 140, 3, 32, 32), dtype=torch.uint8)  # 16 video segments
    audio = torch.randn(1, 2, 6 * 16000)  # 17 audio segments
    logits = scorer.offset_logits(frames, audio)
    assert logits.shape == (1, 2, 21)
    spec = scorer.audio.spectrogram(audio.mean(1)).float()[0, :16]
    a = _ref_audio(spec, sd)  # [16, 6, D]
    v = scorer.visual(frames).global_features.reshape(16, 8, -1)
    for w, s0 in enumerate((0, 2)):  # first and last 14 of min(16, 17) segments
        ref = _ref_head(v[s0 : s0 + 14].reshape(1, 112, -1), a[s0 : s0 + 14].reshape(1, 84, -1), sd)
        torch.testing.assert_close(logits[0, w], ref[0], rtol=1e-4, atol=1e-4)
    metric = DeSync(scorer)
    grid = torch.linspace(-2, 2, 21, dtype=torch.float64)
    expected = grid[logits.argmax(-1)].abs().mean()
    torch.testing.assert_close(metric.scores(audio, frames)[0], expected)


def test_too_short_clip_is_a_clear_error():
    scorer = SynchformerScorer(SynchformerScorerConfig(**TINY))
    with pytest.raises(ValueError, match="need 14 segments"):
        scorer.offset_logits(torch.rand(1, 100, 3, 32, 32), torch.randn(1, 1, 4 * 16000))


def test_full_size_builds_on_meta():
    with torch.device("meta"):
        scorer = SynchformerScorer()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # AST-B (74 positions) 85.3M + frequency aggregation 7.1M; sync transformer 22.6M; MotionFormer 121.9M
    assert count(scorer.audio) == 92_400_384
    assert count(scorer.sync) == 22_619_157
    assert count(scorer.visual) == 121_850_112
    assert scorer.sync.pos_embed.shape == (1, 198, 768) and scorer.sync.off_head.out_features == 21


def test_offline_pretrained_names_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPATIALGEN_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"synchformer_state_dict\.pth.*MMAudio/releases"):
        create_av_scorer("synchformer")
