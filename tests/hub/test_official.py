"""An official ViSAGe release folder (BART config.json + pytorch_model.bin, built here at tiny size from the
official key names of jaeyeonkim99/visage ``modeling/visage.py``) is detected and converted exactly
by load_pretrained."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from spatialgen.hub.official import find_official_folders, is_official_visage
from spatialgen.models.visage.model import ViSAGe
from spatialgen.models.visage.pipeline import ViSAGePipeline
from zoo import load_pretrained

D, FFN, CLIP, Q, V, SRC, TGT = 32, 64, 16, 2, 1024, 4, 101
OPTIONS = {
    "config_overrides": {"codec": "dac_synthetic"},  # same rate/hop/codebook as dac_16khz, small and random
    "encoder": "tiny",
    "encoder_kwargs": {"embed_dim": CLIP, "input_size": [56, 56], "fps": 4.0},
    "encoder_pretrained": False,
    "codec_pretrained": False,
}


def official_state(channels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Official key names and shapes (jaeyeonkim99/visage ``modeling/visage.py``), random values."""
    g = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {
        "null_embedding": (CLIP,),
        "model.encoder.bos": (1, D),
        "model.encoder.eos": (1, D),
        "model.encoder.clip_projection.weight": (D, CLIP),
        "model.encoder.clip_projection.bias": (D,),
        "model.encoder.embed_positions.weight": (SRC, D),
        "model.encoder.embed_spatial.weight": (4, D),
        "model.encoder.layernorm_embedding.weight": (D,),
        "model.encoder.layernorm_embedding.bias": (D,),
        "model.decoder.bos": (1, D),
        "model.decoder.embed_positions.weight": (TGT + 2, D),
        "model.decoder.layernorm_embedding.weight": (D,),
        "model.decoder.layernorm_embedding.bias": (D,),
    }
    if channels == 4:
        shapes |= {
            "dir_null_embedding": (3,),
            "energy_null_embedding": (49,),
            "model.encoder.direction_embedding.0.weight": (D, 3),
            "model.encoder.direction_embedding.0.bias": (D,),
            "model.encoder.direction_embedding.2.weight": (D, D),
            "model.encoder.direction_embedding.2.bias": (D,),
            "model.encoder.energy_map_projection.0.weight": (D, 49),
            "model.encoder.energy_map_projection.0.bias": (D,),
            "model.encoder.energy_map_projection.2.weight": (D, D),
            "model.encoder.energy_map_projection.2.bias": (D,),
        }
    for side, attns in (("encoder", ("self_attn",)), ("decoder", ("self_attn", "encoder_attn"))):
        p = f"model.{side}.layers.0."
        for attn in attns:
            for proj in ("q", "k", "v", "out"):
                shapes[f"{p}{attn}.{proj}_proj.weight"] = (D, D)
                shapes[f"{p}{attn}.{proj}_proj.bias"] = (D,)
            shapes[f"{p}{attn}_layer_norm.weight"] = (D,)
            shapes[f"{p}{attn}_layer_norm.bias"] = (D,)
        shapes |= {
            f"{p}fc1.weight": (FFN, D),
            f"{p}fc1.bias": (FFN,),
            f"{p}fc2.weight": (D, FFN),
            f"{p}fc2.bias": (D,),
        }
        shapes |= {f"{p}final_layer_norm.weight": (D,), f"{p}final_layer_norm.bias": (D,)}
    rows = math.ceil((V + 1) / 64) * 64
    for k in range(channels * Q):
        shapes[f"model.decoder.embed_dac.{k}.weight"] = (rows, D)
        shapes[f"dac_heads.{k}.weight"] = (V, D)
        shapes[f"dac_heads.{k}.bias"] = (V,)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def write_official(folder: Path, channels: int = 4, prefix: str = "") -> dict[str, torch.Tensor]:
    folder.mkdir(parents=True)
    config = {
        "model_type": "bart",
        "architectures": ["VisageForAmbisonicsGeneration"],
        "d_model": D,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": FFN,
        "decoder_ffn_dim": FFN,
        "activation_function": "gelu",
        "d_clip": CLIP,
        "num_rvq": Q,
        "dac_vocab_size": V,
        "dac_pad_token_id": V,
        "max_source_length": SRC,
        "max_target_length": TGT,
        "dac_sample_rate": 16000,
        "clip_frame_rate": 4,
    }
    (folder / "config.json").write_text(json.dumps(config))
    state = official_state(channels)
    torch.save({prefix + k: v for k, v in state.items()}, folder / "pytorch_model.bin")
    return state


