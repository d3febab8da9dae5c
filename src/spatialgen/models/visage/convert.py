"""Load the released ViSAGe checkpoints (HF ``transformers`` BART layout, jaeyeonkim99/visage) exactly.

The official state dict has per-stream ``model.decoder.embed_dac.{k}`` tables and ``dac_heads.{k}``
linears (stacked here into one tensor each), BART names for the layers, an optional ``module.`` prefix
(accelerate DDP checkpoints) and one dead tensor, ``model.encoder.embed_spatial.weight`` (created but
never used by the official code), which is dropped. Any other key that maps nowhere is an error.

Camera direction frame: the official direction MLP was trained on image-frame unit vectors (x right,
y down, z forward; ``data/preprocess_ambi.py`` in jaeyeonkim99/visage builds them as
``R_y(2a - 179) R_x(89 - 2e) z``), while this package feeds AmbiX-frame vectors (x front, y left, z up).
The two are related by ``d_image = M d_ambix`` with ``M`` = :data:`AMBIX_TO_IMAGE`; the converter folds
``M`` into the MLP's first layer (``W' = W M``) and moves the learned null direction into the AmbiX frame
(``n' = Mᵀ n``), so ``W' d_ambix = W d_image`` exactly and a front-facing camera reads as front.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spatialgen.models.visage.config import ViSAGeConfig
from spatialgen.models.visage.model import ViSAGe

__all__ = ["config_from_official", "convert_official", "load_official"]

#: Official tensors that exist in the release but do nothing in the network.
DEAD_KEYS = ("model.encoder.embed_spatial.weight",)

_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^null_embedding$", "null_visual"),
    (r"^dir_null_embedding$", "null_direction"),
    (r"^energy_null_embedding$", "null_energy"),
    (r"^model\.encoder\.(bos|eos)$", r"encoder.\1"),
    (r"^model\.encoder\.clip_projection\.(weight|bias)$", r"encoder.visual_proj.\1"),
    (r"^model\.encoder\.embed_positions\.weight$", "encoder.positions.weight"),
    (r"^model\.encoder\.direction_embedding\.([02])\.(weight|bias)$", r"encoder.direction_mlp.\1.\2"),
    (r"^model\.encoder\.energy_map_projection\.([02])\.(weight|bias)$", r"encoder.energy_mlp.\1.\2"),
    (r"^model\.(encoder|decoder)\.layernorm_embedding\.(weight|bias)$", r"\1.norm_embed.\2"),
    (r"^model\.decoder\.bos$", "decoder.bos"),
    (r"^model\.decoder\.embed_positions\.weight$", "decoder.positions.weight"),
    (
        r"^model\.(encoder|decoder)\.layers\.(\d+)\.self_attn\.([qkv]|out)_proj\.(weight|bias)$",
        r"\1.layers.\2.self_attn.\3_proj.\4",
    ),
    (
        r"^model\.decoder\.layers\.(\d+)\.encoder_attn\.([qkv]|out)_proj\.(weight|bias)$",
        r"decoder.layers.\1.cross_attn.\2_proj.\3",
    ),
    (
        r"^model\.(encoder|decoder)\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$",
        r"\1.layers.\2.self_attn_norm.\3",
    ),
    (
        r"^model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.(weight|bias)$",
        r"decoder.layers.\1.cross_attn_norm.\2",
    ),
    (r"^model\.(encoder|decoder)\.layers\.(\d+)\.(fc1|fc2)\.(weight|bias)$", r"\1.layers.\2.ffn.\3.\4"),
    (
        r"^model\.(encoder|decoder)\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$",
        r"\1.layers.\2.ffn_norm.\3",
    ),
)
#: ``d_image = AMBIX_TO_IMAGE @ d_ambix``: image (right, down, forward) = (−y, −z, x) of AmbiX (front, left, up).
AMBIX_TO_IMAGE = torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
_DIRECTION_IN = "encoder.direction_mlp.0.weight"
_EMBED = re.compile(r"^model\.decoder\.embed_dac\.(\d+)\.weight$")
_HEAD = re.compile(r"^dac_heads\.(\d+)\.(weight|bias)$")


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _stack(parts: dict[int, Tensor], name: str) -> Tensor:
    if sorted(parts) != list(range(len(parts))):
        raise ValueError(f"official checkpoint: {name} indices are not 0..{len(parts) - 1}: {sorted(parts)}")
    return torch.stack([parts[i] for i in range(len(parts))])


def convert_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename/stack an official ViSAGe state dict into this package's layout (no shape checks here).

    Raises:
        ValueError: listing every key that maps to nothing.
    """
    state = _strip_prefix(state_dict)
    out: dict[str, Tensor] = {}
    embeds: dict[int, Tensor] = {}
    head_w: dict[int, Tensor] = {}
    head_b: dict[int, Tensor] = {}
    unmapped = []
    for key, value in state.items():
        if key in DEAD_KEYS:
            continue
        if m := _EMBED.match(key):
            embeds[int(m.group(1))] = value
            continue
        if m := _HEAD.match(key):
            (head_w if m.group(2) == "weight" else head_b)[int(m.group(1))] = value
            continue
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(f"official checkpoint: {len(unmapped)} keys map to nothing: {sorted(unmapped)}")
    _to_ambix_frame(out)
    if embeds:
        out["decoder.token_embedding"] = _stack(embeds, "model.decoder.embed_dac")
    if head_w:
        out["heads.weight"] = _stack(head_w, "dac_heads.*.weight")
    if head_b:
        out["heads.bias"] = _stack(head_b, "dac_heads.*.bias")
    return out


