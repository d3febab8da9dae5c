"""Native CPU kernels for decoding, compiled from C on first use.

``linear.c`` holds a few-row linear layer over weights packed for one sequential read (see its header),
and single-query attention over a key/value cache. Decoding multiplies a few rows by every weight matrix,
so its time is the time to read the weights, and PyTorch's CPU kernels (MKL, oneDNN) read them at about
two thirds of one core's streaming bandwidth for such products (``bench/bench_native.py`` measures both).

The C source ships with the package. The first use compiles it with the system C compiler (``$CC``, else
``cc``, ``gcc`` or ``clang``) for this machine (``-O3 -march=native``) into ``$SPATIALGEN_KERNEL_CACHE``
(default ``~/.cache/spatialgen/kernels``), under a name hashed from the source, the compiler, the flags and
the CPU, and loads it with :mod:`ctypes`. Nothing requires it: without a compiler, or with
``SPATIALGEN_NATIVE=0``, :func:`native_available` is False (:func:`native_unavailable_reason` says why)
and callers use PyTorch's kernels.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import mmap
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "NativeLinear",
    "attend_one",
    "attention_supported",
    "kernel_cache_dir",
    "native_available",
    "native_unavailable_reason",
    "weights_buffer",
]

SOURCE = Path(__file__).with_name("linear.c")
#: Width of the packed output blocks (``BLOCK`` in ``linear.c``; checked when the library loads).
BLOCK = 16
#: The largest head size :func:`attend_one` takes (``MAX_DIM`` in ``linear.c``).
MAX_ATTENTION_DIM = 256
DISABLE_ENV = "SPATIALGEN_NATIVE"
CACHE_ENV = "SPATIALGEN_KERNEL_CACHE"
_FLAGS = ("-O3", "-ffp-contract=fast", "-fPIC", "-shared")


_HUGE_PAGE = 2 << 20


def weights_buffer(numel: int) -> Tensor:
    """Uninitialised float32 storage for packed weights, on transparent huge pages where the OS has them.

    A step streams every weight once; through 4 KiB pages that is a TLB miss every 4 KiB, and 2 MiB pages
    read about a fifth faster on the development machine (``bench/bench_native.py``). The storage is an
    anonymous mapping advised ``MADV_HUGEPAGE`` before it is written, aligned to 2 MiB inside a mapping
    2 MiB larger (untouched pages cost address space only). Elsewhere it is a plain ``torch.empty``.
    """
    nbytes = numel * 4
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None or nbytes < _HUGE_PAGE:
        return torch.empty(numel)
    try:
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # private: shared anonymous memory gets no THP
        mapping = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=flags)
        mapping.madvise(advice)
    except (OSError, ValueError):
        return torch.empty(numel)
    raw = torch.frombuffer(mapping, dtype=torch.uint8)  # keeps the mapping alive
    start = -raw.data_ptr() % _HUGE_PAGE
    return raw[start : start + nbytes].view(torch.float32)


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept (``$SPATIALGEN_KERNEL_CACHE`` overrides)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spatialgen" / "kernels"


def _compiler() -> str | None:
    for name in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: the machine and, on Linux, the CPU's feature flags."""
    text = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:  # Linux; elsewhere the processor name
        for line in f:
            if line.startswith(("flags", "Features")):
                return text + line
    return text + platform.processor()