def check_converted(network: ViSAGe, state: dict[str, torch.Tensor], channels: int) -> None:
    sd = network.state_dict()
    for k in range(channels * Q):
        assert torch.equal(sd["decoder.token_embedding"][k], state[f"model.decoder.embed_dac.{k}.weight"])
        assert torch.equal(sd["heads.weight"][k], state[f"dac_heads.{k}.weight"])
        assert torch.equal(sd["heads.bias"][k], state[f"dac_heads.{k}.bias"])
    assert torch.equal(sd["encoder.visual_proj.weight"], state["model.encoder.clip_projection.weight"])
    assert torch.equal(
        sd["decoder.layers.0.cross_attn.q_proj.weight"],
        state["model.decoder.layers.0.encoder_attn.q_proj.weight"],
    )
    assert torch.equal(sd["null_visual"], state["null_embedding"])


@pytest.mark.parametrize("prefix", ["", "module."])  # accelerate DDP checkpoints prefix every key
def test_official_foa_folder_is_detected_and_converted(tmp_path, prefix):
    folder = tmp_path / "visage_release"
    state = write_official(folder, prefix=prefix)
    assert is_official_visage(folder)
    pipe = load_pretrained(folder, **OPTIONS)
    assert isinstance(pipe, ViSAGePipeline) and not pipe.training
    cfg = pipe.config
    assert (cfg.num_channels, cfg.num_codebooks, cfg.energy_map_dim, cfg.use_direction) == (4, Q, 49, True)
    assert (cfg.clip_seconds, pipe.sample_rate, cfg.codec) == (1.0, 16000, "dac_synthetic")
    check_converted(pipe.network, state, 4)
    frames = {"tiny": torch.randint(0, 256, (1, SRC, 3, 56, 56), dtype=torch.uint8)}
    audio = pipe.generate(frames, camera_direction=torch.tensor([[0.5, 0.0]]), seed=0)
    assert audio.shape == (1, 4, 16000) and torch.isfinite(audio).all()


def test_release_repo_with_two_checkpoints_picks_by_channels(tmp_path):
    foa = write_official(tmp_path / "repo" / "visage_ytambigen", channels=4)
    mono = write_official(tmp_path / "repo" / "visage_vggsound", channels=1)
    assert not is_official_visage(tmp_path / "repo")
    assert len(find_official_folders(tmp_path / "repo")) == 2
    pipe = load_pretrained(tmp_path / "repo", **OPTIONS)
    check_converted(pipe.network, foa, 4)
    network = load_pretrained(tmp_path / "repo", channels=1, config_overrides={"codec": "dac_synthetic"})
    assert isinstance(network, ViSAGe) and not network.training
    assert network.config.num_channels == 1 and not network.config.use_direction
    check_converted(network, mono, 1)


def test_bad_official_folders_raise_clear_errors(tmp_path):
    folder = tmp_path / "bad"
    state = write_official(folder)
    torch.save({**state, "model.encoder.unknown.weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="map to nothing"):
        load_pretrained(folder, **OPTIONS)
    (folder / "pytorch_model.bin").write_bytes(b"\x00broken")
    with pytest.raises(ValueError, match="cannot be read"):
        load_pretrained(folder, **OPTIONS)
