"""Network weights from a training run or an export: the reader ``init_from_mono`` (ViSAGe stage 2) uses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from spatialgen.training.ema import ema_state_dict_from_checkpoint

__all__ = ["load_network_state"]


def load_network_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """Network weights (keys relative to the network) from a Lightning ``.ckpt`` (EMA weights when the
    checkpoint has them), a ``.safetensors``/``.pt`` state dict, or an export folder with
    ``model.safetensors`` (pipeline keys ``network.*`` are unprefixed; other parts dropped)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise FileNotFoundError(
            f"init_from_mono: {p} does not exist; give a .ckpt, .safetensors or export folder"
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping[str, Tensor] = load_file(str(p))
    else:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
        if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
            try:
                return ema_state_dict_from_checkpoint(ckpt)
            except ValueError:  # trained without the EMA callback
                state = ckpt["state_dict"]
        else:
            state = ckpt
    if any(k.startswith("network.") for k in state):
        state = {k[len("network.") :]: v for k, v in state.items() if k.startswith("network.")}
    return dict(state)
