"""VisualDirectionModule: flip augmentation, encoder export round-trip, learning the side, recipe, ViSAudio loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spatialgen.cli import lightning_cli
from spatialgen.encoders import EncoderWeightsError, create_encoder
from spatialgen.models.visaudio.pipeline import ViSAudioPipeline
from spatialgen.training.visual_direction import VisualDirectionModule, angle_errors_deg
from tests.data.test_frame_direction import frame_direction_root  # noqa: F401  (session fixture)

from .helpers import trainer

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "visual_direction_synthetic.yaml"
TINY = {"embed_dim": 16, "input_size": [32, 32], "fps": 8.0}


def _module(**kw) -> VisualDirectionModule:
    return VisualDirectionModule(encoder="tiny", encoder_kwargs=TINY, **kw)


class Recorder(nn.Module):
    """Stands in for the network: records its input frames and returns fixed predictions."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred, self.seen = pred, None

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen = frames
        return self.pred


def _batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (n, 3, 8, 10), generator=g, dtype=torch.uint8)
    target = torch.randn(n, 3, generator=g)
    target[:, 1] = torch.tensor([3.0, -3.0, 1.0, -1.0, 0.1, 0.0])[:n]  # lateral and central labels
    target = nn.functional.normalize(target, dim=-1)
    weight = torch.tensor([1.0, 0.8, 0.2, 0.6, 1.0, 0.0])[:n]
    return frames, target, weight


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_flip_mirrors_frames_and_negates_only_left(flip_prob: float) -> None:
    m = _module(flip_prob=flip_prob, reliable_weight=0.5).train()
    frames, target, weight = _batch()
    pred = torch.tensor(
        [
            [1.0, 0.5, 0.0],
            [0.2, -0.3, 0.1],
            [0.0, 1.0, 0.0],
            [0.5, 0.5, 0.5],
            [1.0, 0.0, 0.2],
            [0.0, 0.0, 1.0],
        ]
    )
    m.network = Recorder(pred)
    loss, logs = m.compute_loss((frames, target, weight))
    # hand computation: flipped examples see frames[..., ::-1] and the label (x, -y, z)
    sign = np.array([1.0, -1.0, 1.0]) if flip_prob == 1.0 else np.ones(3)
    want_frames = frames.numpy()[..., ::-1] if flip_prob == 1.0 else frames.numpy()
    np.testing.assert_array_equal(m.network.seen.numpy(), want_frames)
    t, p, w = target.numpy() * sign, pred.numpy(), weight.numpy()
    assert loss.item() == pytest.approx((w * ((p - t) ** 2).sum(-1)).sum() / w.sum(), rel=1e-6)
    good = w >= 0.5
    cos = (p[good] / np.linalg.norm(p[good], axis=-1, keepdims=True) * t[good]).sum(-1)
    assert logs["angle_error_deg"].item() == pytest.approx(np.degrees(np.arccos(cos)).mean(), rel=1e-5)
    lateral = good & (np.abs(t[:, 1]) > math.sin(math.radians(20)))
    want_side = (np.sign(p[lateral, 1]) != np.sign(t[lateral, 1])).mean()
    assert logs["side_error"].item() == pytest.approx(want_side)
    # evaluation never flips
    m.eval()
    m.compute_loss((frames, target, weight))
    assert torch.equal(m.network.seen, frames)


