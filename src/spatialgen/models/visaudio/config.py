"""ViSAudio architecture configuration: one dataclass, named sizes, JSON round-trip.

Sizes S/M/L follow MMAudio (hkchengrex/MMAudio ``mmaudio/model/networks.py``): hidden 448/896/896, 7/14/14
heads of 64, joint blocks 4/4/7 and per-ear branch blocks 8/8/14; ``_16k`` variants use 20 latent channels at
31.25 Hz and ``_44k`` 40 channels at 44100/1024 Hz. ``tiny`` and ``small`` are CPU configs of the same code.
All sequence lengths are derived from a duration and the stream rates, never hard-coded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["VISAUDIO_CONFIGS", "ViSAudioConfig", "visaudio_config"]

_ACTIVATIONS = ("selu", "silu")
_SYNC_ALIGN = ("time", "index")
_EAR_ATTENTION = ("joint", "joint_offset", "per_ear")
_FINAL_COND = ("local", "global")


@dataclass
class ViSAudioConfig:
    """Sizes and stream rates of :class:`~spatialgen.models.visaudio.network.ViSAudioNet`.

    Attributes:
        latent_dim: channels of one ear's audio latent (the mono codec's ``D``).
        hidden_dim: transformer width; ``hidden_dim / num_heads`` is the head width (even, for RoPE).
        num_heads: attention heads.
        joint_depth: N1, shared multimodal (MM-DiT) blocks over [left; right; visual] tokens.
        branch_depth: N2, single-modal blocks per ear (separate weights for left and right).
        mlp_ratio: nominal MLP width factor (SwiGLU width is 2/3 of it rounded up to ``mlp_multiple_of``).
        mlp_multiple_of: SwiGLU width rounding (256 in MMAudio).
        clip_dim: semantic (CLIP) per-frame feature width; ``clip_fps`` its rate.
        sync_dim: Synchformer token width; ``sync_fps`` video rate, ``sync_segment`` frames per segment,
            ``sync_stride`` segment hop, ``sync_tokens_per_segment`` tokens per segment (MMAudio: 25, 16, 8, 8).
        sync_align: ``"time"`` averages overlapping segments onto the true tubelet grid and interpolates
            linearly to the latent frames; ``"index"`` is MMAudio's nearest-exact resize of the token
            sequence (temporally misaligned, kept for checkpoint compatibility).
        pe_dim: Perception Encoder patch-token width; ``pe_grid`` its (rows, cols) patch grid;
            ``pe_fps`` its frame rate.
        text_dim: CLIP text token width; ``text_len`` text tokens per prompt (MMAudio: 1024, 77). With
            ``text_len > 0`` the text tokens are a third stream of the joint attention (no RoPE) and their
            mean enters the global condition, as in MMAudio; ``text_len = 0`` drops the text stream.
        ear_attention: how the two ears meet in the shared joint attention. ``"joint"``: one attention over
            ``[left; right; visual; text]``; ``"joint_offset"``: the same with a learnable per-head logit
            offset on the audio keys, starting at ``-log 2`` so that with L = R every audio time step
            weighs as one key, as in MMAudio (exact MMAudio init); ``"per_ear"``: each ear attends over
            ``[ear; visual; text]`` with the visual and text streams run once per ear (exact, no L<->R
            attention). Default ``"joint"``: the cheapest on CPU, where SDPA with the offset's additive
            mask leaves the fused kernel (bench/bench_visaudio.py ``--mmaudio``); an MMAudio init should
            use ``"joint_offset"`` (set by ``config_from_mmaudio``) or ``"per_ear"``.
        final_cond: condition of the output layer: ``"local"`` per-ear, per-token (MMAudio bug #55
            fixed) or ``"global"`` (timestep + semantic vector only, as MMAudio's released weights).
        latent_rate: audio latent frames per second.
        rope_theta: RoPE base.
        input_act: activation of the input projections (``"selu"``: MMAudio v1, ``"silu"``: v2).
        time_freq_dim: sinusoid width of the timestep embedding; ``time_max_period`` its longest period
            (v1: 256 and 10000; v2: ``hidden_dim`` and 1).
        duration: nominal clip length in seconds (only used to derive default sequence lengths).
    """

    latent_dim: int = 20
    hidden_dim: int = 448
    num_heads: int = 7
    joint_depth: int = 4
    branch_depth: int = 8
    mlp_ratio: float = 4.0
    mlp_multiple_of: int = 256
    clip_dim: int = 1024
    clip_fps: float = 8.0
    sync_dim: int = 768
    sync_fps: float = 25.0
    sync_segment: int = 16
    sync_stride: int = 8
    sync_tokens_per_segment: int = 8
    sync_align: str = "time"
    pe_dim: int = 1024
    pe_grid: tuple[int, int] = (32, 32)
    pe_fps: float = 8.0
    text_dim: int = 1024
    text_len: int = 77
    ear_attention: str = "joint"
    final_cond: str = "local"
    latent_rate: float = 31.25
    rope_theta: float = 10000.0
    input_act: str = "selu"
    time_freq_dim: int = 256
    time_max_period: float = 10000.0
    duration: float = 8.0

    def __post_init__(self) -> None:
        self.pe_grid = tuple(int(v) for v in self.pe_grid)  # type: ignore[assignment]
        positive = (
            "latent_dim",
            "hidden_dim",
            "num_heads",
            "clip_dim",
            "sync_dim",
            "pe_dim",
            "mlp_multiple_of",
            "text_dim",
        )
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"ViSAudioConfig.{name} must be positive, got {getattr(self, name)}")
        if self.joint_depth < 1 or self.branch_depth < 0:
            raise ValueError(
                f"need joint_depth >= 1 and branch_depth >= 0, got {self.joint_depth}, {self.branch_depth}"
            )
        if self.hidden_dim % self.num_heads or (self.hidden_dim // self.num_heads) % 2:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} must split into {self.num_heads} heads of even width (RoPE pairs)"
            )
        if len(self.pe_grid) != 2 or min(self.pe_grid) < 1:
            raise ValueError(f"pe_grid must be (rows, cols) of positive ints, got {self.pe_grid}")
        if self.sync_segment % self.sync_tokens_per_segment or self.sync_stride % (
            self.sync_segment // self.sync_tokens_per_segment
        ):
            raise ValueError(
                "sync_segment must be a multiple of sync_tokens_per_segment and sync_stride a multiple of the "
                f"frames per token, got segment={self.sync_segment}, tokens={self.sync_tokens_per_segment}, "
                f"stride={self.sync_stride}"
            )
        if self.sync_align not in _SYNC_ALIGN:
            raise ValueError(f"sync_align must be one of {_SYNC_ALIGN}, got {self.sync_align!r}")
        if self.text_len < 0:
            raise ValueError(f"ViSAudioConfig.text_len must be >= 0 (0: no text stream), got {self.text_len}")
        if self.ear_attention not in _EAR_ATTENTION:
            raise ValueError(f"ear_attention must be one of {_EAR_ATTENTION}, got {self.ear_attention!r}")
        if self.final_cond not in _FINAL_COND:
            raise ValueError(f"final_cond must be one of {_FINAL_COND}, got {self.final_cond!r}")
        if self.input_act not in _ACTIVATIONS:
            raise ValueError(f"input_act must be one of {_ACTIVATIONS}, got {self.input_act!r}")
        rates = ("clip_fps", "sync_fps", "pe_fps", "latent_rate", "duration")
        for name in rates:
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"ViSAudioConfig.{name} must be positive, got {getattr(self, name)}")

    # ---------------------------------------------------------------- derived sizes
    @property
    def head_dim(self) -> int:
        """Per-head width."""
        return self.hidden_dim // self.num_heads

    @property
    def pe_tokens(self) -> int:
        """Patch tokens per Perception Encoder frame (``rows * cols``)."""
        return self.pe_grid[0] * self.pe_grid[1]

    def latent_len(self, duration: float | None = None) -> int:
        """Audio latent frames for ``duration`` seconds (``ceil``, like the codecs' padding)."""
        return math.ceil(round((duration or self.duration) * self.latent_rate, 6))

    def clip_len(self, duration: float | None = None) -> int:
        """CLIP frames for ``duration`` seconds."""
        return math.floor(round((duration or self.duration) * self.clip_fps, 6))

    def pe_len(self, duration: float | None = None) -> int:
        """Perception Encoder frames for ``duration`` seconds."""
        return math.floor(round((duration or self.duration) * self.pe_fps, 6))

    def sync_len(self, duration: float | None = None) -> int:
        """Synchformer tokens for ``duration`` seconds: whole segments times tokens per segment (192 for 8 s)."""
        frames = math.floor(round((duration or self.duration) * self.sync_fps, 6))
        segments = max(0, (frames - self.sync_segment) // self.sync_stride + 1)
        return segments * self.sync_tokens_per_segment

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        d["pe_grid"] = list(self.pe_grid)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViSAudioConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ViSAudioConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ViSAudioConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


_RATE_16K = 16000 / 256 / 2
_RATE_44K = 44100 / 512 / 2
_V2 = {"input_act": "silu", "time_max_period": 1.0}

VISAUDIO_CONFIGS: dict[str, ViSAudioConfig] = {
    "S_16k": ViSAudioConfig(latent_dim=20, latent_rate=_RATE_16K),
    "S_44k": ViSAudioConfig(latent_dim=40, latent_rate=_RATE_44K),
    "M_44k": ViSAudioConfig(latent_dim=40, latent_rate=_RATE_44K, hidden_dim=896, num_heads=14),
    "L_44k": ViSAudioConfig(
        latent_dim=40, latent_rate=_RATE_44K, hidden_dim=896, num_heads=14, joint_depth=7, branch_depth=14
    ),
    "L_44k_v2": ViSAudioConfig(
        latent_dim=40,
        latent_rate=_RATE_44K,
        hidden_dim=896,
        num_heads=14,
        joint_depth=7,
        branch_depth=14,
        time_freq_dim=896,
        **_V2,
    ),
    # CPU configs of the same code (tests, demos, the synthetic recipe).
    "small": ViSAudioConfig(
        latent_dim=16,
        hidden_dim=128,
        num_heads=4,
        joint_depth=2,
        branch_depth=2,
        mlp_multiple_of=32,
        clip_dim=64,
        sync_dim=64,
        pe_dim=64,
        pe_grid=(4, 4),
        text_dim=64,
        text_len=8,
        latent_rate=_RATE_16K,
        time_freq_dim=64,
    ),
    "tiny": ViSAudioConfig(
        latent_dim=8,
        hidden_dim=32,
        num_heads=2,
        joint_depth=1,
        branch_depth=1,
        mlp_multiple_of=8,
        clip_dim=16,
        sync_dim=16,
        pe_dim=16,
        pe_grid=(2, 4),
        text_dim=16,
        text_len=4,
        latent_rate=_RATE_16K,
        time_freq_dim=32,
    ),
}


def visaudio_config(name: str, **overrides: Any) -> ViSAudioConfig:
    """A named config (``S_16k``, ``S_44k``, ``M_44k``, ``L_44k``, ``L_44k_v2``, ``small``, ``tiny``) with overrides."""
    if name not in VISAUDIO_CONFIGS:
        raise ValueError(f"unknown ViSAudio config {name!r}; choose one of {sorted(VISAUDIO_CONFIGS)}")
    return VISAUDIO_CONFIGS[name].replace(**overrides)
