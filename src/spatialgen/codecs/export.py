"""Export a trained DAC codec (a ``CodecModule`` checkpoint) to the ``save_dac_codec`` folder format.

The result (``model.safetensors`` + ``config.json``) loads with
``create_codec("dac_synthetic", pretrained=<dir>)``. This module needs neither Lightning nor the
training code: a checkpoint is a plain dict, and :class:`~spatialgen.training.codec.CodecModule` stores
the ``dac.DAC`` constructor kwargs in it under :data:`CHECKPOINT_KEY`. The EMA weights (the ``EMA``
callback's state) are exported when the checkpoint has them.

Command line::

    python -m spatialgen.codecs.export runs/codec_synthetic/checkpoints/last.ckpt --out codecs/dac_synthetic
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from spatialgen.codecs.dac_codec import DACCodec, save_dac_codec

__all__ = ["CHECKPOINT_KEY", "export_dac_checkpoint", "export_dac_state", "main"]

#: Checkpoint key holding ``{"dac_kwargs": ..., "n_quantizers": ..., "attribute": ...}``.
CHECKPOINT_KEY = "dac_codec"


def export_dac_state(
    state_dict: Mapping[str, torch.Tensor],
    dac_kwargs: Mapping[str, Any],
    directory: str | os.PathLike,
    *,
    n_quantizers: int | None = None,
) -> Path:
    """Write a ``DACCodec`` state dict (keys ``net.…``) as ``model.safetensors`` + ``config.json``.

    The weights are loaded strictly into a codec built from ``dac_kwargs`` first, so a mismatch fails
    here and not at load time. The weight-norm layout is kept (the loader detects it), so the exported
    codec reproduces the trained network's codes exactly.
    """
    codec = DACCodec(dac_kwargs, n_quantizers=n_quantizers, frozen=False, remove_weight_norm=False)
    try:
        codec.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"codec weights do not match dac_kwargs {dict(dac_kwargs)} ({first})") from exc
    return save_dac_codec(codec, directory)


def _ema_weights(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.split("{")[0] == "EMA" and isinstance(state, Mapping) and "ema" in state:
            return dict(state["ema"])
    return None


def export_dac_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    directory: str | os.PathLike,
    *,
    use_ema: bool = True,
) -> Path:
    """Export the codec of a ``CodecModule`` checkpoint (path or loaded dict) into ``directory``.

    Args:
        checkpoint: a Lightning ``.ckpt`` path or the loaded dict.
        directory: output folder (created).
        use_ema: export the EMA weights when the checkpoint has an ``EMA`` callback state.
    """
    if isinstance(checkpoint, Mapping):
        ckpt = checkpoint
        where = "checkpoint"
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        # Lightning checkpoints hold hyper-parameters with arbitrary objects: a trusted local file only.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        where = str(path)
    info = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(info, Mapping) or "dac_kwargs" not in info:
        raise ValueError(
            f"{where}: no {CHECKPOINT_KEY!r} entry; it was not written by spatialgen.training.CodecModule"
        )
    prefix = f"{info.get('attribute', 'network')}."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if use_ema:
        ema = _ema_weights(ckpt)
        if ema is not None:
            state.update(ema)
    return export_dac_state(state, info["dac_kwargs"], directory, n_quantizers=info.get("n_quantizers"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spatialgen.codecs.export CKPT --out DIR [--no-ema]``."""
    parser = argparse.ArgumentParser(
        prog="python -m spatialgen.codecs.export",
        description="Export a CodecModule checkpoint to a codec folder for create_codec(pretrained=DIR).",
    )
    parser.add_argument("checkpoint", help="Lightning .ckpt written by a CodecModule run")
    parser.add_argument("--out", required=True, help="output folder (model.safetensors + config.json)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    args = parser.parse_args(argv)
    try:
        out = export_dac_checkpoint(args.checkpoint, args.out, use_ema=not args.no_ema)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported codec to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
