"""FD / KL / IS vs numpy-scipy references, embedders (shapes, front-ends, converters), AV scores."""

import numpy as np
import pytest
import scipy.linalg
import torch

from spatialgen.metrics import DeSync, FrechetDistance, ImageBindScore, InceptionScore, KLDivergence
from spatialgen.metrics.embedders import Cnn14, VGGish, create_embedder, list_embedders
from spatialgen.metrics.embedders.frontends import slaney_mel_filterbank, vggish_mel_filterbank
from spatialgen.metrics.functional import frechet_distance, inception_score, kl_divergence
from spatialgen.weights import WeightsNotFoundError


def _fd_ref(a, b):
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_and_accumulates():
    rng = np.random.RandomState(0)
    a, b = rng.randn(200, 12), rng.randn(150, 12) @ rng.rand(12, 12) + 0.3
    ref = _fd_ref(a, b)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(ref, rel=1e-9)
    m = FrechetDistance(None, num_features=12)
    for i in range(0, 200, 64):
        m.update(torch.from_numpy(a[i : i + 64]), torch.from_numpy(b[i : i + 64]) if i < 150 else None)
    assert m.compute().item() == pytest.approx(ref, rel=1e-8)
    same = FrechetDistance(None, num_features=12)
    same.update(torch.from_numpy(a), torch.from_numpy(a))
    assert same.compute().item() == pytest.approx(0.0, abs=1e-9)


def test_kl_and_inception_score_match_numpy():
    rng = np.random.RandomState(1)
    p, g = rng.randn(40, 7) * 2, rng.randn(40, 7) * 2

    def sm(x):
        return np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)

    kl_ref = (sm(g) * (np.log(sm(g)) - np.log(sm(p)))).sum(1)
    np.testing.assert_allclose(
        kl_divergence(torch.from_numpy(p), torch.from_numpy(g)).numpy(), kl_ref, rtol=1e-12
    )
    m = KLDivergence(None)
    m.update(torch.from_numpy(p[:15]), torch.from_numpy(g[:15]))
    m.update(torch.from_numpy(p[15:]), torch.from_numpy(g[15:]))
    assert m.compute().item() == pytest.approx(kl_ref.mean(), rel=1e-12)
    # IS: RandomState(2020) shuffle, 10 splits
    q = sm(p)[np.random.RandomState(2020).permutation(40)]
    parts = [q[i * 4 : (i + 1) * 4] for i in range(10)]
    is_ref = [np.exp((x * (np.log(x) - np.log(x.mean(0, keepdims=True)))).sum(1).mean()) for x in parts]
    mean, std = inception_score(torch.from_numpy(p))
    assert mean.item() == pytest.approx(np.mean(is_ref), rel=1e-12) and std.item() == pytest.approx(
        np.std(is_ref), rel=1e-10
    )
    ism = InceptionScore(None)
    ism.update(torch.from_numpy(p[:20]))
    ism.update(torch.from_numpy(p[20:]))
    assert ism.compute().item() == pytest.approx(np.mean(is_ref), rel=1e-12)


def test_fd_with_embedder_channel_reductions_and_no_state_dict_leak():
    audio = torch.randn(6, 4, 16000)
    fd = FrechetDistance("tiny", pretrained=False, sample_rate=16000, channels=4)
    fd.update(audio, audio)
    assert fd.compute().item() == pytest.approx(0.0, abs=1e-8)
    assert fd.state_dict() == {} and "embedder" not in dict(fd.named_modules())
    # "mean_channels" = mean of per-channel FDs computed on mono inputs
    emb = create_embedder("tiny")
    other = torch.randn(6, 4, 16000) * 0.5
    per_channel = [
        frechet_distance(emb(audio[:, c]).embeddings[:, 0], emb(other[:, c]).embeddings[:, 0])
        for c in range(4)
    ]
    fd2 = FrechetDistance("tiny", sample_rate=16000, channels=4)
    fd2.update(audio, other)
    assert fd2.compute().item() == pytest.approx(torch.stack(per_channel).mean().item(), rel=1e-6)
    first = FrechetDistance("tiny", sample_rate=16000, reduction="first")
    first.update(audio, other)
    ref_w = frechet_distance(emb(audio[:, 0]).embeddings[:, 0], emb(other[:, 0]).embeddings[:, 0])
    assert first.compute().item() == pytest.approx(ref_w.item(), rel=1e-6)
    with pytest.raises(ValueError, match="channels"):
        FrechetDistance("tiny", sample_rate=16000, channels=2).update(audio, audio)


def test_embedder_registry_and_offline_error():
    assert {"panns_cnn14", "panns_cnn14_16k", "tiny", "vggish"} <= set(list_embedders())
    with pytest.raises(WeightsNotFoundError, match=r"vggish-10086976\.pth"):
        create_embedder("vggish", pretrained=True)
    with pytest.raises(KeyError, match="Did you mean 'vggish'"):
        create_embedder("vgish")