def _to_ambix_frame(out: dict[str, Tensor]) -> None:
    """Re-express the direction MLP's input (and its null) in the AmbiX frame (see module doc)."""
    m = AMBIX_TO_IMAGE
    if _DIRECTION_IN in out:
        w = out[_DIRECTION_IN]
        if w.shape[-1] != 3:
            raise ValueError(
                f"official checkpoint: direction_embedding.0.weight must be [d, 3], got {tuple(w.shape)}"
            )
        out[_DIRECTION_IN] = (w.to(torch.float64) @ m).to(w.dtype)  # exact: M permutes and negates columns
    if "null_direction" in out:
        n = out["null_direction"]
        out["null_direction"] = (m.T @ n.to(torch.float64)).to(n.dtype)


def config_from_official(
    official: Mapping[str, Any], state_dict: Mapping[str, Tensor] | None = None
) -> ViSAGeConfig:
    """Our config from an official ``config.json`` (``VisageConfig`` fields of ``modeling/visage_mono.py``).

    With ``state_dict`` the channel count and the presence of the energy/direction inputs are read
    from the weights (the mono stage-1 model has 9 streams and neither module).
    """
    defaults = ViSAGeConfig()
    get = official.get
    q = int(get("num_rvq", defaults.num_codebooks))
    fields: dict[str, Any] = {
        "d_model": get("d_model", defaults.d_model),
        "encoder_layers": get("encoder_layers", defaults.encoder_layers),
        "decoder_layers": get("decoder_layers", defaults.decoder_layers),
        "encoder_heads": get("encoder_attention_heads", defaults.encoder_heads),
        "decoder_heads": get("decoder_attention_heads", defaults.decoder_heads),
        "encoder_ffn_dim": get("encoder_ffn_dim", defaults.encoder_ffn_dim),
        "decoder_ffn_dim": get("decoder_ffn_dim", defaults.decoder_ffn_dim),
        "dropout": get("dropout", defaults.dropout),
        "attention_dropout": get("attention_dropout", defaults.attention_dropout),
        "activation_dropout": get("activation_dropout", defaults.activation_dropout),
        "init_std": get("init_std", defaults.init_std),
        "d_visual": get("d_clip", defaults.d_visual),
        "num_codebooks": q,
        "codebook_size": get("dac_vocab_size", defaults.codebook_size),
        "max_source_length": get("max_source_length", defaults.max_source_length),
        "max_target_length": get("max_target_length", defaults.max_target_length),
        "codec_sample_rate": get("dac_sample_rate", defaults.codec_sample_rate),
        "visual_fps": float(get("clip_frame_rate", defaults.visual_fps)),
    }
    # The official clip length is fixed by the source length (20 frames / 4 fps = 5 s); the codec by its rate.
    fields["clip_seconds"] = fields["max_source_length"] / fields["visual_fps"]
    codec = {44100: ("dac_44khz", 512), 24000: ("dac_24khz", 320), 16000: ("dac_16khz", 320)}
    if fields["codec_sample_rate"] in codec:
        fields["codec"], fields["codec_hop_length"] = codec[fields["codec_sample_rate"]]
    if get("activation_function", "gelu") != "gelu":
        raise ValueError(
            f"official config: activation_function {get('activation_function')!r} is not supported"
        )
    if get("dac_pad_token_id", fields["codebook_size"]) != fields["codebook_size"]:
        raise ValueError("official config: dac_pad_token_id must equal dac_vocab_size")
    if state_dict is not None:
        state = _strip_prefix(state_dict)
        streams = sum(1 for k in state if _EMBED.match(k))
        if streams % q:
            raise ValueError(
                f"official checkpoint: {streams} embed_dac tables is not a multiple of num_rvq={q}"
            )
        fields["num_channels"] = streams // q
        fields["use_direction"] = "model.encoder.direction_embedding.0.weight" in state
        energy = state.get("model.encoder.energy_map_projection.0.weight")
        fields["energy_map_dim"] = 0 if energy is None else int(energy.shape[1])
    return ViSAGeConfig(**fields)


def _read_state(path: Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    official_cfg = None
    if path.is_dir():
        if (path / "config.json").is_file():
            official_cfg = json.loads((path / "config.json").read_text())
        for name in ("model.safetensors", "pytorch_model.bin", "model.bin"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FileNotFoundError(
                f"{path}: no model.safetensors or pytorch_model.bin; download the release "
                "(huggingface.co/jaeyeonkim99/visage) into this folder"
            )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: official ViSAGe checkpoint not found; download huggingface.co/jaeyeonkim99/visage "
            "and pass its folder or its pytorch_model.bin"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path)), official_cfg
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state, official_cfg


def load_official(
    source: str | os.PathLike | Mapping[str, Tensor],
    config: ViSAGeConfig | None = None,
) -> ViSAGe:
    """A :class:`ViSAGe` holding an official checkpoint's weights, loaded strictly.

    Args:
        source: a released folder (``config.json`` + ``pytorch_model.bin``/``model.safetensors``), a
            weights file, or an already loaded state dict (``module.`` prefix allowed).
        config: our config; default: from the folder's ``config.json`` and the weights, else the
            released FOA config with the channel count and inputs read from the weights.

    Raises:
        ValueError: unmapped keys, missing keys or shape mismatches, each listed.
    """
    if isinstance(source, Mapping):
        raw, official_cfg = dict(source), None
    else:
        raw, official_cfg = _read_state(Path(source))
    if config is None:
        config = config_from_official(official_cfg or {}, raw)
    converted = convert_official(raw)
    model = ViSAGe(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"official checkpoint does not fit the config: missing {missing}, unexpected {unexpected}"
        )
    bad = [
        f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in converted.items()
        if v.shape != expected[k].shape
    ]
    if bad:
        raise ValueError(f"official checkpoint shapes do not match the config: {bad}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in converted.items()}, strict=True)
    return model
