"""ViSAGeModule: inputs (raw vs cached), CFG dropout, EMA scope, validation metrics, predict, mono init, loss."""

import math

import lightning.pytorch as pl
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from spatialgen.data.datamodule import SpatialDataModule
from spatialgen.models.visage import ViSAGe, get_config, stream_cross_entropy
from spatialgen.models.visage.config import VISAGE_TINY_WIDTH
from spatialgen.training import EMA, PredictionWriter
from spatialgen.training.visage import ViSAGeModule
from tests.recipes import synthetic_root

#: visage_small's token layout (dac_synthetic, 4 codebooks) at visage_tiny's width
SMALL = {"clip_seconds": 1.0, **VISAGE_TINY_WIDTH}
ENCODER = {"embed_dim": 32, "input_size": [56, 56], "fps": 4.0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic_root(tmp_path_factory)


def _module(config="visage_small", overrides=None, **kwargs) -> ViSAGeModule:
    return ViSAGeModule(
        config=config,
        config_overrides={**SMALL, **(overrides or {})},
        encoder="tiny",
        encoder_kwargs=ENCODER,
        encoder_pretrained=False,
        codec_pretrained=False,
        **kwargs,
    )


def _data(root, fmt="foa", **kwargs) -> SpatialDataModule:
    return SpatialDataModule(
        "synthetic",
        str(root),
        format=fmt,
        foa_frame="world",
        clip_seconds=1.0,
        sample_rate=16000,
        fps=4.0,
        video_size=(56, 56),
        batch_size=2,
        **kwargs,
    )


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(tmp_path),
    }
    return pl.Trainer(**{**defaults, **kwargs})


def _batch(root, split="train"):
    data = _data(root)
    data.setup("fit")
    loader = data.train_dataloader() if split == "train" else data.val_dataloader()
    return next(iter(loader))


def test_cached_inputs_equal_raw_inputs(root):
    module = _module()
    batch = _batch(root)
    raw = module.prepare_batch(batch)
    cfg = module.config
    assert raw["codes"].shape == (2, 4, cfg.num_codebooks, cfg.num_frames)
    assert raw["visual"].shape == (2, cfg.source_length, cfg.d_visual)
    assert raw["energy_map"].shape == (2, cfg.source_length, 49)
    assert torch.allclose(raw["energy_map"].sum(-1), torch.ones(2, cfg.source_length))
    # the direction is the unit vector of the camera label
    az, el = batch["camera_direction"].unbind(-1)
    expect = torch.stack([az.cos() * el.cos(), az.sin() * el.cos(), el.sin()], -1)
    assert torch.allclose(raw["direction"], expect, atol=1e-6)
    # a feature-cache batch made by the same frozen parts gives the same network inputs
    out = module.visual_encoder(batch["video"], patch_tokens=True)
    cached = {
        "codes": module.codec.encode(batch["audio"]),
        "features": {"tiny": out.global_features.clone()},
        "patch_tokens": {"tiny": out.patch_tokens.clone()},
        "features_fps": {"tiny": 4.0},
        "camera_direction": batch["camera_direction"],
    }
    got = module.prepare_batch(cached)
    for key in ("codes", "visual", "energy_map", "direction"):
        assert torch.allclose(got[key].float(), raw[key].float(), atol=1e-6), key


def test_bad_batches_raise_clear_errors(root):
    module = _module()
    batch = _batch(root)
    with pytest.raises(ValueError, match="sample_rate to 16000"):
        module.prepare_batch({**batch, "sample_rate": 44100})
    with pytest.raises(ValueError, match=r"data\.init_args\.fps"):
        module.prepare_batch({**batch, "video_fps": 8.0})
    with pytest.raises(ValueError, match="format"):
        module.prepare_batch({**batch, "audio": batch["audio"][:, :1]})
    with pytest.raises(ValueError, match="sampling: unknown keys"):
        _module(sampling={"guidance_scal": 3.0})


