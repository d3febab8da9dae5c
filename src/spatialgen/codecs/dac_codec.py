"""Descript Audio Codec (DAC) wrapped as a discrete :class:`~spatialgen.codecs.base.AudioCodec`.

The network is ``dac.DAC`` (descript-audio-codec 1.0), built from constructor kwargs. Official configs
(``conf/final/*.yml`` of descript-audio-codec): all use encoder_dim 64, decoder_dim 1536, codebook 1024 x
dim 8, and

=========== ============ ================ ====== ========== =========
entry       sample rate  encoder_rates    hop    frame rate codebooks
=========== ============ ================ ====== ========== =========
dac_44khz   44100        [2, 4, 8, 8]     512    86.13 Hz   9
dac_24khz   24000        [2, 4, 5, 8]     320    75 Hz      32
dac_16khz   16000        [2, 4, 5, 8]     320    50 Hz      12
=========== ============ ================ ====== ========== =========

ViSAGe codes each FOA channel with the 44.1 kHz model and Q = 9. The stride-5 transposed convs of the
24/16 kHz decoders lose one sample each, so those decode ``F * 320 - 8`` samples (``num_samples``).

Weights: ``pretrained=True`` resolves the official release file into the cache that the dac package
itself uses (``~/.cache/descript/dac/weights_{model_type}_{bitrate}_{tag}.pth``), so an existing dac
cache is reused and a file placed there by hand works offline. ``pretrained=<path|hf://...>`` loads
an official-format ``.pth`` (``{"state_dict", "metadata": {"kwargs"}}``, read with
``weights_only=True``) or our format (a folder with ``model.safetensors`` + ``config.json`` holding the
``dac.DAC`` constructor kwargs), always with ``strict=True``. ``dac.DAC.load`` is not used: it
unpickles without ``weights_only`` and loads with ``strict=False``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spatialgen.codecs.base import DiscreteAudioCodec
from spatialgen.codecs.registry import register_codec
from spatialgen.io.audio import atomic_output
from spatialgen.weights import resolve_weights, sibling_spec

__all__ = [
    "DAC_CONFIGS",
    "DACCodec",
    "dac_weights_cache_path",
    "dac_weights_url",
    "load_dac_codec",
    "save_dac_codec",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_OFFICIAL = {"encoder_dim": 64, "decoder_dim": 1536, "codebook_size": 1024, "codebook_dim": 8}

#: ``dac.DAC`` constructor kwargs of every registered DAC entry.
DAC_CONFIGS: dict[str, dict[str, Any]] = {
    "dac_44khz": {
        **_OFFICIAL,
        "sample_rate": 44100,
        "encoder_rates": [2, 4, 8, 8],
        "decoder_rates": [8, 8, 4, 2],
        "n_codebooks": 9,
    },
    "dac_24khz": {
        **_OFFICIAL,
        "sample_rate": 24000,
        "encoder_rates": [2, 4, 5, 8],
        "decoder_rates": [8, 5, 4, 2],
        "n_codebooks": 32,
    },
    "dac_16khz": {
        **_OFFICIAL,
        "sample_rate": 16000,
        "encoder_rates": [2, 4, 5, 8],
        "decoder_rates": [8, 5, 4, 2],
        "n_codebooks": 12,
    },
    # 40.6 K parameters, hop 8: for unit tests.
    "dac_tiny": {
        "sample_rate": 16000,
        "encoder_dim": 8,
        "encoder_rates": [2, 4],
        "decoder_dim": 32,
        "decoder_rates": [4, 2],
        "n_codebooks": 4,
        "codebook_size": 64,
        "codebook_dim": 8,
    },
    # The DAC architecture at a size the project's recipe trains on the synthetic dataset (hop 320, 50 Hz).
    "dac_synthetic": {
        "sample_rate": 16000,
        "encoder_dim": 16,
        "encoder_rates": [2, 4, 5, 8],
        "decoder_dim": 256,
        "decoder_rates": [8, 5, 4, 2],
        "n_codebooks": 4,
        "codebook_size": 1024,
        "codebook_dim": 8,
    },
}

_DAC_KWARGS = {
    "sample_rate",
    "encoder_dim",
    "encoder_rates",
    "latent_dim",
    "decoder_dim",
    "decoder_rates",
    "n_codebooks",
    "codebook_size",
    "codebook_dim",
    "quantizer_dropout",
}

# Official release files: entry -> (model_type, bitrate, tag), as in dac.utils (latest tags).
_OFFICIAL_WEIGHTS = {
    "dac_44khz": ("44khz", "8kbps", "0.0.1"),
    "dac_24khz": ("24khz", "8kbps", "0.0.4"),
    "dac_16khz": ("16khz", "8kbps", "0.0.5"),
}
_URL_FILES = {"44khz": "weights.pth", "24khz": "weights_24khz.pth", "16khz": "weights_16khz.pth"}
_RELEASES = "https://github.com/descriptinc/descript-audio-codec/releases/download"


def dac_weights_url(model_type: str, bitrate: str = "8kbps", tag: str = "latest") -> str:
    """Official download URL of a DAC release file (``model_type`` in 44khz/24khz/16khz)."""
    for mt, br, latest in _OFFICIAL_WEIGHTS.values():
        if mt == model_type and br == bitrate:
            return f"{_RELEASES}/{latest if tag == 'latest' else tag}/{_URL_FILES[mt]}"
    raise ValueError(f"no official DAC weights for model_type={model_type!r}, bitrate={bitrate!r}")


def dac_weights_cache_path(model_type: str, bitrate: str = "8kbps", tag: str = "0.0.1") -> Path:
    """Where the dac package caches a release file: ``~/.cache/descript/dac/weights_{type}_{br}_{tag}.pth``."""
    return Path.home() / ".cache" / "descript" / "dac" / f"weights_{model_type}_{bitrate}_{tag}.pth"


def _import_dac():
    try:
        with warnings.catch_warnings():
            # dac 1.0 decorates with torch.jit.script and uses the old weight_norm: FutureWarnings at import.
            warnings.simplefilter("ignore", FutureWarning)
            import dac
    except ImportError as exc:
        raise ImportError(
            "DAC codecs need descript-audio-codec: pip install 'spatialgen[dac]' (or descript-audio-codec)"
        ) from exc
    return dac


def _build_dac(kwargs: Mapping[str, Any]) -> nn.Module:
    dac = _import_dac()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dac.DAC(**dict(kwargs))


def _has_weight_norm(module: nn.Module) -> bool:
    return any(hasattr(m, "weight_g") for m in module.modules())


class DACCodec(DiscreteAudioCodec):
    """A ``dac.DAC`` network as a per-channel discrete codec.

    Args:
        dac_kwargs: ``dac.DAC`` constructor kwargs (see :data:`DAC_CONFIGS`).
        n_quantizers: codebooks to emit (Q); None uses all ``n_codebooks``.
        frozen: no gradients to the parameters and always eval mode (inference / feature extraction).
        remove_weight_norm: fold weight norm into plain weights (faster, deep-copyable); defaults to
            ``frozen``. Keep it for training the codec itself.
        model: an already built (and loaded) ``dac.DAC`` to wrap instead of building from kwargs.
    """

    def __init__(
        self,
        dac_kwargs: Mapping[str, Any],
        *,
        n_quantizers: int | None = None,
        frozen: bool = True,
        remove_weight_norm: bool | None = None,
        model: nn.Module | None = None,
    ) -> None:
        net = model if model is not None else _build_dac(dac_kwargs)
        n_q = net.n_codebooks if n_quantizers is None else int(n_quantizers)
        if not 1 <= n_q <= net.n_codebooks:
            raise ValueError(f"n_quantizers must be in [1, {net.n_codebooks}], got {n_quantizers}")
        super().__init__(
            sample_rate=int(net.sample_rate),
            hop_length=int(net.hop_length),
            latent_dim=int(net.latent_dim),
            num_codebooks=n_q,
            codebook_size=int(net.codebook_size),
            frozen=frozen,
        )
        self.dac_kwargs = _config_of(net)
        self.net = net
        if remove_weight_norm if remove_weight_norm is not None else frozen:
            self.remove_weight_norm()
        if frozen:
            self.freeze()

    def remove_weight_norm(self) -> DACCodec:
        """Fold every weight-normed conv into a plain weight (same outputs; needed for deepcopy/EMA)."""
        for m in self.net.modules():
            if hasattr(m, "weight_g"):
                torch.nn.utils.remove_weight_norm(m)
        return self

    @property
    def has_weight_norm(self) -> bool:
        """Whether the convs still carry weight-norm parametrisations (``weight_g``/``weight_v``)."""
        return _has_weight_norm(self.net)

    def num_samples(self, n_frames: int) -> int:
        """Samples the decoder returns for ``n_frames``: ``n_frames * hop`` minus 1 per stride-5 layer
        scaled by the later strides (8 for the 16/24 kHz configs, 0 for power-of-two strides)."""
        if n_frames < 0:
            raise ValueError(f"n_frames must be >= 0, got {n_frames}")
        if n_frames == 0:
            return 0
        n = n_frames
        for s in self.net.decoder_rates:  # ConvTranspose1d(kernel 2s, stride s, padding ceil(s/2))
            n = (n - 1) * s - 2 * math.ceil(s / 2) + 2 * s
        return n

    def extra_repr(self) -> str:
        return f"name={self.name!r}, n_quantizers={self.num_codebooks}, frozen={self.frozen}"

    def _analyze(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net.encoder(audio.unsqueeze(1))

    def _synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net.decoder(latents).squeeze(1)

    def _quantize(self, latents: torch.Tensor) -> torch.Tensor:
        rvq = self.net.quantizer
        if rvq.training:  # training mode applies quantizer dropout: codes must not be random
            rvq.eval()
            try:
                return rvq(latents, self.num_codebooks)[1]
            finally:
                rvq.train()
        return rvq(latents, self.num_codebooks)[1]

    def _dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net.quantizer.from_codes(codes)[0]


def _config_of(net: nn.Module) -> dict[str, Any]:
    """JSON-able ``dac.DAC`` constructor kwargs of a built network."""
    cd = net.codebook_dim
    return {
        "sample_rate": int(net.sample_rate),
        "encoder_dim": int(net.encoder_dim),
        "encoder_rates": [int(r) for r in net.encoder_rates],
        "latent_dim": int(net.latent_dim),
        "decoder_dim": int(net.decoder_dim),
        "decoder_rates": [int(r) for r in net.decoder_rates],
        "n_codebooks": int(net.n_codebooks),
        "codebook_size": int(net.codebook_size),
        "codebook_dim": [int(c) for c in cd] if isinstance(cd, list | tuple) else int(cd),
    }


# ------------------------------------------------------------------------------------------ save / load
def save_dac_codec(codec: DACCodec, directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (the ``dac.DAC`` kwargs) into ``directory``.

    The state dict keeps the network's current layout (with or without weight norm); the loader detects
    it. The codec name and Q are stored in the safetensors metadata.
    """
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in codec.net.state_dict().items()}
    meta = {"format": "dac", "codec": codec.name, "n_quantizers": str(codec.num_codebooks)}
    with atomic_output(out / WEIGHTS_NAME) as tmp:  # a crash never leaves a half-written weights file
        save_file(state, str(tmp), metadata=meta)
    (out / CONFIG_NAME).write_text(json.dumps(codec.dac_kwargs, indent=2, sort_keys=True) + "\n")
    return out


