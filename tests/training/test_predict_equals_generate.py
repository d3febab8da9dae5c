"""`spatialgen predict` (trainer.predict with the module) and `spatialgen generate` (generate_video on the
checkpoint's export) give identical audio for the same checkpoint, video and seed, for both models."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import spatialgen.generate as generate_mod
from spatialgen.data.collate import collate_items
from spatialgen.data.datamodule import PredictVideos
from spatialgen.generate import GenerateOptions, generate_video
from spatialgen.hub.export import pipeline_from_checkpoint
from spatialgen.io import write_video
from spatialgen.models.visage.config import VISAGE_TINY_WIDTH
from spatialgen.training.visage import ViSAGeModule
from spatialgen.training.visaudio import ViSAudioModule

FPS = 4.0
VISAGE = {
    "config": "visage_small",
    "config_overrides": {
        "clip_seconds": 1.0,
        "visual_fps": FPS,
        **VISAGE_TINY_WIDTH,
    },
    "encoder": "tiny",
    "encoder_kwargs": {"embed_dim": 32, "input_size": [56, 56], "fps": FPS},
    "encoder_pretrained": False,
    "codec_pretrained": False,
    "sampling": {"top_k": 16},
    "sample_seed": 5,
}
VISAUDIO = {
    "config": "tiny",
    "codec_name": "stft",
    "codec_kwargs": {"sample_rate": 8000, "n_fft": 64, "hop_length": 32},
    "encoder_kwargs": {"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": FPS}},
    "encoder_pretrained": False,
    "clip_seconds": 1.0,
    "sample_steps": 2,
    "cfg_scale": 2.0,
    "sample_seed": 5,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(module: pl.LightningModule) -> None:
    """Give zero-initialised layers weights, so the picture and the seed matter."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.network.parameters():
            if not p.abs().sum():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize(("cls", "kwargs"), [(ViSAGeModule, VISAGE), (ViSAudioModule, VISAUDIO)])
def test_predict_and_generate_give_identical_audio(cls, kwargs, tmp_path: Path, monkeypatch):
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (10, 3, 40, 56), generator=g, dtype=torch.uint8)  # 2.5 s: 3 windows
    video = write_video(tmp_path / "clip.mp4", frames, FPS)
    module = cls(**kwargs)
    _perturb(module)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    loader = torch.utils.data.DataLoader(PredictVideos([str(video)], fps=FPS), collate_fn=collate_items)
    trainer.predict(module, loader, return_predictions=False)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    # spatialgen predict: the module restored from the checkpoint
    restored = cls.load_from_checkpoint(ckpt, weights_only=False)
    (pred,) = trainer.predict(restored, loader)
    predicted = pred["audio"][0, :, : pred["lengths"][0]]

    # spatialgen generate: the checkpoint's export, same seed, camera at (0, 0) like PredictVideos
    pipeline = pipeline_from_checkpoint(ckpt, use_ema=False).pipeline
    written = {}
    monkeypatch.setattr(
        generate_mod, "_write_outputs", lambda v, audio, *a: written.setdefault("audio", audio)
    )
    camera = (0.0, 0.0) if cls is ViSAGeModule else None
    sampling = {"top_k": 16} if cls is ViSAGeModule else {}
    options = GenerateOptions(out_dir=tmp_path / "out", seed=5, camera_direction=camera, sampling=sampling)
    generate_video(video, pipeline, options)

    generated = written["audio"]
    assert generated.shape == predicted.shape == (pipeline.num_channels, round(2.5 * pipeline.sample_rate))
    assert generated.abs().max() > 0
    assert torch.equal(generated, predicted)
