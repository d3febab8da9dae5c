"""``stft_vq``: a gain–shape residual-VQ codec on STFT frames, fitted by k-means in seconds.

Each channel is coded as mono (channels folded into the batch, as every codec here does). A frame is
the stacked real/imag STFT vector ``v`` of :class:`~spatialgen.codecs.stft.STFTCodec` (sqrt-Hann,
``n_fft`` 640, hop 320 at 16 kHz by default: 50 frames/s like ``dac_synthetic``, ``D = 642``). It is
coded as a signed gain times a unit shape, on ``Q`` streams of ``V`` codes each:

- stream 0: shape index ``k0 = argmax_k |<s, c_k>|`` of the unit shape ``s = v / |v|`` in a codebook of
  unit vectors; the sign ``σ = sign <s, c_k0>`` moves into the gain and ``s' = σ s``;
- stream 1: the signed gain ``σ |v|``, log-quantised: code 0 is silence, codes ``1 .. M`` are
  ``+g_l`` and ``M+1 .. 2M`` are ``-g_l`` with ``M = (V - 1) // 2`` levels ``g_l`` evenly spaced in dB
  over ``gain_range_db`` (default -90..+30 dB, 0.235 dB steps for V = 1024); a frame below the range
  is silent, one above it is clamped; for even ``V`` the unused top code also decodes as silence;
- streams 2 .. Q-1: residual VQ of the shape, ``r_1 = s' - c_k0``, ``r_{q+1} = r_q - e_q[k_q]``
  (nearest entry, Euclidean).

Decoding rebuilds ``ŝ = c_k0 + Σ e_q[k_q]``, renormalises it to unit norm (so the frame energy is the
coded gain's) and scales it by the signed gain. The streams are ordered so that any prefix of at least
two (shape + gain) decodes, as ``DiscreteAudioCodec.decode`` allows for ``Q' <= Q``.

Why this keeps the direction: one plane wave encodes to FOA ``[s, s·u_y, s·u_z, s·u_x]``, scaled copies
(sign included) of one signal, so every channel has the same ``s'`` and gets the same shape codes; only
the signed gains differ, and their ratios carry the direction up to the gain step.

Codebooks are fitted by k-means (sign-invariant spherical k-means for stream 0, Euclidean for the
residuals) on the non-silent frames of training audio (:meth:`STFTVQCodec.fit`,
``spatialgen.data.codec_fit.fit_stft_vq``, ``spatialgen data fit-codec --data ROOT --out DIR``) and saved as
``model.safetensors`` + ``config.json`` (:meth:`STFTVQCodec.save_pretrained`,
:func:`load_stft_vq_codec`, ``create_codec("stft_vq", pretrained=DIR)``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from spatialgen.codecs.base import DiscreteAudioCodec
from spatialgen.codecs.stft import STFTCodec
from spatialgen.errors import InvalidAudioError, SpatialgenError
from spatialgen.io.audio import atomic_output
from spatialgen.weights import resolve_weights, sibling_spec

__all__ = ["STFTVQCodec", "create_stft_vq_codec", "load_stft_vq_codec"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "stft_vq"
_CONFIG_KEYS = {
    "sample_rate",
    "n_fft",
    "hop_length",
    "num_codebooks",
    "codebook_size",
    "shape_size",
    "gain_range_db",
}
_CHUNK = 4096  # frames per assignment block: bounds the [frames, V] score matrix


class STFTVQCodec(DiscreteAudioCodec):
    """Gain–shape residual-VQ codec on STFT frames (see the module docstring for the code layout).

    Args:
        sample_rate: audio sample rate in Hz.
        n_fft: STFT window/FFT length (even).
        hop_length: frame step, at most ``n_fft // 2``.
        num_codebooks: Q >= 2 streams (shape, gain, then ``Q - 2`` residual shape stages).
        codebook_size: V codes per stream (the gain stream uses them all), at least 5.
        shape_size: entries of each shape codebook, ``<= V`` (None: V); fewer entries fit better on
            little audio (k-means needs many more frames than entries), and their codes stay ``< V``.
        gain_range_db: ``(low, high)`` of the frame norm ``|v|`` (orthonormal STFT) in dB.

    A new codec is unfitted (zero codebooks) and refuses to encode or decode until :meth:`fit` ran or
    fitted codebooks were loaded (``load_state_dict`` of a fitted codec's state, or
    :func:`load_stft_vq_codec`).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 640,
        hop_length: int = 320,
        num_codebooks: int = 4,
        codebook_size: int = 1024,
        shape_size: int | None = None,
        gain_range_db: Sequence[float] = (-90.0, 30.0),
    ) -> None:
        if int(num_codebooks) < 2:
            raise ValueError(f"num_codebooks must be >= 2 (a shape and a gain stream), got {num_codebooks}")
        if int(codebook_size) < 5:
            raise ValueError(
                f"codebook_size must be >= 5 (silence and 2 signed gain levels), got {codebook_size}"
            )
        shape_size = int(codebook_size if shape_size is None else shape_size)
        if not 1 <= shape_size <= int(codebook_size):
            raise ValueError(f"shape_size must be in [1, codebook_size={codebook_size}], got {shape_size}")
        lo, hi = (float(g) for g in gain_range_db)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"gain_range_db must be a finite (low, high) with low < high, got {gain_range_db}"
            )
        stft = STFTCodec(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length)
        super().__init__(
            sample_rate=sample_rate,
            hop_length=hop_length,
            latent_dim=stft.latent_dim,
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            frozen=True,
        )
        self.stft = stft
        self.n_fft = int(n_fft)
        self.gain_range_db = (lo, hi)
        self.shape_size = shape_size
        self.n_levels = (self.codebook_size - 1) // 2  # M magnitude levels per sign
        self.gain_step_db = (hi - lo) / (self.n_levels - 1)
        # Row 0: unit shapes of stream 0; rows 1..Q-2: residual codebooks of streams 2..Q-1.
        self.register_buffer("codebooks", torch.zeros(self.num_codebooks - 1, shape_size, self.latent_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # ---------------------------------------------------------------- config
    @property
    def codec_config(self) -> dict[str, Any]:
        """JSON-able constructor kwargs (what ``config.json`` stores)."""
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "shape_size": self.shape_size,
            "gain_range_db": list(self.gain_range_db),
        }

    @property
    def dac_kwargs(self) -> dict[str, Any]:
        """Alias of :attr:`codec_config`: ``ViSAGePipeline`` stores the kwargs of a non-official codec
        under this attribute so an exported pipeline rebuilds it (its codebooks are in the state dict)."""
        return self.codec_config

    @property
    def is_fitted(self) -> bool:
        """Whether the codebooks hold fitted values (encode/decode refuse otherwise)."""
        return bool(self.fitted)

    def extra_repr(self) -> str:
        cfg = ", ".join(f"{k}={v}" for k, v in self.codec_config.items())
        return f"{cfg}, fitted={self.is_fitted}"

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise SpatialgenError(
                f"codec {self.name!r} is not fitted: call .fit(audio), "
                "spatialgen.data.codec_fit.fit_stft_vq(root, out_dir), or load one with "
                "create_codec('stft_vq', pretrained=<dir>)"
            )

    # ---------------------------------------------------------------- hooks
    def _analyze(self, audio: torch.Tensor) -> torch.Tensor:
        return self.stft._analyze(audio)

    def _synthesize(self, latents: torch.Tensor) -> torch.Tensor:
        return self.stft._synthesize(latents)

    def _compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        # The float32 codebook buffers must not downcast float64 audio: keep the input's dtype.
        return x.dtype

    def _quantize(self, latents: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        n, d, f = latents.shape
        v = latents.transpose(1, 2).reshape(n * f, d).to(torch.float64)
        codes = torch.cat([self._quantize_frames(v[i : i + _CHUNK]) for i in range(0, v.shape[0], _CHUNK)])
        return codes.reshape(n, f, self.num_codebooks).transpose(1, 2)

    def _quantize_frames(self, v: torch.Tensor) -> torch.Tensor:
        """``[M, D]`` float64 frames -> ``[M, Q]`` codes."""
        cb = self.codebooks.to(v)
        norm = v.norm(dim=-1)
        gain_code = self._gain_codes(norm)
        s = v / norm.clamp_min(torch.finfo(v.dtype).tiny).unsqueeze(-1)
        proj = s @ cb[0].T
        k0 = proj.abs().argmax(-1)
        sign = torch.where(proj.gather(-1, k0[:, None]).squeeze(-1) < 0, -1.0, 1.0).to(v)
        codes = [k0, self._signed(gain_code, sign)]
        r = sign[:, None] * s - cb[0, k0]
        for e in cb[1:]:
            k = _nearest(r, e)
            codes.append(k)
            r = r - e[k]
        out = torch.stack(codes, dim=-1)
        silent = gain_code == 0
        return torch.where(silent[:, None], torch.zeros_like(out), out)  # silent frames: all-zero codes

    def _gain_codes(self, norm: torch.Tensor) -> torch.Tensor:
        """Unsigned gain codes: 0 for silence, ``1 + level`` otherwise (level in ``0 .. M-1``)."""
        lo, hi = self.gain_range_db
        db = 20.0 * torch.log10(norm.clamp_min(1e-300))
        level = torch.round((db.clamp(lo, hi) - lo) / self.gain_step_db).long()
        return torch.where(db < lo - 0.5 * self.gain_step_db, torch.zeros_like(level), level + 1)

    def _signed(self, gain_code: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        return torch.where((sign < 0) & (gain_code > 0), gain_code + self.n_levels, gain_code)

    def gain_of_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Signed linear gains (float64) of gain-stream codes (any shape); silence codes give 0."""
        lo, _ = self.gain_range_db
        c = codes.long()
        m = self.n_levels
        level = torch.where(c > m, c - m - 1, c - 1)
        mag = 10.0 ** ((lo + level.to(torch.float64) * self.gain_step_db) / 20.0)
        sign = torch.where(c > m, -1.0, 1.0).to(torch.float64)
        return torch.where((c >= 1) & (c <= 2 * m), sign * mag, torch.zeros_like(mag))

    def _dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        if codes.shape[1] < 2:
            raise ValueError(
                f"codec {self.name!r} needs at least 2 codebooks (shape and gain) to decode, got {codes.shape[1]}"
            )
        cb = self.codebooks.to(torch.float64)
        shape = cb[0, codes[:, 0]]  # [N, F, D]
        for q in range(2, codes.shape[1]):
            shape = shape + cb[q - 1, codes[:, q]]
        norm = shape.norm(dim=-1, keepdim=True)
        unit = torch.where(
            norm > 0, shape / norm.clamp_min(torch.finfo(shape.dtype).tiny), torch.zeros_like(shape)
        )
        v = unit * self.gain_of_codes(codes[:, 1]).unsqueeze(-1)
        return v.transpose(1, 2).to(self.codebooks.dtype)

    # ---------------------------------------------------------------- fitting
    @torch.no_grad()
    def fit(
        self,
        audio: torch.Tensor | Iterable[torch.Tensor],
        *,
        sample_rate: int | None = None,
        iters: int = 15,
        max_frames: int | None = 40000,
        seed: int = 0,
    ) -> STFTVQCodec:
        """Fit all codebooks by k-means on the non-silent frames of ``audio``; returns ``self``.

        Args:
            audio: a tensor ``[B, C, T]`` (or ``[C, T]``) or an iterable of such tensors (clips).
            sample_rate: the audio's rate, checked against the codec's.
            iters: k-means iterations per stage.
            max_frames: random subset of frames to fit on (None: all); bounds time and memory.
            seed: seeds the subset and the k-means initialisation (same seed, same codebooks).
        """
        items = [audio] if isinstance(audio, torch.Tensor) else list(audio)
        if not items:
            raise InvalidAudioError("fit needs audio: got an empty iterable")
        frames = []
        for x in items:
            x = x.unsqueeze(0) if isinstance(x, torch.Tensor) and x.ndim == 2 else x
            z = self.encode_latents(x.to(torch.float64) if isinstance(x, torch.Tensor) else x, sample_rate)
            frames.append(z.transpose(-1, -2).reshape(-1, self.latent_dim))
        v = torch.cat(frames).to(torch.float64)
        norm = v.norm(dim=-1)
        v = v[self._gain_codes(norm) > 0]
        gen = torch.Generator().manual_seed(int(seed))
        if max_frames is not None and v.shape[0] > max_frames:
            v = v[torch.randperm(v.shape[0], generator=gen)[:max_frames]]
        if v.shape[0] < self.shape_size:
            raise InvalidAudioError(
                f"fit needs at least shape_size={self.shape_size} non-silent frames, got {v.shape[0]}; "
                "pass more audio or a smaller shape_size"
            )
        s = (v / v.norm(dim=-1, keepdim=True)).to(self.codebooks.device)
        books = []
        c0 = _kmeans(s, self.shape_size, iters, gen, sign_invariant=True)
        books.append(c0)
        k0 = _assign(s, c0, sign_invariant=True)[0]
        sign = torch.where((s * c0[k0]).sum(-1) < 0, -1.0, 1.0).to(s)
        r = sign[:, None] * s - c0[k0]  # the same sign flip as _quantize_frames
        for _ in range(self.num_codebooks - 2):
            e = _kmeans(r, self.shape_size, iters, gen, sign_invariant=False)
            books.append(e)
            r = r - e[_nearest(r, e)]
        self.codebooks.copy_(torch.stack(books).to(self.codebooks))
        self.fitted.fill_(True)
        return self

    # ---------------------------------------------------------------- save
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` (the codebooks) + ``config.json`` into ``directory``; returns it."""
        from safetensors.torch import save_file

        self._require_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        codebooks = {"codebooks": self.codebooks.detach().float().contiguous().cpu()}
        with atomic_output(out / WEIGHTS_NAME) as tmp:  # never a half-written weights file
            save_file(codebooks, str(tmp), {"format": FORMAT})
        (out / CONFIG_NAME).write_text(json.dumps({"format": FORMAT, **self.codec_config}, indent=2) + "\n")
        return out


def _nearest(x: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    """Index of the nearest (Euclidean) row of ``book [V, D]`` for each row of ``x [M, D]``."""
    half_sq = 0.5 * (book * book).sum(-1)
    return torch.cat([(xi @ book.T - half_sq).argmax(-1) for xi in x.split(_CHUNK)])


def _assign(x: torch.Tensor, c: torch.Tensor, sign_invariant: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, score)`` per row: max ``|<x, c>|`` (sign-invariant) or min distance (as max score)."""
    idx, score = [], []
    half_sq = 0.5 * (c * c).sum(-1)
    for xi in x.split(_CHUNK):
        p = xi @ c.T
        p = p.abs() if sign_invariant else p - half_sq
        best = p.max(-1)
        idx.append(best.indices)
        score.append(best.values)
    return torch.cat(idx), torch.cat(score)


def _kmeans(
    x: torch.Tensor, k: int, iters: int, gen: torch.Generator, *, sign_invariant: bool
) -> torch.Tensor:
    """Seeded k-means of rows ``x [M, D]`` (float64) into ``k`` centroids.

    ``sign_invariant``: spherical k-means on unit rows where ``x`` and ``-x`` are the same point (the
    sign goes into the gain): assignment by max ``|<x, c>|``, centroid = normalised ``Σ sign·x``.
    Otherwise plain Euclidean k-means. Init: a random subset of distinct rows; an empty cluster is
    re-seeded with the worst-served row so all ``k`` entries stay in use.
    """
    m = x.shape[0]
    c = x[torch.randperm(m, generator=gen)[:k].to(x.device)].clone()
    xf = x.float()  # assignment in float32: 2x faster, and ties only move a frame between near-equal entries
    for _ in range(max(1, int(iters))):
        idx, score = _assign(xf, c.float(), sign_invariant)
        w = x
        if sign_invariant:
            w = x * torch.where((x * c[idx]).sum(-1) < 0, -1.0, 1.0).to(x)[:, None]
        sums = torch.zeros_like(c).index_add_(0, idx, w)
        counts = torch.bincount(idx, minlength=k)
        empty = (counts == 0).nonzero().squeeze(-1)
        if empty.numel():
            err = -score if sign_invariant else 0.5 * (xf * xf).sum(-1) - score
            worst = err.argsort(descending=True)[: empty.numel()]
            sums[empty] = x[worst]
            counts[empty] = 1
        c = sums / counts.clamp_min(1).unsqueeze(-1).to(x)
        if sign_invariant:
            c = c / c.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(c.dtype).tiny)
    return c


# ------------------------------------------------------------------------------------------ load / create
def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f'{path}: not an stft_vq config (expected "format": "{FORMAT}")')
    config = {k: v for k, v in config.items() if k != "format"}
    if set(config) != _CONFIG_KEYS:
        raise ValueError(
            f"{path}: config keys {sorted(config)} differ from the expected {sorted(_CONFIG_KEYS)}"
        )
    return config


def load_stft_vq_codec(
    spec: str | os.PathLike, *, n_quantizers: int | None = None, **overrides: Any
) -> STFTVQCodec:
    """Load a fitted codec from a folder (``model.safetensors`` + ``config.json``), the weights file, or
    ``hf://owner/repo/model.safetensors``.

    Args:
        spec: where the saved codec is.
        n_quantizers: keep the first Q' streams (2 <= Q' <= saved Q); None keeps all.
        overrides: constructor kwargs that must agree with the file's (e.g. ``sample_rate``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    text = os.fspath(spec)
    local = None if text.startswith(("hf://", "http://", "https://")) else Path(text).expanduser()
    if local is not None and local.is_dir():
        text = str(local / WEIGHTS_NAME)
    weights = resolve_weights(text, what="stft_vq codebooks")
    config_path = resolve_weights(sibling_spec(text, CONFIG_NAME), what="stft_vq config")
    config = _read_config(Path(config_path))
    unknown = sorted(set(overrides) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for codec 'stft_vq'; valid: {sorted(_CONFIG_KEYS)}"
        )
    for key, want in overrides.items():
        have = config[key]
        if (list(have) if isinstance(have, list | tuple) else have) != (
            list(want) if isinstance(want, list | tuple) else want
        ):
            raise ValueError(f"{weights}: saved codec has {key}={have} but {key}={want} was asked for")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from exc
    saved_q = int(config["num_codebooks"])
    q = saved_q if n_quantizers is None else int(n_quantizers)
    if not 2 <= q <= saved_q:
        raise ValueError(f"n_quantizers must be in [2, {saved_q}] for {weights}, got {n_quantizers}")
    codec = STFTVQCodec(**{**config, "num_codebooks": q})
    full = STFTVQCodec(**config)
    expected = {"codebooks": tuple(full.codebooks.shape)}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ValueError(f"{weights}: tensors {got} do not match the config (expected {expected})")
    books = state["codebooks"]
    if not bool(torch.isfinite(books).all()):
        raise ValueError(f"{weights}: codebooks contain NaN or Inf")
    codec.codebooks.copy_(books[: q - 1])
    codec.fitted.fill_(True)
    codec.name = "stft_vq"
    return codec


def create_stft_vq_codec(
    pretrained: bool | str | os.PathLike = False, *, n_quantizers: int | None = None, **kwargs: Any
) -> STFTVQCodec:
    """Registry factory of ``stft_vq``: an unfitted codec (``pretrained=False``; fill it with
    ``fit`` or ``load_state_dict``) or a fitted one loaded from ``pretrained=<dir|file|hf://...>``.

    ``n_quantizers`` (as the ViSAGe pipeline passes it) sets the streams used, ``<= num_codebooks``.
    """
    if pretrained is True:
        raise ValueError(
            "codec 'stft_vq' has no official weights: fit one (spatialgen data fit-codec "
            "--data ROOT --out DIR) and pass pretrained=DIR"
        )
    if pretrained is False or pretrained is None:
        total = int(kwargs.pop("num_codebooks", n_quantizers if n_quantizers is not None else 4))
        q = total if n_quantizers is None else int(n_quantizers)
        if q > total:
            raise ValueError(f"n_quantizers={n_quantizers} exceeds num_codebooks={total}")
        return STFTVQCodec(num_codebooks=q, **kwargs)
    kwargs.pop("num_codebooks", None)  # the file defines the stored streams; n_quantizers selects a prefix
    return load_stft_vq_codec(pretrained, n_quantizers=n_quantizers, **kwargs)


# ------------------------------------------------------------------------------------------ dataset fit
