"""Fast incremental decoding for ViSAGe: one fused step over static, preallocated buffers.

:class:`DecodeStepper` runs the same post-LN decoder as
:class:`~spatialgen.models.visage.decoder.ViSAGeDecoder` (BART layout, Lewis et al. 2020; ViSAGe,
Kim et al. 2025, repository jaeyeonkim99/visage, ``modeling/visage.py``) one position at a time for a
fixed number of rows ``R`` (batch x guidance branches), with everything that does not change across
steps prepared once:

- self-attention keys/values live in one preallocated ``[layers, R, H, capacity, Dh]`` buffer per kind;
  a step writes its position and attends over the written prefix (``static=False``) or over the whole
  buffer with a position mask (``static=True``: every step has the same shapes, so the step can be
  captured in a CUDA graph or compiled once);
- cross-attention keys/values are projected from the encoder states once;
- q/k/v of a layer are one product (their weights concatenated: the same dot products, bit for bit);
- the linear layers and the per-slot output heads use weights packed once for the step's row count,
  by one of three kernels (``kernel``):

  - ``native``: :class:`~spatialgen.nn.native.NativeLinear`, a C kernel compiled on first use that reads
    weights packed for one sequential pass (float32, CPU). A step is a read of all decoder weights, and
    for 1 / 2 / 4 / 8 rows this reads them at about 32 / 30 / 28 / 19 GB/s on one core of the development
    machine, where oneDNN reaches 22 / 13 / 20 / 14 (``bench/bench_native.py``). The packed weights sit on
    2 MiB pages where the OS has them (fewer TLB misses: about +15 %). The dynamic step also attends
    through :func:`~spatialgen.nn.native.attend_one` (one ordered pass over the cache; about half the
    time of PyTorch's SDPA kernel for 8 rows);
  - ``onednn``: ``torch.ops.mkldnn._linear_pointwise`` on weights reordered by ``_reorder_linear_weight``
    (the kernels PyTorch's inductor emits for frozen CPU graphs): many rows, several threads, bf16;
  - ``torch``: ``F.linear`` (GPUs, and float16/float64).

  ``auto`` picks native for float32 CPU steps of up to 8 rows on one thread (up to 2 when PyTorch runs
  several threads, since the native kernel uses one), else oneDNN on CPU, else torch. The kernels order
  their sums differently, so float32 results differ in the last bits; greedy tokens agree except at
  numerical ties (``tests/models/visage/test_stepper.py``; ``bench/visage_official.py`` compares them with
  the official code's).
- ``dtype=torch.bfloat16`` (or ``float16``) stores weights, caches and activations in that type (half
  the bytes per step; logits and guidance stay float32). Tokens then differ from float32 decoding.
- ``compile=True`` runs the static step through ``torch.compile`` (its own kernels, not the ones above).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.models.visage.decoder import POSITION_OFFSET
from spatialgen.nn.native import (
    NativeLinear,
    attend_one,
    attention_supported,
    native_available,
    native_unavailable_reason,
)

__all__ = [
    "KERNELS",
    "DecodeStepper",
    "PackedLinear",
    "PackedWeights",
    "choose_kernel",
    "onednn_available",
    "packed_weights",
]

#: Product kernels of the fast step (see the module doc).
KERNELS = ("auto", "native", "onednn", "torch")
#: ``auto`` takes the native kernel for up to this many rows on one thread, and up to
#: :data:`NATIVE_MAX_ROWS_THREADED` rows when PyTorch runs several (the native kernel is single-threaded).
#: Measured on 32 packed 4096 x 1024 matrices, GB/s of weights read (``bench/bench_native.py``):
#: 1 thread, rows 1/2/4/8: native 32/30/28/19, oneDNN 22/13/20/14; oneDNN on 2 threads: 27/23/29/25.
NATIVE_MAX_ROWS = 8
NATIVE_MAX_ROWS_THREADED = 2


def onednn_available() -> bool:
    """Whether this PyTorch build has the oneDNN linear kernels used on CPU."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def choose_kernel(kernel: str, device: torch.device, dtype: torch.dtype, rows: int, compile: bool) -> str:
    """The concrete kernel for ``kernel`` (one of :data:`KERNELS`) on this device, dtype and row count.

    Raises:
        ValueError: an unknown name, or a kernel that cannot run here (naming what can).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    cpu = device.type == "cpu"
    if compile and kernel not in ("auto", "torch"):
        raise ValueError(f"compile=True uses the compiler's own kernels; leave kernel='auto', not {kernel!r}")
    if kernel == "auto":
        if compile or not cpu:
            return "torch"
        most = NATIVE_MAX_ROWS if torch.get_num_threads() == 1 else NATIVE_MAX_ROWS_THREADED
        if dtype == torch.float32 and rows <= most and native_available():
            return "native"
        return "onednn" if onednn_available() and dtype in (torch.float32, torch.bfloat16) else "torch"
    if kernel == "native" and not (cpu and dtype == torch.float32):
        raise ValueError(f"kernel='native' runs float32 on CPU, not {dtype} on {device.type}")
    if kernel == "onednn" and not (cpu and onednn_available() and dtype in (torch.float32, torch.bfloat16)):
        raise ValueError(
            f"kernel='onednn' runs float32/bfloat16 on a CPU build with oneDNN, not {dtype} here"
        )
    if kernel == "native" and not native_available():
        raise ValueError(f"kernel='native' is unavailable: {native_unavailable_reason()}; use kernel='auto'")
    return kernel


class PackedLinear:
    """``y = x W^T + b`` for inputs of ``rows`` rows, with ``W`` prepared once.

    Args:
        weight, bias: ``[out, in]`` and ``[out]`` (bias may be None).
        rows: number of input rows the packing is tuned for.
        dtype: storage and compute type.
        kernel: ``native``, ``onednn`` (CPU only) or ``torch`` (``F.linear``); see :func:`choose_kernel`.
    """

    def __init__(
        self, weight: Tensor, bias: Tensor | None, rows: int, dtype: torch.dtype, *, kernel: str
    ) -> None:
        w = weight.detach().to(dtype).contiguous()
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous()
        self.kernel = kernel
        self.native = NativeLinear(w, self.bias) if kernel == "native" else None
        if self.native is not None:
            self.weight = self.native.packed  # the packed copy is all the step reads
        elif kernel == "onednn":
            self.weight = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        else:
            self.weight = w

    def __call__(self, x: Tensor) -> Tensor:
        if self.native is not None:
            return self.native(x)
        if self.kernel == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def _linear(module: nn.Linear, rows: int, dtype: torch.dtype, kernel: str) -> PackedLinear:
    return PackedLinear(module.weight, module.bias, rows, dtype, kernel=kernel)


def _norm(module: nn.LayerNorm, dtype: torch.dtype) -> tuple[Tensor, Tensor, float]:
    return module.weight.detach().to(dtype), module.bias.detach().to(dtype), module.eps


class _Layer:
    """One decoder layer's prepared weights."""

    def __init__(self, layer: nn.Module, rows: int, dtype: torch.dtype, kernel: str) -> None:
        sa, ca = layer.self_attn, layer.cross_attn
        qkv_w = torch.cat([sa.q_proj.weight, sa.k_proj.weight, sa.v_proj.weight])
        qkv_b = torch.cat([sa.q_proj.bias, sa.k_proj.bias, sa.v_proj.bias])
        self.qkv = PackedLinear(qkv_w, qkv_b, rows, dtype, kernel=kernel)
        self.self_out = _linear(sa.out_proj, rows, dtype, kernel)
        self.self_norm = _norm(layer.self_attn_norm, dtype)
        self.cross_q = _linear(ca.q_proj, rows, dtype, kernel)
        self.cross_out = _linear(ca.out_proj, rows, dtype, kernel)
        self.cross_norm = _norm(layer.cross_attn_norm, dtype)
        self.fc1 = _linear(layer.ffn.fc1, rows, dtype, kernel)
        self.fc2 = _linear(layer.ffn.fc2, rows, dtype, kernel)
        self.ffn_norm = _norm(layer.ffn_norm, dtype)