def _read_weights(spec: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """State dict, constructor kwargs and local path of an official ``.pth`` or our safetensors+json."""
    text = os.fspath(spec)
    local = None if text.startswith(("hf://", "http://", "https://")) else Path(text).expanduser()
    if local is not None and local.is_dir():
        text = str(local / WEIGHTS_NAME)
    if text.endswith(".safetensors"):
        from safetensors.torch import load_file

        weights = resolve_weights(text, what="DAC weights")
        config = resolve_weights(sibling_spec(text, CONFIG_NAME), what="DAC config")
        try:
            kwargs = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{config}: not a readable JSON config ({exc})") from exc
        return load_file(str(weights)), kwargs, weights
    path = resolve_weights(text, what="DAC weights")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise ValueError(
            f"{path}: not a DAC .pth weights file readable with weights_only=True ({exc})"
        ) from exc
    if not (isinstance(blob, dict) and "state_dict" in blob and "kwargs" in blob.get("metadata", {})):
        raise ValueError(
            f"{path}: expected the official DAC format {{'state_dict', 'metadata': {{'kwargs'}}}}"
        )
    kwargs = dict(blob["metadata"]["kwargs"])
    kwargs.pop("quantizer_dropout", None)  # training-only setting
    return blob["state_dict"], kwargs, path


def load_dac_codec(
    name: str,
    pretrained: bool | str | os.PathLike,
    *,
    n_quantizers: int | None = None,
    frozen: bool = True,
    remove_weight_norm: bool | None = None,
    **overrides: Any,
) -> DACCodec:
    """Build the DAC entry ``name`` (random init, official weights, or a local/Hub file) as a codec.

    Args:
        name: a key of :data:`DAC_CONFIGS`.
        pretrained: False (random init), True (official release weights; only the 44/24/16 kHz
            entries have them), or a weights spec (path, folder, ``hf://...``, URL).
        n_quantizers, frozen, remove_weight_norm: see :class:`DACCodec`.
        overrides: ``dac.DAC`` kwargs replacing the entry's defaults; with weights, they must agree
            with the file's kwargs.
    """
    unknown = sorted(set(overrides) - _DAC_KWARGS)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for codec {name!r}; valid: n_quantizers, frozen, "
            f"remove_weight_norm and the dac.DAC kwargs {', '.join(sorted(_DAC_KWARGS))}"
        )
    expected = copy.deepcopy({**DAC_CONFIGS[name], **overrides})  # dac.DAC keeps the lists it is given
    if pretrained is False or pretrained is None:
        codec = DACCodec(
            expected, n_quantizers=n_quantizers, frozen=frozen, remove_weight_norm=remove_weight_norm
        )
        codec.name = name
        return codec
    if pretrained is True:
        if name not in _OFFICIAL_WEIGHTS:
            raise ValueError(
                f"codec {name!r} has no official weights: pass pretrained=<path to model.safetensors "
                "folder or .pth> or pretrained=False"
            )
        mt, br, tag = _OFFICIAL_WEIGHTS[name]
        path = resolve_weights(
            dac_weights_url(mt, br, tag),
            cache_path=dac_weights_cache_path(mt, br, tag),
            what=f"official DAC {mt} {br} weights",
        )
        pretrained = path
    state, file_kwargs, path = _read_weights(pretrained)
    # The file defines the architecture; explicit overrides and the entry's sample rate must agree.
    checks = {"sample_rate": DAC_CONFIGS[name]["sample_rate"], **overrides}
    for key, want in checks.items():
        have = file_kwargs.get(key)
        if have is not None and have != want:
            raise ValueError(
                f"{path}: weights have {key}={have} but codec {name!r} was asked for {key}={want}; "
                "use the matching codec name or drop the override"
            )
    net = _build_dac(file_kwargs)
    if not any(k.endswith(".weight_g") for k in state) and _has_weight_norm(net):
        for m in net.modules():  # weights saved after weight-norm removal: match their layout
            if hasattr(m, "weight_g"):
                torch.nn.utils.remove_weight_norm(m)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(
            f"{path}: weights do not match the DAC architecture in its config ({first})"
        ) from exc
    codec = DACCodec(
        file_kwargs,
        n_quantizers=n_quantizers,
        frozen=frozen,
        remove_weight_norm=remove_weight_norm,
        model=net,
    )
    codec.name = name
    return codec


def _register(name: str) -> None:
    def factory(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> DACCodec:
        return load_dac_codec(name, pretrained, **kwargs)

    factory.__doc__ = f"DAC codec {name!r}: {DAC_CONFIGS[name]}"
    register_codec(name)(factory)


for _name in DAC_CONFIGS:
    _register(_name)
