"""With a posterior-sampling codec (MMAudio's VAE, ``sample_posterior: true`` in the published recipes) the
latent normaliser is fitted on the posterior means, as MMAudio's latent statistics are, while training
latents stay posterior samples."""

from __future__ import annotations

import torch

from spatialgen.models.visaudio.latents import joint_peak_normalize
from spatialgen.training.visaudio import ViSAudioModule

SR = 16000


def _module() -> ViSAudioModule:
    return ViSAudioModule(
        config="tiny",
        codec_name="mmaudio_vae_tiny",
        codec_kwargs={"sample_posterior": True},
        codec_pretrained=False,
        encoder_kwargs={"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0}},
        encoder_pretrained=False,
        clip_seconds=0.5,
        sample_steps=2,
    )


def test_normaliser_fit_uses_the_posterior_mean_and_training_still_samples():
    torch.manual_seed(0)
    m = _module()
    t = torch.arange(SR // 2) / SR
    tone = torch.sin(2 * torch.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    audio = torch.stack(
        [torch.stack([tone, 0.3 * tone]), 0.2 * torch.randn(2, SR // 2)]
    )  # [2 clips, 2 ears, T]
    batch = {"audio": audio, "sample_rate": SR}
    a, b = (m.batch_latents(batch, normalize=False) for _ in range(2))
    assert not torch.equal(a, b)  # training latents are posterior samples (the test could fail otherwise)
    assert m.fit_normalizer([batch], max_batches=1) == 1
    assert m.pipeline.codec.sample_posterior  # restored after the fit
    # independent reference: joint peak, then the VAE posterior mean of each ear, pooled in float64
    mean, _ = m.pipeline.codec.encode_posterior(joint_peak_normalize(audio, m.pipeline.peak), SR)
    flat = mean.double().transpose(-2, -1).reshape(-1, mean.shape[-2])
    torch.testing.assert_close(m.network.normalizer.mean.double(), flat.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        m.network.normalizer.std.double(), flat.std(0).clamp_min(1e-5), rtol=1e-5, atol=1e-6
    )
    # a fit on samples would be measurably wider: the posterior std is not negligible here
    sampled = a.double().transpose(-2, -1).reshape(-1, a.shape[-2])
    assert float((sampled.std(0) - flat.std(0)).abs().max()) > 1e-3


def test_feature_cache_stores_the_posterior_mean():
    """A cache built with a posterior-sampling codec stores the mean (MMAudio caches mean and std, never a
    draw): two builds agree exactly and equal the VAE's posterior mean."""
    from spatialgen.codecs import create_codec
    from spatialgen.data.features import Featurizer

    torch.manual_seed(0)
    codec = create_codec("mmaudio_vae_tiny", sample_posterior=True)
    featurizer = Featurizer(encoders=[], codec=codec, pretrained=False)
    audio = 0.3 * torch.randn(2, SR // 2)
    media = {"audio": {"audio": audio, "sample_rate": SR, "audio_format": "binaural", "camera_pose": None}}
    first, second = featurizer(media)["latents"], featurizer(media)["latents"]
    assert not torch.equal(codec.encode_latents(audio[None], SR), codec.encode_latents(audio[None], SR))
    assert torch.equal(first, second)
    torch.testing.assert_close(first, codec.encode_posterior(audio[None], SR)[0][0])