class PackedWeights:
    """Everything a step reads that depends on the weights only, prepared for ``rows`` rows.

    Built once per (rows, dtype, kernel, head sets) and reused across :func:`generate` calls while the
    parameters are unchanged (see :func:`packed_weights`).
    """

    def __init__(
        self,
        model: nn.Module,
        rows: int,
        head_keys: tuple[tuple[int, ...], ...],
        dtype: torch.dtype,
        kernel: str,
    ) -> None:
        dec = model.decoder
        d = model.config.d_model
        device = dec.bos.device
        self.layers = [_Layer(layer, rows, dtype, kernel) for layer in dec.layers]
        pos = dec.positions.weight.detach()[POSITION_OFFSET:]
        self.positions = pos.to(dtype).contiguous()
        self.embed_norm = _norm(dec.norm_embed, dtype)
        self.bos = dec.bos.detach().to(dtype).expand(rows, d).contiguous()
        table = dec.token_embedding.detach()
        self.rows_per_stream = table.shape[1]
        self.table = table.reshape(-1, d).to(dtype).contiguous()
        # Heads per schedule slot: [S*V, d] packed once; offsets turn slot ids into table rows.
        self.head_linears: dict[tuple[int, ...], PackedLinear] = {}
        self.stream_offsets: dict[tuple[int, ...], Tensor] = {}
        for key in head_keys:
            streams = torch.tensor(key, dtype=torch.long, device=device)
            w, b = model.heads.select(streams)
            self.head_linears[key] = PackedLinear(w.reshape(-1, d), b.reshape(-1), rows, dtype, kernel=kernel)
            self.stream_offsets[key] = streams * self.rows_per_stream