def _compile(cc: str, out: Path) -> str | None:
    """Build ``linear.c`` into ``out`` (atomically); returns an error text or None."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        last = ""
        for arch in (["-march=native"], []):  # some compilers or targets lack -march=native
            cmd = [cc, *_FLAGS, *arch, "-o", tmp, str(SOURCE), "-lm"]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as exc:
                return f"{cc} failed: {exc}"
            if done.returncode == 0:
                os.replace(tmp, out)
                return None
            lines = (done.stderr or done.stdout).strip().splitlines()
            last = lines[-1] if lines else f"exit {done.returncode}"
        return f"{cc} failed: {last}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL | None, str]:
    """The loaded kernel library, or None and the reason."""
    if os.environ.get(DISABLE_ENV, "1").strip() in ("0", "false", "no", "off"):
        return None, f"disabled by {DISABLE_ENV}=0"
    cc = _compiler()
    if cc is None:
        return None, "no C compiler found (set CC, or install gcc or clang)"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{cc} --version failed: {exc}"
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), cc.encode(), version.encode(), " ".join(_FLAGS).encode()):
        key.update(part + b"\0")
    key.update(_cpu_identity().encode())
    path = kernel_cache_dir() / f"linear-{key.hexdigest()[:20]}.so"
    if not path.is_file():
        try:
            error = _compile(cc, path)
        except OSError as exc:  # an unwritable cache folder
            error = f"cannot write {path.parent}: {exc}"
        if error:
            return None, error
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        return None, f"cannot load {path}: {exc}"
    lib.sg_block.restype = ctypes.c_int64
    lib.sg_max_dim.restype = ctypes.c_int64
    if (lib.sg_block(), lib.sg_max_dim()) != (BLOCK, MAX_ATTENTION_DIM):
        return None, f"{path}: built for other block / head sizes than this module"
    fn = lib.sg_linear_f32
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_void_p] + [ctypes.c_int64] * 4
    fn = lib.sg_attend_one_f32
    fn.restype = None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ptr, i64, i64, ptr, ptr, i64, i64, i64, i64, ctypes.c_float, ptr, ptr]
    return lib, ""


def native_available() -> bool:
    """Whether the native kernels compiled and loaded on this machine (compiles them on first call)."""
    return _library()[0] is not None


def native_unavailable_reason() -> str:
    """Why :func:`native_available` is False ("" when it is True)."""
    return _library()[1]


class NativeLinear:
    """``y = x W^T + b`` for a few float32 CPU rows, with ``W`` packed once for a sequential read.

    Args:
        weight: ``[out, in]`` float32 (any device/dtype; copied to packed CPU float32).
        bias: ``[out]`` or None.

    Raises:
        RuntimeError: the native kernels are unavailable (see :func:`native_unavailable_reason`).
    """

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        lib, reason = _library()
        if lib is None:
            raise RuntimeError(f"native kernels unavailable: {reason}")
        self._fn = lib.sg_linear_f32
        n_out, k_in = weight.shape
        blocks = -(-n_out // BLOCK)
        w = weight.detach().to("cpu", torch.float32)
        if blocks * BLOCK != n_out:
            w = torch.cat([w, w.new_zeros(blocks * BLOCK - n_out, k_in)])
        # [blocks, in, 16]: the 16 outputs of a block side by side for each input feature.
        self.packed = weights_buffer(w.numel()).view(blocks, k_in, BLOCK)
        self.packed.copy_(w.view(blocks, BLOCK, k_in).transpose(1, 2))
        self.bias = None if bias is None else bias.detach().to("cpu", torch.float32).contiguous()
        self.out_features, self.in_features = n_out, k_in

    def __call__(self, x: Tensor) -> Tensor:
        """``x [R, in]`` (float32, CPU) -> ``[R, out]``."""
        if (
            x.dtype != torch.float32
            or x.device.type != "cpu"
            or x.dim() != 2
            or x.shape[1] != self.in_features
        ):
            raise ValueError(
                f"NativeLinear: expected a float32 CPU tensor [R, {self.in_features}], "
                f"got {x.dtype} {x.device.type} {tuple(x.shape)}"
            )
        if x.stride(1) != 1:
            x = x.contiguous()
        rows = x.shape[0]
        y = torch.empty(rows, self.out_features, dtype=torch.float32)
        bias = 0 if self.bias is None else self.bias.data_ptr()
        self._fn(self.packed.data_ptr(), bias, x.data_ptr(), x.stride(0), y.data_ptr(), self.out_features,
                 rows, self.out_features, self.in_features)  # fmt: skip
        return y


def attention_supported(dim: int) -> bool:
    """Whether :func:`attend_one` takes heads of ``dim`` features (a multiple of 16, at most 256)."""
    return dim % BLOCK == 0 and 0 < dim <= MAX_ATTENTION_DIM


def attend_one(q: Tensor, keys: Tensor, values: Tensor, length: int) -> Tensor:
    """Single-query attention of every (row, head) over the first ``length`` cached positions.

    ``out[r, h] = softmax(q[r, h] K[r, h, :length]^T / sqrt(dim)) V[r, h, :length]``: what
    ``F.scaled_dot_product_attention`` computes for one query, reading each cached key and value once in
    order (PyTorch's CPU kernel takes about twice as long at 8 rows and long caches: ``bench/bench_native.py``).

    Args:
        q: ``[R, H, dim]`` float32 CPU; heads ``dim`` floats apart, rows any distance apart (so the query
            third of a fused q/k/v product can be passed as a view).
        keys, values: contiguous ``[R, H, capacity, dim]`` caches with ``length <= capacity``.

    Returns:
        ``[R, H, dim]`` float32.
    """
    lib, reason = _library()
    if lib is None:
        raise RuntimeError(f"native kernels unavailable: {reason}")
    R, H, dim = q.shape
    capacity = keys.shape[2]
    ok = (
        q.dtype == keys.dtype == values.dtype == torch.float32
        and q.device.type == keys.device.type == values.device.type == "cpu"
        and q.stride(2) == 1
        and q.stride(1) == dim
        and keys.shape == values.shape == (R, H, capacity, dim)
        and keys.is_contiguous()
        and values.is_contiguous()
        and attention_supported(dim)
        and 0 < length <= capacity
    )
    if not ok:
        raise ValueError(
            f"attend_one: expected float32 CPU q [R, H, dim] (heads dim apart) and contiguous caches "
            f"[R, H, capacity, dim] with dim a multiple of {BLOCK} up to {MAX_ATTENTION_DIM} and "
            f"0 < length <= capacity; got q {tuple(q.shape)} {q.dtype}, keys {tuple(keys.shape)}, "
            f"values {tuple(values.shape)}, length {length}"
        )
    out = torch.empty(R, H, dim, dtype=torch.float32)
    scratch = torch.empty(length, dtype=torch.float32)
    lib.sg_attend_one_f32(q.data_ptr(), H, q.stride(0), keys.data_ptr(), values.data_ptr(), capacity, length,
                          R * H, dim, dim**-0.5, scratch.data_ptr(), out.data_ptr())  # fmt: skip
    return out
