"""Initialise a ViSAudio network from MMAudio's released network weights.

MMAudio (Cheng et al., CVPR 2025); the key names are those of hkchengrex/MMAudio
``mmaudio/model/networks.py``.

Mapping (MMAudio key -> ViSAudio key):

- ``joint_blocks.i.latent_block`` -> ``joint_blocks.i.audio`` (shared by both ears);
  ``joint_blocks.i.clip_block`` -> ``joint_blocks.i.visual``;
- ``fused_blocks.i`` -> ``branches.{0,1}.blocks.i`` and ``final_layer`` -> ``branches.{0,1}.final``
  (cloned into both ears' branches);
- ``joint_blocks.i.text_block`` -> ``joint_blocks.i.text``; ``text_input_proj``/``text_cond_proj`` ->
  ``conditioning.text_proj``/``text_mlp``/``text_cond_proj``; ``empty_string_feat`` ->
  ``conditioning.empty_text`` (the frozen empty-prompt features);
- input projections, ``clip_cond_proj``, ``global_cond_mlp``, ``t_embed``, ``sync_pos_emb``, the learnable
  null features, and (optionally) ``latent_mean``/``latent_std``;
- for a target without a text stream (``text_len=0``) the empty prompt's per-sample effect is folded into
  ``conditioning.global_bias`` (``text_cond_proj(mean(text_input_proj(empty_string)))``) and the text
  blocks are dropped (not MMAudio-exact: the text tokens' keys/values are missing from the attention).

:func:`config_from_mmaudio` gives the config under which the converted network reproduces MMAudio's
velocity for each ear when both ears carry the same latent: text stream kept, ``ear_attention=
"joint_offset"`` (audio keys offset by ``-log 2``), ``final_cond="global"`` (MMAudio's #55 behaviour) and
MMAudio's sync resize (``sync_align="index"``); the spatial (PE) path starts at exactly zero.

Within a stream block the QKV rows are reordered: MMAudio lays them out as ``(head, channel, q|k|v)``,
ViSAudio as ``(q|k|v, head, channel)``. A key is copied only where the shapes agree; everything else is
listed in the :class:`ConversionReport`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from spatialgen.models.visaudio.config import VISAUDIO_CONFIGS, ViSAudioConfig
from spatialgen.models.visaudio.network import ViSAudioNet

__all__ = [
    "ConversionReport",
    "config_from_mmaudio",
    "convert_mmaudio_state_dict",
    "load_mmaudio_state",
    "load_mmaudio_weights",
]

_STREAM_PARTS = {
    "attn.qkv.weight": "qkv.weight",
    "attn.qkv.bias": "qkv.bias",
    "attn.q_norm.weight": "q_norm.weight",
    "attn.k_norm.weight": "k_norm.weight",
    "adaLN_modulation.1.weight": "adaln.linear.weight",
    "adaLN_modulation.1.bias": "adaln.linear.bias",
    "linear1.weight": "proj.weight",
    "linear1.bias": "proj.bias",
    "ffn.w1.weight": "mlp.w1.weight",
    "ffn.w2.weight": "mlp.w2.weight",
    "ffn.w3.weight": "mlp.w3.weight",
}
_FOLDED = ("text_input_proj.", "text_cond_proj.", "empty_string_feat")


@dataclass
class ConversionReport:
    """What :func:`convert_mmaudio_state_dict` did.

    Attributes:
        mapped: ``(mmaudio_key, visaudio_key)`` pairs copied (one MMAudio key may fill both branches).
        skipped: MMAudio keys not copied, with the reason.
        missing: ViSAudio keys left at their fresh initialisation (new parts or shape mismatches).
        folded: MMAudio keys used to compute ``conditioning.global_bias`` (empty-text condition).
        inexact: target-config choices under which the converted network does not reproduce MMAudio's
            velocity per ear when L = R (empty: exact; see :func:`config_from_mmaudio`).
    """

    mapped: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    inexact: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for logs."""
        reasons: dict[str, int] = {}
        for why in self.skipped.values():
            reasons[why] = reasons.get(why, 0) + 1
        parts = [
            f"mapped {len(self.mapped)} tensors",
            f"folded {len(self.folded)} text tensors into global_bias",
        ]
        parts += [f"skipped {n} ({why})" for why, n in sorted(reasons.items())]
        parts.append(
            f"left at init: {len(self.missing)} ({', '.join(sorted({_group(k) for k in self.missing}))})"
        )
        parts.append("MMAudio-exact" if not self.inexact else "not MMAudio-exact: " + ", ".join(self.inexact))
        return "MMAudio -> ViSAudio: " + "; ".join(parts)


def _group(key: str) -> str:
    return re.sub(r"\.\d+\.", ".*.", key).rsplit(".", 1)[0]


def _qkv_rows(w: Tensor, num_heads: int) -> Tensor:
    """MMAudio ``(head, channel, j)`` row order -> ``(j, head, channel)``."""
    rest = w.shape[1:]
    return w.reshape(num_heads, -1, 3, *rest).movedim(2, 0).reshape(w.shape)