_PACKED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, PackedWeights]]]
_PACKED = weakref.WeakKeyDictionary()
#: Packings kept per model (each is a copy of the decoder and head weights: 0.8 GB at the published size).
MAX_PACKED = 2


def _signature(model: nn.Module) -> tuple:
    # In-place updates (optimizer steps, load_state_dict) bump a tensor's version; new ones move the pointer.
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def packed_weights(
    model: nn.Module, rows: int, head_keys: tuple[tuple[int, ...], ...], dtype: torch.dtype, kernel: str
) -> PackedWeights:
    """The model's :class:`PackedWeights` for this geometry, rebuilt only when a parameter changed.

    The :data:`MAX_PACKED` most recently used geometries are kept (e.g. batch 1 with and without CFG).
    """
    cache = _PACKED.setdefault(model, {})
    key = (rows, dtype, kernel, head_keys)
    signature = _signature(model)
    hit = cache.pop(key, None)
    if hit is not None and hit[0] != signature:  # the weights changed: every packing of this model is stale
        cache.clear()
        hit = None
    if hit is None:
        while len(cache) >= MAX_PACKED:
            cache.pop(next(iter(cache)))
        hit = (signature, PackedWeights(model, rows, head_keys, dtype, kernel))
    cache[key] = hit  # most recently used last
    return hit[1]