def test_flip_prob_is_validated_and_angle_errors() -> None:
    with pytest.raises(ValueError, match="flip_prob"):
        _module(flip_prob=1.5)
    pred = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [-1.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(angle_errors_deg(pred, target), torch.tensor([0.0, 90.0, 180.0]))


def test_export_encoder_round_trip(tmp_path: Path) -> None:
    m = _module()
    with torch.no_grad():  # trained-looking weights: nothing a fresh random init could reproduce
        for p in m.encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = m.export_encoder(tmp_path / "sub" / "tiny.safetensors")
    assert path.exists() and not path.with_name("tiny.safetensors.tmp").exists()
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["encoder"] == "tiny"
    assert set(load_file(str(path))) == set(m.encoder.state_dict())
    loaded = create_encoder("tiny", pretrained=path, **TINY).eval()
    frames = torch.randint(0, 256, (2, 3, 3, 40, 40), dtype=torch.uint8)
    with torch.no_grad():
        want = m.encoder.eval()(frames, patch_tokens=True)
        got = loaded(frames, patch_tokens=True)
    assert torch.equal(got.global_features, want.global_features)
    assert torch.equal(got.patch_tokens, want.patch_tokens)
    # strict: another architecture refuses the file
    with pytest.raises(EncoderWeightsError, match=r"wrong shape 1: head\.weight"):
        create_encoder("tiny", pretrained=path, **{**TINY, "keypoints": False})


# ---------------------------------------------------------------------------------------- learning
def _squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A red 8x8 square on grey at a random position of a 32x32 frame; the label is its camera direction.

    Pinhole with a 90° horizontal field of view: image x offset u in [-1, 1] (right positive) gives
    azimuth -atan(u) (right of centre = negative azimuth, +y is left), image y offset v (down) elevation
    -atan(v).
    """
    g = torch.Generator().manual_seed(seed)
    frames = torch.full((n, 3, 32, 32), 128, dtype=torch.uint8)
    x0 = torch.randint(0, 25, (n,), generator=g)
    y0 = torch.randint(0, 25, (n,), generator=g)
    for i in range(n):
        frames[i, :, y0[i] : y0[i] + 8, x0[i] : x0[i] + 8] = torch.tensor([230, 30, 30], dtype=torch.uint8)[
            :, None, None
        ]
    u = (x0 + 4 - 16) / 16.0
    v = (y0 + 4 - 16) / 16.0
    az, el = -torch.atan(u), -torch.atan(v)
    dirs = torch.stack((az.cos() * el.cos(), az.sin() * el.cos(), el.sin()), -1).float()
    return frames, dirs, torch.ones(n)


def test_learns_where_the_square_is(tmp_path: Path) -> None:
    """Trained 150 steps, held-out squares come out on the correct side (chance: 50%; untrained: ~50%)."""
    torch.manual_seed(0)
    m = _module(flip_prob=0.5, optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3))
    train = TensorDataset(*_squares(512, seed=0))
    held_frames, held_dirs, held_w = _squares(128, seed=1)

    def held_out() -> tuple[float, float, float]:
        m.eval()
        with torch.no_grad():
            loss, _ = m.compute_loss((held_frames, held_dirs, held_w))
            pred = m.network(held_frames)
        lateral = held_dirs[:, 1].abs() > math.sin(math.radians(15))
        wrong = (pred[lateral, 1].sign() != held_dirs[lateral, 1].sign()).float().mean()
        return loss.item(), wrong.item(), angle_errors_deg(pred, held_dirs).median().item()

    loss0, wrong0, _ = held_out()
    trainer(tmp_path, max_steps=150, max_epochs=-1, enable_checkpointing=False).fit(
        m, DataLoader(train, batch_size=32, shuffle=True, drop_last=True)
    )
    loss1, wrong1, median1 = held_out()
    print(
        f"held-out loss {loss0:.3f} -> {loss1:.3f}, side error {wrong0:.2f} -> {wrong1:.3f}, median {median1:.1f} deg"
    )
    assert loss1 < 0.25 * loss0
    assert wrong1 < 0.1 and median1 < 10.0


# ------------------------------------------------------------------------------------------- recipe
def test_recipe_fast_dev_run_exports_the_encoder(frame_direction_root: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "export" / "tiny.safetensors"
    lightning_cli(
        [
            "fit",
            "--config",
            str(RECIPE),
            f"--data.init_args.root={frame_direction_root}",
            "--data.init_args.progress=false",
            "--data.init_args.batch_size=4",
            f"--model.init_args.export_path={out}",
            "--trainer.fast_dev_run=true",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert out.exists()
    enc = create_encoder("tiny", pretrained=out, embed_dim=32, input_size=(64, 64), fps=8.0)
    assert enc.head.in_features == 3 * 32


# ----------------------------------------------------------------------------------------- ViSAudio
def test_visaudio_loads_a_pretrained_tiny_file(tmp_path: Path) -> None:
    """A weights *path* is loaded, recorded as not published, and exported with the pipeline."""
    kwargs = {"embed_dim": 16, "input_size": [32, 32], "fps": 4.0}
    source = create_encoder("tiny", pretrained=False, **kwargs)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    build = {
        "codec_name": "stft",
        "codec_kwargs": {"sample_rate": 8000, "n_fft": 64, "hop_length": 32},
        "codec_pretrained": False,
        "encoder_kwargs": {"tiny": kwargs},
        "clip_seconds": 1.0,
        "seed": 3,
    }
    pipe = ViSAudioPipeline.build("tiny", encoder_pretrained=str(path), **build)
    config = pipe.pipeline_config()
    assert config["encoders"]["tiny"]["pretrained"] is False
    assert config["codec"]["pretrained"] is False
    file_state = load_file(str(path))
    exported = pipe.export_state_dict()
    for key, value in file_state.items():
        assert torch.equal(exported[f"encoders.tiny.{key}"], value), key
    # a rebuild from the config alone (file gone) + the export gives the same encoder weights
    path.unlink()
    again = ViSAudioPipeline.from_pipeline_config(config)
    again.load_export_state_dict(exported)
    for key, value in file_state.items():
        assert torch.equal(again.encoders["tiny"].state_dict()[key], value), key
    # a random build with the same seed differs: the file really was loaded
    random = ViSAudioPipeline.build("tiny", encoder_pretrained=False, **build)
    assert not torch.equal(random.encoders["tiny"].head.weight, file_state["head.weight"])


def test_visaudio_module_accepts_an_encoder_path(tmp_path: Path) -> None:
    from spatialgen.training.visaudio import ViSAudioModule

    m = _module()
    path = m.export_encoder(tmp_path / "tiny.safetensors")
    va = ViSAudioModule(
        config="tiny",
        codec_name="stft",
        codec_kwargs={"sample_rate": 8000, "n_fft": 64, "hop_length": 32},
        codec_pretrained=False,
        encoder_kwargs={"tiny": TINY},
        encoder_pretrained=str(path),
        clip_seconds=1.0,
        sample_steps=2,
    )
    want = m.encoder.state_dict()
    got = va.pipeline.encoders["tiny"].state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
    assert va.pipeline.pipeline_config()["encoders"]["tiny"]["pretrained"] is False