def test_vggish_front_end_matches_numpy_formula():
    # HTK mel matrix exactly as VGGish's mel_features.spectrogram_to_mel_matrix
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    spec = mel(np.linspace(0, 8000, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    ref = np.zeros((257, 64))
    for i in range(64):
        lo, c, hi = edges[i : i + 3]
        ref[:, i] = np.maximum(0, np.minimum((spec - lo) / (c - lo), (hi - spec) / (hi - c)))
    ref[0] = 0
    np.testing.assert_allclose(vggish_mel_filterbank(257, 16000).numpy(), ref, atol=1e-12)
    x = np.random.RandomState(0).randn(16000)
    frames = np.stack([x[i * 160 : i * 160 + 400] for i in range(1 + (16000 - 400) // 160)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    logmel = np.log(np.abs(np.fft.rfft(frames * window, 512)) @ ref + 0.01)
    got = VGGish().features(torch.from_numpy(x).float()[None])
    np.testing.assert_allclose(got[0, 0, 0].numpy(), logmel[:96], atol=2e-4)


def test_slaney_filterbank_properties():
    fb = slaney_mel_filterbank(32000, 1024, 64, 50.0, 14000.0)
    assert fb.shape == (64, 513) and (fb >= 0).all()
    freqs = np.linspace(0, 16000, 513)
    centres = freqs[fb.argmax(1).numpy()]
    assert np.all(np.diff(centres) >= 0) and 50 < centres[0] < 150 and 12000 < centres[-1] < 14000
    # Slaney normalisation: each triangle has area 1 in Hz: sum(w) * bin spacing ≈ 1 for wide bands
    assert (fb.sum(1)[-10:] * (16000 / 512)).numpy() == pytest.approx(np.ones(10), rel=0.05)


def test_official_key_layouts_convert_on_meta():
    with torch.device("meta"):
        cnn, vgg = Cnn14(), VGGish()
    official = {f"{k}": v for k, v in cnn.state_dict().items()}
    official["spectrogram_extractor.stft.conv_real.weight"] = official["logmel_extractor.melW"] = None
    assert set(cnn.convert_state_dict(official)) == set(cnn.state_dict())
    tv = {k.replace("features_net.", "features."): v for k, v in vgg.state_dict().items()}
    tv["pproc._pca_matrix"] = None
    assert set(vgg.convert_state_dict(tv)) == set(vgg.state_dict())
    assert "features.0.weight" in tv and "embeddings.4.weight" in tv  # torchvggish's own names


@pytest.mark.slow
def test_official_checkpoints_load_and_run(tmp_path):
    vgg = create_embedder("vggish", pretrained=False)
    out = vgg(torch.randn(1, 16000 * 2))
    assert out.embeddings.shape == (1, 2, 128) and out.logits is None  # 198 frames -> 2 examples
    cnn = Cnn14()
    official = {f"module.{k}": v for k, v in cnn.state_dict().items()}
    official["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    official["logmel_extractor.melW"] = torch.zeros(1024, 64)
    torch.save({"model": official, "iteration": 0}, tmp_path / "Cnn14.pth")
    loaded = Cnn14().load_weights(tmp_path / "Cnn14.pth")
    assert torch.equal(loaded.fc_audioset.weight, cnn.fc_audioset.weight)
    vgg = VGGish()
    tv = {k.replace("features_net.", "features."): v for k, v in vgg.state_dict().items()}
    tv["pproc._pca_matrix"] = torch.zeros(128, 128)
    torch.save(tv, tmp_path / "vggish.pth")
    assert torch.equal(
        VGGish().load_weights(tmp_path / "vggish.pth").embeddings[4].weight, vgg.embeddings[4].weight
    )
    out = loaded(torch.randn(2, 32000))
    assert out.embeddings.shape == (2, 1, 2048) and out.logits.shape == (2, 527)


def test_imagebind_score_and_desync_with_tiny_towers():
    audio, frames = torch.randn(3, 2, 16000), torch.rand(3, 4, 3, 32, 32)
    ib = ImageBindScore("tiny_imagebind")
    s = ib.scorer
    ref = torch.nn.functional.cosine_similarity(s.embed_audio(audio), s.embed_video(frames), dim=-1).double()
    ib.update(audio, frames)
    assert ib.compute().item() == pytest.approx(ref.mean().item(), rel=1e-6)
    ds = DeSync("tiny_sync")
    logits = ds.scorer.offset_logits(frames, audio)
    grid = np.linspace(-2, 2, 21)
    ref_ds = np.abs(grid[logits.argmax(-1).numpy()]).mean()
    ds.update(audio, frames)
    assert ds.compute().item() == pytest.approx(ref_ds, abs=1e-12)
    assert ib.state_dict() == {} and ds.state_dict() == {}


@pytest.mark.parametrize("name", list_embedders())
def test_every_embedder_builds_random_by_default_and_embeds(name):
    """Each registered embedder: random weights by default (as every registry), finite [N, K, D] embeddings."""
    torch.manual_seed(0)
    emb = create_embedder(name)
    assert not emb.training and emb.embed_dim > 0
    wave = 0.1 * torch.randn(2, max(emb.min_samples, emb.sample_rate))
    out = emb(wave)
    e = out.embeddings
    assert e.ndim == 3 and e.shape[0] == 2 and e.shape[-1] == emb.embed_dim and torch.isfinite(e).all()
    if emb.num_classes:
        assert out.logits.shape == (2, emb.num_classes) and torch.isfinite(out.logits).all()