class DecodeStepper:
    """Decoder state and step for ``R = memory.shape[0]`` rows and ``capacity`` positions.

    Args:
        model: a :class:`~spatialgen.models.visage.model.ViSAGe` (eval mode; dropout is not applied).
        memory: encoder states ``[R, M, d]`` of every row (guidance branches stacked).
        capacity: positions to decode (``pattern.sequence_length(frames)``).
        head_sets: stream index tensors whose heads are evaluated together (the pattern's schedule slots).
        dtype: compute type (default: the model's).
        static: attend over the whole cache with a position mask, so every step has the same shapes.
        kernel: product kernel, one of :data:`KERNELS` (default ``auto``; see the module doc).
        compile: run the static step through ``torch.compile`` (implies ``static``; compiled once per
            shape set and process, which takes minutes on a CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        memory: Tensor,
        capacity: int,
        head_sets: list[Tensor],
        *,
        dtype: torch.dtype | None = None,
        static: bool = False,
        kernel: str = "auto",
        compile: bool = False,
    ) -> None:
        dec = model.decoder
        cfg = model.config
        if capacity > cfg.max_target_length:
            raise ValueError(
                f"DecodeStepper: {capacity} positions exceed max_target_length {cfg.max_target_length}"
            )
        device = memory.device
        dtype = dtype or dec.bos.dtype
        R, d = memory.shape[0], cfg.d_model
        try:
            kernel = choose_kernel(kernel, device, dtype, R, compile)
        except ValueError as exc:
            raise ValueError(f"DecodeStepper: {exc}") from None
        static = static or compile
        H = cfg.decoder_heads
        self.rows, self.dim, self.heads, self.head_dim = R, d, H, d // H
        self.capacity, self.static, self.dtype, self.kernel = capacity, static, dtype, kernel
        # The native attention pass (dynamic step only): the static step keeps shape-stable torch ops.
        self.native_attention = kernel == "native" and not static and attention_supported(self.head_dim)
        head_keys = tuple(dict.fromkeys(tuple(int(s) for s in streams.tolist()) for streams in head_sets))
        w = packed_weights(model, R, head_keys, dtype, kernel)
        self.layers, self.embed_norm, self.bos, self.table = w.layers, w.embed_norm, w.bos, w.table
        self.positions = w.positions[:capacity]
        self.rows_per_stream, self.head_linears, self.stream_offsets = (
            w.rows_per_stream,
            w.head_linears,
            w.stream_offsets,
        )
        # Cross-attention K/V once, through the layers' own projections (the plain path's numerics).
        self.cross_kv = [
            tuple(t.to(dtype).contiguous() for t in layer.cross_attn.project_kv(memory))
            for layer in dec.layers
        ]
        shape = (len(self.layers), R, H, capacity, self.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.pad_row = cfg.pad_token  # stream 0's PAD row: zero, the embedding_bag padding index
        self.position = 0
        self.step_index = torch.zeros((), dtype=torch.long, device=device)
        self.key_index = torch.arange(capacity, device=device)
        self._static_step = (
            torch.compile(self._forward_static, dynamic=False, fullgraph=True)
            if compile
            else self._forward_static
        )

    # ------------------------------------------------------------------ inputs
    def embed(self, key: tuple[int, ...], ids: Tensor) -> Tensor:
        """``[R, d]`` sum of the slot's token embeddings for ``ids [R, S]`` (streams ``key``)."""
        index = ids + self.stream_offsets[key]
        return F.embedding_bag(index, self.table, mode="sum", padding_idx=self.pad_row)

    def embed_rows(self, rows: Tensor) -> Tensor:
        """``[R, d]`` summed embeddings of full pattern rows ``[R, K]`` (PAD / negative ids add 0)."""
        K = rows.shape[-1]
        empty = (rows < 0) | (rows >= self.pad_row)
        offsets = torch.arange(K, device=rows.device) * self.rows_per_stream
        index = torch.where(empty, self.pad_row, rows + offsets)
        return F.embedding_bag(index, self.table, mode="sum", padding_idx=self.pad_row)

    # ------------------------------------------------------------------ step
    def step(self, x: Tensor | None) -> Tensor:
        """Decoder output ``[R, d]`` at the next position for inputs ``x [R, d]`` (None = BOS)."""
        p = self.position
        if p >= self.capacity:
            raise ValueError(f"DecodeStepper: all {self.capacity} positions are decoded")
        x = self.bos if x is None else x
        if self.static:
            self.step_index.fill_(p)
            h = self._static_step(x, self.step_index)
        else:
            h = self._forward(x, p)
        self.position = p + 1
        return h

    def _attend_self(self, i: int, q: Tensor, k: Tensor, v: Tensor, p: int) -> Tensor:
        keys, values = self.keys[i], self.values[i]
        keys[:, :, p].copy_(k)
        values[:, :, p].copy_(v)
        if self.native_attention:  # one ordered pass over the cache (see attend_one)
            return attend_one(q[:, :, 0], keys, values, p + 1).unsqueeze(2)
        return F.scaled_dot_product_attention(q, keys[:, :, : p + 1], values[:, :, : p + 1])

    def _attend_cross(self, i: int, q: Tensor) -> Tensor:
        ck, cv = self.cross_kv[i]
        if self.native_attention:
            return attend_one(q[:, :, 0], ck, cv, ck.shape[2]).unsqueeze(2)
        return F.scaled_dot_product_attention(q, ck, cv)

    def _forward(self, x: Tensor, p: int) -> Tensor:
        return self._layers(x, self.positions[p], lambda i, q, k, v: self._attend_self(i, q, k, v, p))

    def _forward_static(self, x: Tensor, index: Tensor) -> Tensor:
        """Position as a 0-d tensor; every shape independent of it (CUDA-graph / compile friendly)."""
        mask = (self.key_index <= index).view(1, -1)  # [1, capacity] True = attend
        pos = self.positions.index_select(0, index.reshape(1))[0]

        def attend(i: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            self.keys[i].index_copy_(2, index.reshape(1), k.unsqueeze(2))
            self.values[i].index_copy_(2, index.reshape(1), v.unsqueeze(2))
            return F.scaled_dot_product_attention(q, self.keys[i], self.values[i], attn_mask=mask)

        return self._layers(x, pos, attend)

    def _layers(self, x: Tensor, pos: Tensor, attend: Callable[..., Tensor]) -> Tensor:
        R, d, H, Dh = self.rows, self.dim, self.heads, self.head_dim
        w, b, eps = self.embed_norm
        h = F.layer_norm(x + pos, (d,), w, b, eps)
        for i, layer in enumerate(self.layers):
            q, k, v = layer.qkv(h).view(R, 3, H, Dh).unbind(1)  # each [R, H, Dh]
            a = attend(i, q.unsqueeze(2), k, v)  # [R, H, 1, Dh]
            w, b, eps = layer.self_norm
            h = F.layer_norm(h + layer.self_out(a.reshape(R, d)), (d,), w, b, eps)
            a = self._attend_cross(i, layer.cross_q(h).view(R, H, 1, Dh))
            w, b, eps = layer.cross_norm
            h = F.layer_norm(h + layer.cross_out(a.reshape(R, d)), (d,), w, b, eps)
            w, b, eps = layer.ffn_norm
            h = F.layer_norm(h + layer.fc2(F.gelu(layer.fc1(h))), (d,), w, b, eps)
        return h

    def logits(self, key: tuple[int, ...], h: Tensor) -> Tensor:
        """Float32 logits ``[R, S, V]`` of the heads ``key`` for decoder outputs ``h [R, d]``."""
        return self.head_linears[key](h).float().view(self.rows, len(key), -1)
