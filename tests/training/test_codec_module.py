"""CodecModule: crops, DAC mel loss vs a numpy reference, DOA error, training, GAN step, export round trip."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from spatialgen.codecs import create_codec
from spatialgen.codecs.export import CHECKPOINT_KEY, export_dac_checkpoint
from spatialgen.metrics.embedders.frontends import slaney_mel_filterbank
from spatialgen.spatial import foa
from spatialgen.training.codec import CodecModule, MultiScaleMelLoss, doa_error_deg

warnings.filterwarnings("ignore", category=FutureWarning)
SR = 16000


def tiny_module(**kwargs) -> CodecModule:
    torch.manual_seed(0)
    options = {
        "codec_name": "dac_tiny",
        "crop_seconds": 0.01,
        "quantizer_dropout": 0.0,
        "mel_window_lengths": [32, 128],
        "mel_n_mels": [8, 16],
    }
    return CodecModule(**{**options, **kwargs})


def foa_batch(n: int = 2, samples: int = 800) -> dict:
    g = torch.Generator().manual_seed(1)
    mono = torch.randn(n, samples, generator=g) * 0.3
    audio = foa.encode(mono, math.radians(40.0), math.radians(10.0))  # [n, 4, samples]
    return {"audio": audio.float(), "sample_rate": torch.full((n,), SR), "audio_format": ["foa"] * n}


def test_mono_crops_are_slices_of_each_channel_inside_the_mask():
    module = tiny_module(crops_per_channel=3)
    batch = foa_batch(2, 800)
    batch["audio"] = torch.arange(2 * 4 * 800, dtype=torch.float32).reshape(2, 4, 800)
    batch["audio_mask"] = torch.ones(2, 800, dtype=torch.bool)
    batch["audio_mask"][1, 300:] = False  # clip 1 is only 300 samples long (padded)
    crops = module.mono_crops(batch)
    length = module.crop_samples
    assert length == 160 and crops.shape == (2 * 4 * 3, 1, length)
    for i, crop in enumerate(crops[:, 0]):
        clip, channel = divmod(i // 3, 4)
        start = int(crop[0]) - (clip * 4 + channel) * 800
        assert torch.equal(crop, batch["audio"][clip, channel, start : start + length])
        assert start >= 0 and start + length <= (800 if clip == 0 else 300)


def _numpy_mel_loss(est: np.ndarray, ref: np.ndarray, windows: list[int], mels: list[int]) -> float:
    total = 0.0
    for w, m in zip(windows, mels):
        fb = slaney_mel_filterbank(SR, w, m, 0.0, SR / 2).numpy()
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w)  # periodic Hann

        def log_mel(x: np.ndarray, w=w, fb=fb, hann=hann) -> np.ndarray:
            padded = np.pad(x, w // 2, mode="reflect")
            n_frames = 1 + (len(padded) - w) // (w // 4)
            frames = np.stack([padded[k * (w // 4) : k * (w // 4) + w] for k in range(n_frames)])
            spec = np.abs(np.fft.rfft(frames * hann, axis=-1)).T
            return np.log10(np.maximum(fb @ spec, 1e-5))

        total += np.mean([np.abs(log_mel(e) - log_mel(r)).mean() for e, r in zip(est, ref)])
    return total


def test_multiscale_mel_loss_matches_numpy_reference():
    g = np.random.default_rng(0)
    ref = g.standard_normal((3, 2000)) * 0.1
    est = ref + g.standard_normal((3, 2000)) * 0.02
    loss = MultiScaleMelLoss(SR, [64, 256], [10, 40])
    got = loss(torch.from_numpy(est), torch.from_numpy(ref))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(_numpy_mel_loss(est, ref, [64, 256], [10, 40]), rel=1e-9)
    assert float(loss(torch.from_numpy(ref), torch.from_numpy(ref))) == 0.0
    with pytest.raises(ValueError, match="one entry per scale"):
        MultiScaleMelLoss(SR, [64, 256], [10])
    with pytest.raises(ValueError, match="too few"):
        loss(torch.zeros(1, 100), torch.zeros(1, 100))


def test_doa_error_is_the_angle_between_intensity_directions():
    mono = torch.randn(1, SR // 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = foa.encode(mono, math.radians(30.0), math.radians(0.0))
    b = foa.encode(mono, math.radians(37.0), math.radians(0.0))  # 7 degrees further left
    c = foa.encode(0.5 * mono, math.radians(30.0), math.radians(-4.0))  # gain does not matter, 4 deg down
    assert float(doa_error_deg(a, a, SR)) == pytest.approx(0.0, abs=1e-5)
    assert float(doa_error_deg(a, b, SR)) == pytest.approx(7.0, abs=1e-6)
    assert float(doa_error_deg(a, c, SR)) == pytest.approx(4.0, abs=1e-6)
    with pytest.raises(ValueError, match="FOA"):
        doa_error_deg(a[:, :2], b[:, :2], SR)


def test_losses_decrease_on_a_fixed_batch():
    module = tiny_module(crop_seconds=0.02, l1_weight=10.0)
    module.train()
    batch = foa_batch(1, 800)
    opt = torch.optim.Adam(module.network.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        torch.manual_seed(5)  # the same crops every step
        loss, logs = module.compute_loss(batch)
        assert set(logs) == {"mel", "l1", "commitment", "codebook"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((float(loss.detach()), float(logs["mel"].detach()), float(logs["l1"].detach())))
    first, last = history[0], history[-1]
    assert last[0] < 0.75 * first[0] and last[1] < first[1] and last[2] < first[2]


def test_quantizer_dropout_is_set_and_invalid_settings_raise():
    module = tiny_module(quantizer_dropout=0.5)
    assert module.network.net.quantizer.quantizer_dropout == 0.5
    with pytest.raises(ValueError, match="DAC entry"):
        CodecModule(codec_name="stft")
    with pytest.raises(ValueError, match="quantizer_dropout"):
        tiny_module(quantizer_dropout=1.5)
    with pytest.raises(ValueError, match="crop_seconds"):
        tiny_module(crop_seconds=0.0)


def test_validation_metrics_on_a_perfect_and_a_trained_reconstruction():
    module = tiny_module().eval()
    batch = foa_batch(2, 800)
    metrics = module.reconstruction_metrics(batch)
    assert set(metrics) == {"mel_distance", "si_sdr", "doa_error_deg"}
    module.reconstruct = lambda audio, sample_rate=None: audio.clone()  # an ideal codec
    ideal = module.reconstruction_metrics(batch)
    assert float(ideal["mel_distance"]) == 0.0 and float(ideal["doa_error_deg"]) < 1e-3
    assert float(ideal["si_sdr"]) > 60.0


def test_adversarial_step_updates_codec_and_discriminator(tmp_path):
    from tests.training.helpers import trainer

    module = tiny_module(adversarial=True, discriminator_kwargs={"periods": [2], "fft_sizes": [128]})
    codec_before = [p.detach().clone() for p in module.network.parameters()]
    disc_before = [p.detach().clone() for p in module.discriminator.parameters()]
    batch = foa_batch(2, 800)
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, loader)
    assert any(not torch.equal(a, b) for a, b in zip(codec_before, module.network.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, module.discriminator.parameters()))


def test_export_round_trip_gives_identical_codes(tmp_path):
    module = tiny_module().eval()
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint[CHECKPOINT_KEY]["dac_kwargs"] == module.network.dac_kwargs
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    out = export_dac_checkpoint(path, tmp_path / "codec")
    audio = foa_batch(1, 1000)["audio"]
    with torch.no_grad():
        want = module.network.encode(audio, SR)
        loaded = create_codec("dac_tiny", pretrained=out, frozen=False, remove_weight_norm=False).eval()
        assert torch.equal(loaded.encode(audio, SR), want)
        inference = create_codec("dac_tiny", pretrained=out)  # frozen, weight norm folded
        assert inference.frozen and not inference.has_weight_norm
        np.testing.assert_allclose(
            inference.decode(want, length=1000).numpy(),
            module.network.decode(want, length=1000).numpy(),
            atol=1e-5,
        )


def test_export_prefers_the_ema_weights_and_rejects_foreign_checkpoints(tmp_path):
    module = tiny_module()
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    name = "net.quantizer.quantizers.0.codebook.weight"
    ema = {n: p.detach() + 1.0 for n, p in module.network.named_parameters()}
    checkpoint["callbacks"] = {"EMA": {"ema": ema, "num_updates": 3, "decay": 0.9}}
    ema_dir = export_dac_checkpoint(checkpoint, tmp_path / "ema")
    raw_dir = export_dac_checkpoint(checkpoint, tmp_path / "raw", use_ema=False)
    ema_codec = create_codec("dac_tiny", pretrained=ema_dir, frozen=False, remove_weight_norm=False)
    raw_codec = create_codec("dac_tiny", pretrained=raw_dir, frozen=False, remove_weight_norm=False)
    assert torch.equal(ema_codec.state_dict()[name], ema[name])
    assert torch.equal(raw_codec.state_dict()[name], module.network.state_dict()[name])
    with pytest.raises(ValueError, match="CodecModule"):
        export_dac_checkpoint({"state_dict": {}}, tmp_path / "bad")
