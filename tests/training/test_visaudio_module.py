"""ViSAudioModule: loss wiring (CFG dropout, ear weights, mono), cache == raw inputs, normaliser fit, EMA, predict."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from spatialgen.data.clips import ClipOptions
from spatialgen.data.collate import collate_items
from spatialgen.data.datamodule import PredictVideos, SpatialDataModule
from spatialgen.data.registry import create_dataset
from spatialgen.data.synthetic import generate_dataset
from spatialgen.models.visaudio.flow import flow_matching_loss, logit_normal_t
from spatialgen.training import EMA, PredictionWriter
from spatialgen.training.visaudio import ViSAudioModule, plot_binaural_spectrograms

from .helpers import trainer

SR = 8000
MODEL = {
    "config": "tiny",
    "codec_name": "stft",
    "codec_kwargs": {"sample_rate": SR, "n_fft": 64, "hop_length": 32},
    "encoder_kwargs": {"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0}},
    "encoder_pretrained": False,
    "clip_seconds": 1.0,
    "sample_steps": 2,
    "cfg_scale": 2.0,
}


@pytest.fixture(scope="session")
def visaudio_synthetic_root(tmp_path_factory) -> str:
    """4 one-second synthetic clips (2 train, 1 val, 1 test), one visible source each."""
    root = tmp_path_factory.mktemp("visaudio_synth")
    generate_dataset(
        root,
        4,
        0,
        duration=1.0,
        max_sources=1,
        distractors=False,
        split_ratios={"train": 0.5, "val": 0.25, "test": 0.25},
        progress=False,
    )
    return str(root)


@pytest.fixture(scope="module")
def batch(visaudio_synthetic_root):
    ds = create_dataset(
        "synthetic",
        visaudio_synthetic_root,
        "train",
        ClipOptions(clip_seconds=1.0, sample_rate=SR, fps=8.0, format="binaural"),
    )
    return collate_items([ds[i] for i in range(len(ds))])


def module(**kw) -> ViSAudioModule:
    return ViSAudioModule(**{**MODEL, **kw})


def randomize_output_(m: ViSAudioModule) -> ViSAudioModule:
    """Give the zero-initialised adaLN/output layers weights, so conditions change the velocity."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.network.parameters():
            if not p.abs().sum():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return m