def _unwrap(state: dict) -> dict[str, Tensor]:
    """Accept a bare state dict or a checkpoint wrapping one; drop DDP's ``module.`` prefix."""
    for key in ("weights", "state_dict", "model", "ema"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def _is_v2(state: dict[str, Tensor]) -> bool:
    return "clip_input_proj.2.w1.weight" in state


def config_from_mmaudio(state: dict[str, Tensor], **overrides) -> ViSAudioConfig:
    """The ViSAudio config whose shared parts match an MMAudio state dict (sizes, depths, v1/v2, rates).

    Everything that makes the converted network reproduce MMAudio's velocity per ear when L = R is set:
    MMAudio's sync resize (``sync_align="index"``), the text stream (``text_dim``/``text_len`` from
    ``empty_string_feat``), ``ear_attention="joint_offset"`` and ``final_cond="global"``. Override any of
    them (e.g. ``final_cond="local"`` for the #55 fix) at the cost of that exactness.
    """
    state = _unwrap(state)
    try:
        latent_dim, hidden = state["audio_input_proj.0.weight"].shape[:2][::-1]
    except KeyError:
        raise ValueError("not an MMAudio state dict: 'audio_input_proj.0.weight' is missing") from None
    joint = len({k.split(".")[1] for k in state if k.startswith("joint_blocks.")})
    fused = len({k.split(".")[1] for k in state if k.startswith("fused_blocks.")})
    v2 = _is_v2(state)
    base = VISAUDIO_CONFIGS["S_44k" if latent_dim == 40 else "S_16k"]
    cfg = base.replace(
        latent_dim=int(latent_dim),
        hidden_dim=int(hidden),
        num_heads=int(hidden) // 64,
        joint_depth=joint,
        branch_depth=fused,
        clip_dim=int(state["clip_input_proj.0.weight"].shape[1]),
        sync_dim=int(state["sync_input_proj.0.weight"].shape[1]),
        sync_align="index",
        input_act="silu" if v2 else "selu",
        time_freq_dim=int(state["t_embed.mlp.0.weight"].shape[1]),
        time_max_period=1.0 if v2 else 10000.0,
        text_dim=int(state["text_input_proj.0.weight"].shape[1])
        if "text_input_proj.0.weight" in state
        else 1024,
        text_len=int(state["empty_string_feat"].shape[0]) if "empty_string_feat" in state else 77,
        ear_attention="joint_offset",
        final_cond="global",
    )
    return cfg.replace(**overrides)


def _empty_text_condition(state: dict[str, Tensor], v2: bool) -> Tensor:
    """``text_cond_proj(mean(text_input_proj(empty_string_feat)))`` in float64: MMAudio's text_c for ''."""
    g = {k: v.to(torch.float64) for k, v in state.items() if k.startswith(_FOLDED)}
    x = F.linear(g["empty_string_feat"], g["text_input_proj.0.weight"], g["text_input_proj.0.bias"])
    if v2:
        x = F.silu(x)
    i = 2 if v2 else 1
    w1, w2, w3 = (g[f"text_input_proj.{i}.w{j}.weight"] for j in (1, 2, 3))
    x = F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    return F.linear(x.mean(dim=0), g["text_cond_proj.weight"], g["text_cond_proj.bias"])


def _targets(key: str, v2: bool, branches: int = 2) -> list[str]:
    """ViSAudio keys an MMAudio key maps to (empty: no counterpart)."""
    m = re.fullmatch(r"joint_blocks\.(\d+)\.(latent|clip|text)_block\.(.+)", key)
    if m:
        i, stream, part = m.groups()
        if part not in _STREAM_PARTS:
            return []
        name = {"latent": "audio", "clip": "visual", "text": "text"}[stream]
        return [f"joint_blocks.{i}.{name}.{_STREAM_PARTS[part]}"]
    m = re.fullmatch(r"fused_blocks\.(\d+)\.(.+)", key)
    if m:
        i, part = m.groups()
        return (
            [f"branches.{b}.blocks.{i}.{_STREAM_PARTS[part]}" for b in range(branches)]
            if part in _STREAM_PARTS
            else []
        )
    m = re.fullmatch(r"final_layer\.(adaLN_modulation\.1|conv)\.(weight|bias)", key)
    if m:
        part = "adaln.linear" if m.group(1).startswith("adaLN") else "conv"
        return [f"branches.{b}.final.{part}.{m.group(2)}" for b in range(branches)]
    clip_mlp = 2 if v2 else 1
    simple = {
        "text_input_proj.0.": "conditioning.text_proj.",
        f"text_input_proj.{clip_mlp}.": "conditioning.text_mlp.",
        "text_cond_proj.": "conditioning.text_cond_proj.",
        "audio_input_proj.0.": "audio_conv.",
        "audio_input_proj.2.": "audio_mlp.",
        "clip_input_proj.0.": "conditioning.clip_proj.",
        f"clip_input_proj.{clip_mlp}.": "conditioning.clip_mlp.",
        "sync_input_proj.0.": "conditioning.sync_conv.",
        "sync_input_proj.2.": "conditioning.sync_mlp.",
        "clip_cond_proj.": "conditioning.clip_cond_proj.",
        "global_cond_mlp.": "conditioning.global_mlp.",
        "t_embed.mlp.": "conditioning.t_embed.mlp.",
    }
    for src, dst in simple.items():
        if key.startswith(src):
            return [dst + key[len(src) :]]
    named = {
        "sync_pos_emb": "conditioning.sync_pos",
        "empty_clip_feat": "conditioning.empty_clip",
        "empty_string_feat": "conditioning.empty_text",
        "empty_sync_feat": "conditioning.empty_sync",
        "latent_mean": "normalizer.mean",
        "latent_std": "normalizer.std",
    }
    return [named[key]] if key in named else []


def convert_mmaudio_state_dict(
    state: dict, config: ViSAudioConfig, *, load_latent_stats: bool = True
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Convert an MMAudio network state dict into (a partial) ViSAudio state dict for ``config``.

    Args:
        state: MMAudio ``state_dict()`` (or a checkpoint dict wrapping it under ``weights``/``state_dict``).
        config: the target ViSAudio config (see :func:`config_from_mmaudio`).
        load_latent_stats: copy ``latent_mean``/``latent_std`` (mono VGGSound statistics; refit them on
            binaural latents before training when possible).

    Returns:
        ``(converted, report)``; load with ``net.load_state_dict(converted, strict=False)``.
    """
    state = _unwrap(state)
    v2 = _is_v2(state)
    with torch.device("meta"):
        target = {k: v.shape for k, v in ViSAudioNet(config).state_dict().items()}
    report = ConversionReport()
    out: dict[str, Tensor] = {}
    fold_text = "conditioning.global_bias" in target  # target without a text stream
    for key, value in state.items():
        if fold_text and key.startswith(_FOLDED):
            continue
        if key in ("latent_mean", "latent_std") and not load_latent_stats:
            report.skipped[key] = "latent statistics not requested"
            continue
        dsts = _targets(key, v2)
        if not dsts:
            report.skipped[key] = "no counterpart"
            continue
        v = value.detach()
        if key.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            v = _qkv_rows(v, config.num_heads)
        for dst in dsts:
            if dst not in target:
                report.skipped[key] = (
                    "no text stream in this config (text_len=0)"
                    if ".text." in dst
                    else f"target {dst} does not exist in this config"
                )
                continue
            vv = (
                v.reshape(target[dst])
                if v.numel() == target[dst].numel() and v.ndim != len(target[dst])
                else v
            )
            if vv.shape != target[dst]:
                report.skipped[key] = f"shape {tuple(v.shape)} != {tuple(target[dst])}"
                continue
            out[dst] = vv.clone()
            report.mapped.append((key, dst))
    folded = [k for k in state if k.startswith(_FOLDED)] if fold_text else []
    if folded:
        try:
            bias = _empty_text_condition(state, v2)
        except KeyError as e:
            report.skipped.update(dict.fromkeys(folded, f"incomplete text stream ({e.args[0]} missing)"))
        else:
            if bias.shape == target["conditioning.global_bias"]:
                out["conditioning.global_bias"] = bias.to(state["clip_cond_proj.weight"].dtype)
                report.folded = folded
            else:
                report.skipped.update(dict.fromkeys(folded, "text width differs from hidden_dim"))
    report.missing = sorted(k for k in target if k not in out)
    report.inexact = _inexact(config)
    return out, report


def _inexact(config: ViSAudioConfig) -> list[str]:
    """The config choices that break MMAudio-exactness of a converted network."""
    checks = (
        (config.text_len == 0, "text_len=0 (MMAudio's text tokens are in the joint attention)"),
        (config.ear_attention == "joint", "ear_attention='joint' (audio keys count twice when L = R)"),
        (
            config.final_cond == "local",
            "final_cond='local' (MMAudio's final layer takes the global condition)",
        ),
        (config.sync_align == "time", "sync_align='time' (MMAudio resizes the sync tokens by index)"),
    )
    return [why for bad, why in checks if bad]


def load_mmaudio_state(source: str | os.PathLike) -> dict[str, Tensor]:
    """Read MMAudio weights from a local ``.pth``/``.safetensors`` file, an ``hf://`` spec or a URL."""
    from spatialgen.weights import resolve_weights

    path = Path(resolve_weights(source, what="MMAudio network weights"))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected an MMAudio state dict, got {type(obj).__name__}")
    return _unwrap(obj)


def load_mmaudio_weights(
    net: ViSAudioNet, source: str | os.PathLike | dict, *, load_latent_stats: bool = True
) -> ConversionReport:
    """Copy MMAudio weights into ``net`` where shapes agree (in place) and return the report.

    ``source`` is a state dict, a local file, an ``hf://owner/repo/file`` spec (e.g.
    ``hf://hkchengrex/MMAudio/weights/mmaudio_small_16k.pth``) or a URL.
    """
    state = source if isinstance(source, dict) else load_mmaudio_state(source)
    converted, report = convert_mmaudio_state_dict(state, net.config, load_latent_stats=load_latent_stats)
    net.load_state_dict(converted, strict=False)
    return report