def test_cfg_dropout_rates_and_scope():
    module = _module(visual_dropout=0.3, direction_dropout=0.2, dropout_scope="sample")
    n = 40000
    v, d = module.cfg_dropout_masks(n)
    for mask, p in ((v, 0.3), (d, 0.2)):
        assert abs(mask.double().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    both = (v & d).double().mean().item()  # independent draws
    assert abs(both - 0.06) < 4 * math.sqrt(0.06 * 0.94 / n)
    batch_scope = _module(visual_dropout=0.3, direction_dropout=0.2)
    draws = [batch_scope.cfg_dropout_masks(8) for _ in range(4000)]
    assert all(bool((v == v[0]).all()) and bool((d == d[0]).all()) for v, d in draws)  # whole micro-batch
    rate_v = sum(float(v[0]) for v, _ in draws) / 4000
    assert abs(rate_v - 0.3) < 4 * math.sqrt(0.21 / 4000)
    none = _module(visual_dropout=0.0, direction_dropout=0.0)
    assert not any(m.any() for m in none.cfg_dropout_masks(1000))


def test_param_groups_exclude_norms_and_biases():
    module = _module()
    decay, no_decay = module.param_groups()
    assert no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.network.named_parameters()}
    assert all(names[id(p)].endswith("bias") or "norm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim > 1 or "null" in names[id(p)] or "bos" in names[id(p)] for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.network.parameters()))


def test_fit_ema_covers_only_the_network_and_validation_logs(root, tmp_path):
    module = _module(sample_every_n_epochs=1, val_num_clips=1)
    ema = EMA(decay=0.9)
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    trainer = _trainer(tmp_path, max_epochs=1, callbacks=[ema], logger=logger, log_every_n_steps=1)
    trainer.fit(module, datamodule=_data(root))
    assert ema.names == [n for n, p in module.network.named_parameters() if p.requires_grad]
    n_ema = sum(e.numel() for e in ema.ema)
    assert n_ema == sum(p.numel() for p in module.network.parameters())
    frozen = sum(p.numel() for p in module.frozen.parameters())
    assert frozen > 0 and n_ema < sum(p.numel() for p in module.parameters())
    metrics = trainer.callback_metrics
    Q = module.config.num_codebooks
    expected = {
        "val/loss",
        "val/acc",
        "val/ppl",
        "val/energy_map_cc",
        "val/energy_map_auc",
        "val/doa_error_deg",
    }
    expected |= {f"val/acc/q{q}" for q in range(Q)} | {f"val/ppl/q{q}" for q in range(Q)}
    expected |= {"train/loss", "train/unigram_entropy"}
    assert expected <= set(metrics), sorted(expected - set(metrics))
    assert 0.0 <= float(metrics["val/acc"]) <= 1.0 and float(metrics["val/ppl"]) > 1.0
    assert -1.0 <= float(metrics["val/energy_map_cc"]) <= 1.0
    # untrained: perplexity near the codebook size, the loss is the sum of K per-stream entropies
    assert 0.5 * 1024 < float(metrics["val/ppl"]) < 2 * 1024
    samples = list((tmp_path / "tb" / "version_0" / "samples" / "epoch=0").iterdir())
    names = sorted(p.name for p in samples)
    assert "energy_maps.png" in names and sum(n.endswith("_generated.wav") for n in names) == 1
    wav = next(p for p in samples if p.name.endswith("_generated.wav"))
    info = sf.info(str(wav))
    assert info.channels == 4 and info.samplerate == 16000 and info.frames == 16000
    # frozen parts are not in the checkpoint and the module still loads it
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    assert not any(k.startswith("frozen.") for k in ckpt["state_dict"])
    ViSAGeModule.load_from_checkpoint(path)


def test_predict_writes_four_channel_wavs(root, tmp_path):
    videos = sorted(str(p / "video.mp4") for p in root.iterdir() if (p / "video.mp4").exists())[:2]
    module = _module()
    writer = PredictionWriter(str(tmp_path / "pred"))
    trainer = _trainer(tmp_path, callbacks=[writer])
    trainer.predict(module, datamodule=_data(root, predict_files=videos), return_predictions=False)
    out = sorted((tmp_path / "pred").glob("*.wav"))
    # both files are called video.mp4: the second gets a suffix instead of overwriting the first
    assert [p.name for p in out] == ["video.wav", "video_1.wav"]
    info = sf.info(str(out[0]))
    assert info.channels == 4 and info.samplerate == 16000 and info.frames == 16000  # 1-s video


def test_init_from_mono_copies_w_to_every_channel(tmp_path):
    mono = ViSAGe(get_config("visage_small_mono", **SMALL))
    path = tmp_path / "mono.safetensors"
    save_file({f"network.{k}": v.contiguous() for k, v in mono.state_dict().items()}, str(path))
    module = _module(init_from_mono=str(path))
    module.setup("fit")
    Q = module.config.num_codebooks
    for c in range(4):
        assert torch.equal(module.network.heads.weight[c * Q : (c + 1) * Q], mono.heads.weight)
    assert torch.equal(module.network.encoder.visual_proj.weight, mono.encoder.visual_proj.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _module(init_from_mono=str(tmp_path / "nope.ckpt")).setup("fit")


@pytest.mark.slow
def test_loss_falls_below_unigram_baseline(root, tmp_path):
    """~60 steps on 2 clips with the small width: loss (sum over 16 streams) vs the unigram entropy."""
    pl.seed_everything(0)
    module = _module(
        visual_dropout=0.0,
        direction_dropout=0.0,
        sample_every_n_epochs=0,
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
    )
    trainer = _trainer(tmp_path, max_epochs=60, limit_val_batches=0, log_every_n_steps=1)
    trainer.fit(module, datamodule=_data(root))
    loss, baseline = (
        float(trainer.callback_metrics["train/loss"]),
        float(trainer.callback_metrics["train/unigram_entropy"]),
    )
    print(f"final train loss {loss:.2f} nats vs unigram baseline {baseline:.2f} nats")
    assert loss < 0.5 * baseline


def test_history_dropout_corrupts_only_the_decoder_input():
    """history_dropout replaces valid input tokens by random codes; targets and missing frames are untouched."""
    off = _module()
    codes = torch.randint(0, off.config.codebook_size, (3, 4, off.config.num_codebooks, 20))
    codes[:, :, :, -3:] = -1  # missing frames
    assert off.corrupt_history(codes) is None
    torch.manual_seed(1)  # not 0: that would replay the draws that made `codes`
    half = _module(history_dropout=0.5).corrupt_history(codes)
    valid = codes >= 0
    changed = (half != codes) & valid
    # a replaced token equals the old one with probability 1/V; ~50 % of the valid tokens change
    assert 0.4 < changed.sum() / valid.sum() < 0.6
    assert torch.equal(half[~valid], codes[~valid]) and bool(
        ((half >= 0) & (half < off.config.codebook_size))[valid].all()
    )
    with pytest.raises(ValueError, match="history_dropout"):
        _module(history_dropout=1.5)
    # the network: input_codes only changes the history; identical input gives identical logits
    net = off.network.eval()
    visual = torch.randn(3, 4, net.config.d_visual)
    energy = torch.rand(3, 4, net.config.energy_map_dim) if net.config.energy_map_dim else None
    direction = torch.nn.functional.normalize(torch.randn(3, 3), dim=-1)
    codes = codes.clamp_min(0)
    with torch.no_grad():
        plain = net(visual, codes, energy, direction).logits
        same = net(visual, codes, energy, direction, input_codes=codes.clone()).logits
        other = net(visual, codes, energy, direction, input_codes=codes.roll(1, 0)).logits
    torch.testing.assert_close(same, plain, rtol=0, atol=0)
    assert not torch.allclose(other, plain)
    with pytest.raises(ValueError, match="input_codes"):
        net(visual, codes, energy, direction, input_codes=codes[:2])


def test_visual_gain_is_the_loss_increase_with_swapped_pictures(root, tmp_path):
    """val/visual_gain = CE(next clip's visual inputs) - CE(own), from the network directly; 0 when blind."""
    torch.manual_seed(0)
    module = _module().eval()
    net = module.network.double()  # float64: an untrained network's gain is small but must be exact
    inputs = {
        k: (v.double() if v is not None and v.is_floating_point() else v)
        for k, v in module.prepare_batch(_batch(root)).items()
    }

    def ce(visual, energy):
        with torch.no_grad():
            logits = net(visual, inputs["codes"], energy, inputs["direction"]).logits
        return stream_cross_entropy(logits, inputs["codes"])[0]

    own = ce(inputs["visual"], inputs["energy_map"])
    swapped = ce(inputs["visual"].flip(0), inputs["energy_map"].flip(0))  # batch of 2: roll(1) == flip
    gain = module.visual_gain(inputs)
    torch.testing.assert_close(gain, swapped - own, rtol=0, atol=1e-10)
    assert abs(float(gain)) > 1e-7  # an untrained network already reads its memory a little
    # cut the picture out of the encoder: its memory no longer depends on the clip, the gain is exactly 0
    with torch.no_grad():
        net.encoder.visual_proj.weight.zero_()
        net.encoder.energy_mlp[-1].weight.zero_()
    assert float(module.visual_gain(inputs).abs()) < 1e-10
    one = {k: (v[:1] if v is not None else None) for k, v in inputs.items()}
    with pytest.raises(ValueError, match="at least 2 clips"):
        module.visual_gain(one)
    # validation logs it for batches of 2+ clips (the 2 training clips here)
    trainer = _trainer(tmp_path)
    metrics = trainer.validate(_module(sample_every_n_epochs=0), datamodule=_data(root, val_split="train"))[0]
    assert "val/visual_gain" in metrics and math.isfinite(metrics["val/visual_gain"])
