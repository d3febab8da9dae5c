"""Multichannel FIR filtering for binaural rendering: ``y_e = Σ_c h_{e,c} * x_c``, causal first ``T`` samples.

Two equal results (to float rounding), picked by :func:`mix_convolve`:

- ``"full"``: one FFT of size ≥ ``T + taps − 1``. Simple and differentiable, but for a minute of
  48 kHz audio its 4 M-point FFTs fall out of cache: about 12x the time of (bench/bench_dsp.py)
- ``"ola"``: overlap-add (Stockham 1966; e.g. ``scipy.signal.oaconvolve``). The input is cut into hops
  of ``L = n_fft − taps + 1`` samples, each hop is transformed with a short FFT of ``n_fft`` points,
  mixed in the frequency domain and transformed back; the ``taps − 1`` tail of each block is added to
  the start of the next. On CPU, blocks are processed a few at a time (about 64 k samples) so every
  temporary stays in cache, and the output is written once into a huge-page buffer (:mod:`.buffers`);
  on accelerators all blocks form one group.

``n_fft`` minimises the FFT cost per output sample ``n log n / (n − taps + 1)`` over powers of two
≥ ``2 taps`` (4096 for the 512-tap decoder filters). Results do not depend on the torch thread count:
the block split is fixed and every block is computed alone.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from spatialgen.spatial import buffers
from spatialgen.spatial.threads import check_threads, intra_op_threads

__all__ = ["ConvolveMode", "mix_convolve", "ola_fft_size"]

ConvolveMode = Literal["auto", "full", "ola"]
_CHUNK_SAMPLES = 1 << 16  # input samples per group of blocks: keeps each group's FFT buffers in cache


def ola_fft_size(taps: int) -> int:
    """The power-of-two block FFT size with the least FFT work per output sample for ``taps`` filters."""
    best, best_cost = 0, float("inf")
    n = max(64, 1 << (2 * taps - 1).bit_length())
    for _ in range(4):
        cost = n * n.bit_length() / (n - taps + 1)
        if cost < best_cost:
            best, best_cost = n, cost
        n *= 2
    return best


def _full_fft_size(length: int, taps: int) -> int:
    """Power-of-two FFT size for a linear (non-circular) convolution of ``length`` by ``taps``."""
    return 1 << (length + taps - 2).bit_length()


def _mix(spec: Tensor, filters: Tensor) -> Tensor:
    """``Σ_c spec[:, c] · filters[:, :, c]``: spec ``[B, C, ..., F]``, filters ``[B|1, E, C, F]``.

    Written as C broadcast multiply-adds; ``einsum`` or a batched complex matmul over frequency first
    permutes the spectra and measured 1.5-4x slower at these sizes.
    """
    extra = spec.dim() - 3  # block dim of the OLA path (0 for the full path)
    h = filters.reshape(*filters.shape[:3], *(1,) * extra, filters.shape[-1])
    out = spec[:, :1] * h[:, :, 0]
    for c in range(1, spec.shape[1]):
        out.addcmul_(spec[:, c : c + 1], h[:, :, c])
    return out


def _convolve_full(x: Tensor, filters: Tensor) -> Tensor:
    t, taps = x.shape[-1], filters.shape[-1]
    n = _full_fft_size(t, taps)
    spec = torch.fft.rfft(x, n=n)  # [B, C, F]
    out = _mix(spec, torch.fft.rfft(filters, n=n))
    return torch.fft.irfft(out, n=n)[..., :t]


def _convolve_ola(x: Tensor, filters: Tensor, n_fft: int) -> Tensor:
    b, c, t = x.shape
    taps = filters.shape[-1]
    hop = n_fft - taps + 1
    h = torch.fft.rfft(filters, n=n_fft)  # [B|1, E, C, F]
    n_ears = filters.shape[1]
    out = buffers.empty((b, n_ears, t), x.dtype, x.device)
    n_blocks = -(-t // hop)
    # CPU: small groups stay in cache; accelerators: one group, as kernel launches cost more than memory
    per_group = max(1, _CHUNK_SAMPLES // hop) if x.device.type == "cpu" else n_blocks
    carry: Tensor | None = None  # the tail of the previous group's last block
    for k0 in range(0, n_blocks, per_group):
        k1 = min(n_blocks, k0 + per_group)
        kb, s0, s1 = k1 - k0, k0 * hop, min(k1 * hop, t)
        seg_in = x[..., s0:s1]
        if s1 - s0 < kb * hop:
            seg_in = F.pad(seg_in, (0, kb * hop - (s1 - s0)))
        spec = torch.fft.rfft(seg_in.reshape(b, c, kb, hop), n=n_fft)  # [B, C, kb, F]
        y = torch.fft.irfft(_mix(spec, h), n=n_fft)  # [B, E, kb, n_fft]
        whole = s1 - s0 == kb * hop
        # whole blocks overlap-add straight into the output; the last, partial group through scratch
        dst = out[..., s0:s1] if whole else torch.empty(b, n_ears, kb * hop, dtype=x.dtype, device=x.device)
        blocks = dst.view(b, n_ears, kb, hop)
        blocks.copy_(y[..., :hop])
        # block k's tail (taps - 1 ≤ hop samples) lands at the start of block k + 1
        blocks[:, :, 1:, : taps - 1].add_(y[:, :, :-1, hop:])
        if carry is not None:
            dst[..., : taps - 1].add_(carry)
        carry = y[:, :, -1, hop:]
        if not whole:
            out[..., s0:s1].copy_(dst[..., : s1 - s0])
    return out


def mix_convolve(
    x: Tensor, filters: Tensor, mode: ConvolveMode = "auto", *, threads: int | None = 1
) -> Tensor:
    """``y[b, e] = Σ_c filters[b, e, c] * x[b, c]`` truncated to the first ``T`` samples (causal).

    Args:
        x: ``[B, C, T]`` real signals (float32 or float64).
        filters: ``[B or 1, E, C, taps]`` FIR filters of ``x``'s dtype and device.
        mode: ``"full"`` (one long FFT), ``"ola"`` (overlap-add blocks) or ``"auto"``: overlap-add when
            the signal spans more than two blocks and no gradient is needed, since the full path is the
            differentiable reference and equally fast for short signals.
        threads: torch intra-op threads for the overlap-add loop (``None``: torch's setting; see
            :mod:`spatialgen.spatial.threads` for why 1). The full path always uses torch's setting.

    Returns:
        ``[B, E, T]``.
    """
    if mode not in ("auto", "full", "ola"):
        raise ValueError(f"mix_convolve: mode must be 'auto', 'full' or 'ola', got {mode!r}")
    threads = check_threads(threads)
    taps = filters.shape[-1]
    n_fft = ola_fft_size(taps)
    if mode == "auto":
        grad = torch.is_grad_enabled() and (x.requires_grad or filters.requires_grad)
        long = x.shape[-1] > 2 * (n_fft - taps + 1)
        mode = "ola" if long and not grad else "full"
    if mode == "full":
        return _convolve_full(x, filters)
    with intra_op_threads(threads):
        return _convolve_ola(x, filters, n_fft)