def test_cfg_dropout_rates():
    m = module(cfg_dropout=0.3, spatial_dropout=0.2)
    torch.manual_seed(1)
    drop, drop_sp = m.cfg_masks(40000)
    # binomial standard deviation ~0.0023; 5 sigma
    assert float(drop.float().mean()) == pytest.approx(0.3, abs=0.012)
    assert float(drop_sp.float().mean()) == pytest.approx(0.2, abs=0.01)
    assert float((drop & drop_sp).float().mean()) == pytest.approx(0.06, abs=0.006)  # independent
    with pytest.raises(ValueError, match="cfg_dropout"):
        module(cfg_dropout=1.5)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_text_features_are_dropped_independently(batch, p):
    """Prompt features in the batch reach the network; cfg_dropout drops them (own draw, as MMAudio)."""
    m = randomize_output_(module(cfg_dropout=p)).train()
    cfg = m.network.config
    b = len(m.batch_latents(batch))
    text = torch.randn(b, cfg.text_len, cfg.text_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        m.network.conditioning.text_proj.weight.normal_()  # the prompt must move the conditions
    torch.manual_seed(7)
    loss, _ = m.compute_loss({**batch, "text_features": text})
    x1, feats = m.batch_latents(batch), m.batch_features(batch)
    torch.manual_seed(7)
    torch.rand(2, b)  # video dropout draw
    drop = torch.rand(b) < p  # text dropout draw
    assert bool(drop.all()) is bool(p)
    cond = m.network.prepare_conditions(
        feats["clip"],
        feats["sync"],
        feats["pe"],
        latent_len=x1.shape[-1],
        drop=drop,
        text=text,
        drop_text=drop,
    )
    torch.testing.assert_close(loss, flow_matching_loss(m.network, x1, cond)[0], rtol=1e-6, atol=0)
    plain = m.network.prepare_conditions(
        feats["clip"], feats["sync"], feats["pe"], latent_len=x1.shape[-1], drop=drop
    )
    torch.manual_seed(7)
    torch.rand(2, b), torch.rand(b)  # the same draws as the module's
    no_text = flow_matching_loss(m.network, x1, plain)[0]
    assert (abs(float(no_text) - float(loss)) < 1e-6) is bool(p)  # dropped text = no prompt


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_replaces_conditions_in_the_loss(batch, p):
    """cfg_dropout = 1 trains on the null conditions, 0 on the video; same noise/t as a by-hand reference."""
    m = randomize_output_(module(cfg_dropout=p, ear_weights=(2.0, 0.5))).train()
    torch.manual_seed(7)
    loss, logs = m.compute_loss(batch)
    x1 = m.batch_latents(batch)
    feats = m.batch_features(batch)
    torch.manual_seed(7)
    torch.rand(2, x1.shape[0])  # the module's dropout draw
    drop = torch.full((x1.shape[0],), bool(p))
    cond = m.network.prepare_conditions(
        feats["clip"], feats["sync"], feats["pe"], latent_len=x1.shape[-1], drop=drop
    )
    ref, per_ear = flow_matching_loss(m.network, x1, cond, ear_weights=(2.0, 0.5))
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(loss, 2.0 * logs["loss_left"] + 0.5 * logs["loss_right"], rtol=1e-6, atol=0)
    torch.testing.assert_close(torch.stack((logs["loss_left"], logs["loss_right"])), per_ear.detach())
    # the conditions actually matter: the other choice gives another loss
    torch.manual_seed(7)
    other = randomize_output_(module(cfg_dropout=1.0 - p, ear_weights=(2.0, 0.5))).train()
    assert abs(float(other.compute_loss(batch)[0].detach()) - float(loss.detach())) > 1e-4


def test_cached_inputs_equal_raw_inputs(batch):
    """Cache items (features / patch tokens / codec latents) give the same latents and features as raw media."""
    m = module(peak=None)
    enc = m.pipeline.encoders["tiny"]
    out = enc(batch["video"], patch_tokens=True)
    cached = {
        "features": {"tiny": out.global_features},
        "patch_tokens": {"tiny": out.patch_tokens},
        "features_fps": {"tiny": 8.0},
        "latents": m.pipeline.codec.encode_latents(batch["audio"]),
    }
    torch.testing.assert_close(m.batch_latents(cached), m.batch_latents(batch), rtol=0, atol=0)
    raw, cache = m.batch_features(batch), m.batch_features(cached)
    for role in ("clip", "sync", "pe"):
        torch.testing.assert_close(cache[role], raw[role], rtol=0, atol=0)
    with pytest.raises(ValueError, match="fps"):
        m.batch_features({**cached, "features_fps": {"tiny": 4.0}})


def test_mono_targets_are_duplicated(batch):
    m = module()
    mono = {**batch, "audio": batch["audio"][:, :1]}
    z = m.batch_latents(mono)
    torch.testing.assert_close(z[:, 0], z[:, 1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="4 channels"):
        m.batch_latents({**batch, "audio": batch["audio"].repeat(1, 2, 1)})


def test_fit_normalizer_matches_numpy(batch):
    m = module()
    assert m.normalizer_is_identity()
    assert m.fit_normalizer([batch, batch], max_batches=1) == 1
    z = m.pipeline.encode_audio(batch["audio"], SR, normalize=False).double().numpy()
    flat = np.moveaxis(z, 2, -1).reshape(-1, z.shape[2])  # clips x ears x frames, channels
    np.testing.assert_allclose(m.network.normalizer.mean.double().numpy(), flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        m.network.normalizer.std.double().numpy(), flat.std(0, ddof=1).clip(1e-5), rtol=1e-5
    )  # zero-variance bins (imag. DC) clamp
    assert not m.normalizer_is_identity()
    zn = m.batch_latents(batch)
    assert float(zn.mean()) == pytest.approx(0.0, abs=1e-4)


@pytest.fixture(scope="module")
def fitted(visaudio_synthetic_root, tmp_path_factory):
    """Two training steps with EMA + one sampling validation epoch, then a checkpoint."""
    from lightning.pytorch.loggers import TensorBoardLogger

    out = tmp_path_factory.mktemp("visaudio_fit")
    m = module(sample_every_n_epochs=1, normalizer_batches=1)
    dm = SpatialDataModule(
        "synthetic", visaudio_synthetic_root, clip_seconds=1.0, sample_rate=SR, fps=8.0, format="binaural",
        batch_size=2, test_split=None, swap_prob=0.5,
    )  # fmt: skip
    ema = EMA(decay=0.5)
    t = trainer(
        out,
        max_steps=2,
        callbacks=[ema],
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(str(out), name="tb"),
    )
    t.fit(m, dm)
    ckpt = out / "model.ckpt"
    t.save_checkpoint(ckpt)
    return m, ema, t, torch.load(ckpt, weights_only=False), out


def test_ema_is_over_the_network_only(fitted):
    m, ema, _, ckpt, _ = fitted
    names = [n for n, p in m.network.named_parameters() if p.requires_grad]
    assert ema.names == names and ema.num_updates == 2
    assert not any(k.startswith("frozen.") for k in ckpt["state_dict"])
    assert set(ckpt["callbacks"]["EMA"]["ema"]) == set(names)
    # EMA weights differ from the raw ones after two updates with decay 0.5
    raw = dict(m.network.named_parameters())
    assert any(not torch.equal(raw[n], e) for n, e in zip(ema.names, ema.ema))


def test_normalizer_fitted_and_saved(fitted):
    m, _, _, ckpt, _ = fitted
    assert not m.normalizer_is_identity()
    torch.testing.assert_close(ckpt["state_dict"]["network.normalizer.mean"], m.network.normalizer.mean)
    torch.testing.assert_close(ckpt["state_dict"]["network.normalizer.std"], m.network.normalizer.std)
    exported = m.export_pipeline().export_state_dict()
    torch.testing.assert_close(exported["network.normalizer.std"], m.network.normalizer.std)


def test_validation_sampling_logs_binaural_metrics_and_media(fitted):
    _, _, t, _, out = fitted
    logged = t.callback_metrics
    for key in ("val/loss", "val/ild_error_db", "val/itd_error_s", "val/stft_distance"):
        assert key in logged and bool(torch.isfinite(logged[key]))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(out.glob("tb/*/events*"))), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    assert {"val/sample_left", "val/sample_right"} <= set(events.Tags()["audio"])
    assert "val/spectrogram" in events.Tags()["images"]


def test_spectrogram_figure():
    audio = torch.randn(2, 4000)
    fig = plot_binaural_spectrograms(audio, audio, SR)
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "generated: right"


def test_predict_writes_two_channel_wavs(fitted, visaudio_synthetic_root, tmp_path):
    m, _, _, _, out = fitted
    video = f"{visaudio_synthetic_root}/clip_000000/video.mp4"
    data = PredictVideos([video, video], fps=8.0)
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate_items)
    writer = PredictionWriter(str(tmp_path / "pred"))
    trainer(out, callbacks=[writer]).predict(m, loader, return_predictions=False)
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["video.wav", "video_1.wav"]
    audio, sr = sf.read(tmp_path / "pred" / "video.wav", always_2d=True)
    assert sr == SR and audio.shape == (SR, 2)  # 8 frames at 8 fps = 1 s, [L, R]
    assert np.abs(audio).max() > 0


