"""ViSAGe network configuration: one dataclass, the full published size by default, named small sizes.

Defaults are the released model (jaeyeonkim99/visage ``cfg/config.json``): d=1024, 6 encoder + 12 decoder
layers, 16 heads, FFN 4096, 4 FOA channels x 9 codebooks of the 44.1 kHz DAC (1024 entries), 5 s clips with 20
CLIP frames (4 fps) and 430 code frames. ``to_dict`` / ``from_dict`` round-trip through JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["VISAGE_CONFIGS", "VISAGE_TINY_WIDTH", "ViSAGeConfig", "get_config", "list_configs"]

_PATTERNS = ("visage", "delay", "flat")


@dataclass
class ViSAGeConfig:
    """Architecture and token layout of a ViSAGe network.

    Attributes:
        d_model: width of encoder and decoder.
        encoder_layers, decoder_layers: post-LN transformer layers.
        encoder_heads, decoder_heads: attention heads.
        encoder_ffn_dim, decoder_ffn_dim: FFN hidden width.
        dropout, attention_dropout, activation_dropout: as in BART (residual, attention probs, FFN hidden).
        init_std: std of the normal init of linear and embedding weights.
        layer_norm_eps: LayerNorm epsilon.
        d_visual: width of the per-frame visual feature (CLIP ViT-B/32 projected embedding: 512).
        energy_map_dim: size of the per-frame patch energy map (7x7 = 49); 0 disables that input.
        use_direction: camera-direction input (3-d unit vector through an MLP); False for the mono model.
        num_channels: audio channels C (4 for FOA in AmbiX order W, Y, Z, X; 1 for mono pretraining).
        num_codebooks: RVQ levels Q kept per channel.
        codebook_size: entries V per codebook; the token id ``V`` is PAD ("no token here").
        max_source_length: longest visual sequence (frames).
        max_target_length: longest decoder sequence (positions).
        codec: codec registry name the codes come from.
        codec_sample_rate, codec_hop_length: its rate and hop (44.1 kHz / 512 for ViSAGe).
        visual_fps: frame rate of the visual features.
        clip_seconds: clip length the model generates.
        pattern: code pattern name (``visage`` interleaved, ``delay``, ``flat``).
    """

    d_model: int = 1024
    encoder_layers: int = 6
    decoder_layers: int = 12
    encoder_heads: int = 16
    decoder_heads: int = 16
    encoder_ffn_dim: int = 4096
    decoder_ffn_dim: int = 4096
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    layer_norm_eps: float = 1e-5
    d_visual: int = 512
    energy_map_dim: int = 49
    use_direction: bool = True
    num_channels: int = 4
    num_codebooks: int = 9
    codebook_size: int = 1024
    max_source_length: int = 20
    max_target_length: int = 861
    codec: str = "dac_44khz"
    codec_sample_rate: int = 44100
    codec_hop_length: int = 512
    visual_fps: float = 4.0
    clip_seconds: float = 5.0
    pattern: str = "visage"

    def __post_init__(self) -> None:
        positive = [
            "d_model",
            "encoder_heads",
            "decoder_heads",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "d_visual",
            "num_channels",
            "num_codebooks",
            "codebook_size",
            "max_source_length",
            "max_target_length",
            "codec_sample_rate",
            "codec_hop_length",
            "visual_fps",
            "clip_seconds",
        ]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"ViSAGeConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("encoder_layers", "decoder_layers", "energy_map_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"ViSAGeConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("encoder_heads", "decoder_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"ViSAGeConfig: d_model {self.d_model} must be divisible by {name}")
        if self.pattern not in _PATTERNS:
            raise ValueError(f"ViSAGeConfig.pattern must be one of {_PATTERNS}, got {self.pattern!r}")
        if self.source_length > self.max_source_length:
            raise ValueError(
                f"ViSAGeConfig: {self.clip_seconds} s at {self.visual_fps} fps needs {self.source_length} "
                f"visual frames > max_source_length {self.max_source_length}"
            )

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_streams(self) -> int:
        """K = C * Q token streams; stream ``k = c * Q + q``."""
        return self.num_channels * self.num_codebooks

    @property
    def pad_token(self) -> int:
        """Token id meaning "no token at this position" (= ``codebook_size``)."""
        return self.codebook_size

    @property
    def embedding_rows(self) -> int:
        """Rows of each token table: ``V + 1`` (PAD) rounded up to a multiple of 64, as released (1088)."""
        return math.ceil((self.codebook_size + 1) / 64) * 64

    @property
    def code_frame_rate(self) -> int:
        """Integer code frame rate used for lengths (86 for 44.1 kHz / 512; the official truncation)."""
        return self.codec_sample_rate // self.codec_hop_length

    @property
    def source_length(self) -> int:
        """Visual frames per clip (20 for 5 s at 4 fps)."""
        return round(self.clip_seconds * self.visual_fps)

    @property
    def num_frames(self) -> int:
        """Code frames the model generates per clip: ``int(clip_seconds * code_frame_rate)`` (430)."""
        return int(self.clip_seconds * self.code_frame_rate)

    @property
    def output_frames(self) -> int:
        """Code frames covering the whole clip, ``ceil(seconds * rate / hop)`` (431): generation pads to it."""
        return math.ceil(int(self.clip_seconds * self.codec_sample_rate) / self.codec_hop_length)

    @property
    def num_samples(self) -> int:
        """Audio samples of one clip at the codec rate."""
        return int(self.clip_seconds * self.codec_sample_rate)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields (stored as config.json by the hub)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViSAGeConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"ViSAGeConfig.from_dict: unknown keys {unknown}; valid keys are {sorted(names)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> ViSAGeConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


_SMALL = {
    "d_model": 256,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_heads": 4,
    "decoder_heads": 4,
    "encoder_ffn_dim": 1024,
    "decoder_ffn_dim": 1024,
}

#: ``visage_tiny``'s transformer width: also the overrides that shrink any named config for tests.
VISAGE_TINY_WIDTH = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_heads": 2,
    "decoder_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
}

#: Named configurations: ``visage`` (released FOA model), ``visage_mono`` (VGGSound stage 1),
#: ``visage_small`` (CPU, on the ``dac_synthetic`` codec and ``tiny`` visual encoder features),
#: ``visage_tiny`` (unit tests, ``dac_tiny`` codec).
VISAGE_CONFIGS: dict[str, dict[str, Any]] = {
    "visage": {},
    "visage_mono": {"num_channels": 1, "energy_map_dim": 0, "use_direction": False},
    "visage_small": {
        **_SMALL,
        "d_visual": 32,
        "num_codebooks": 4,
        "codebook_size": 1024,
        "codec": "dac_synthetic",
        "codec_sample_rate": 16000,
        "codec_hop_length": 320,
        "max_target_length": 2 * 250 + 1,
        "max_source_length": 40,
    },
    "visage_small_mono": {
        **_SMALL,
        "d_visual": 32,
        "num_channels": 1,
        "energy_map_dim": 0,
        "use_direction": False,
        "num_codebooks": 4,
        "codec": "dac_synthetic",
        "codec_sample_rate": 16000,
        "codec_hop_length": 320,
        "max_target_length": 2 * 250 + 1,
        "max_source_length": 40,
    },
    "visage_tiny": {
        **VISAGE_TINY_WIDTH,
        "d_visual": 16,
        "num_codebooks": 2,
        "codebook_size": 64,
        "codec": "dac_tiny",
        "codec_sample_rate": 16000,
        "codec_hop_length": 8,
        "clip_seconds": 0.005,
        "visual_fps": 800.0,
        "max_source_length": 8,
        "max_target_length": 2 * 10 + 1,
    },
}


def list_configs() -> list[str]:
    """Names accepted by :func:`get_config`."""
    return sorted(VISAGE_CONFIGS)


def get_config(name: str, **overrides: Any) -> ViSAGeConfig:
    """The named configuration with ``overrides`` applied; an unknown name raises a ValueError listing them."""
    if name not in VISAGE_CONFIGS:
        raise ValueError(f"unknown ViSAGe config {name!r}; choose one of {list_configs()}")
    return ViSAGeConfig(**{**VISAGE_CONFIGS[name], **overrides})