def test_visual_gain_is_the_loss_increase_with_swapped_pictures(batch, visaudio_synthetic_root, tmp_path):
    """val/visual_gain = FM loss(next clip's features) - FM loss(own), same t and noise; 0 for equal pictures."""
    m = randomize_output_(module()).eval()
    x1, feats = m.batch_latents(batch), m.batch_features(batch)
    gen = torch.Generator().manual_seed(3)
    t = logit_normal_t(2, mean=m.t_mean, std=m.t_std, generator=gen)
    noise = torch.randn(x1.shape, generator=gen)

    def loss(features):
        cond = m.pipeline.conditions(features, x1.shape[-1])
        kwargs = {"ear_weights": m.ear_weights, "diff_weight": m.diff_weight}
        with torch.no_grad():
            return flow_matching_loss(m.network, x1, cond, t=t, noise=noise, **kwargs)[0]

    expected = loss({k: v.flip(0) for k, v in feats.items()}) - loss(feats)  # batch of 2: roll(1) == flip
    gain = m.visual_gain(x1, feats, seed=3)
    torch.testing.assert_close(gain, expected, rtol=0, atol=1e-6)
    assert abs(float(gain)) > 1e-4
    # the same clip twice: swapping the pictures changes nothing
    ds = create_dataset(
        "synthetic", visaudio_synthetic_root, "train",
        ClipOptions(clip_seconds=1.0, sample_rate=SR, fps=8.0, format="binaural"),
    )  # fmt: skip
    twice = collate_items([ds[0], ds[0]])
    assert float(m.visual_gain(m.batch_latents(twice), m.batch_features(twice)).abs()) < 1e-7
    with pytest.raises(ValueError, match="at least 2 clips"):
        one = collate_items([ds[0]])
        m.visual_gain(m.batch_latents(one), m.batch_features(one))
    # validation logs it for batches of 2+ clips (the 2 training clips here)
    dm = SpatialDataModule(
        "synthetic", visaudio_synthetic_root, clip_seconds=1.0, sample_rate=SR, fps=8.0, format="binaural",
        batch_size=2, val_split="train", test_split=None,
    )  # fmt: skip
    metrics = trainer(tmp_path).validate(module(), datamodule=dm)[0]
    assert "val/visual_gain" in metrics and np.isfinite(metrics["val/visual_gain"])
