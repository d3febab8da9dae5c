"""Few-row linear products on CPU: the native kernel against oneDNN and F.linear, GB/s of weights read.

Decoding reads every weight once per step for 1-16 rows (batch x guidance branches), so the rate at which
a kernel streams weights sets the step time. Each variant multiplies the same 32 float32 matrices of
4096 x 1024 (512 MB, far beyond the caches) by ``rows`` rows; variants alternate within each round and the
row reports medians over the rounds. ``stream_gb_s`` is ``torch.sum`` over 256 MB in the same run, the
machine's read rate for one thread. The native kernel is single-threaded at every thread count.

    python bench/bench_native.py [--rounds 7] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

from spatialgen.models.visage.stepper import onednn_available
from spatialgen.nn import native
from spatialgen.nn.native import NativeLinear, native_available, native_unavailable_reason

MATRICES, N_OUT, K_IN = 32, 4096, 1024


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _variants(x, rows, weights, huge, small_pages) -> dict:
    """name -> one pass of ``x`` through every matrix with that kernel."""
    variants = {
        "native": lambda: [layer(x) for layer in huge],
        "native_4k_pages": lambda: [layer(x) for layer in small_pages],
        "torch_linear": lambda: [F.linear(x, w) for w in weights],
    }
    if onednn_available():
        packed = [torch.ops.mkldnn._reorder_linear_weight(w, rows) for w in weights]
        variants["onednn"] = lambda: [
            torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "") for p in packed
        ]
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    parser.add_argument("--rows", default="1,2,4,8,16")
    args, _ = parser.parse_known_args()  # run_all.py forwards its own flags
    if not native_available():
        print(f"native kernels unavailable: {native_unavailable_reason()}")
        return
    weights = [torch.randn(N_OUT, K_IN) for _ in range(MATRICES)]
    nbytes = MATRICES * N_OUT * K_IN * 4
    huge = [NativeLinear(w, None) for w in weights]
    plain_buffer = native.weights_buffer
    native.weights_buffer = torch.empty  # the same kernel on ordinary 4 KiB pages
    try:
        small_pages = [NativeLinear(w, None) for w in weights]
    finally:
        native.weights_buffer = plain_buffer
    big = torch.ones(64 * 2**20)
    rows_out = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        stream = statistics.median(_seconds(big.sum) for _ in range(5))
        for rows in [int(r) for r in args.rows.split(",")]:
            variants = _variants(torch.randn(rows, K_IN), rows, weights, huge, small_pages)
            times: dict[str, list[float]] = {name: [] for name in variants}
            for fn in variants.values():
                fn()  # warm-up
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    times[name].append(_seconds(fn))
            row = {"threads": threads, "rows": rows, "stream_gb_s": big.numel() * 4 / stream / 1e9}
            for name, runs in times.items():
                row[f"{name}_gb_s"] = nbytes / statistics.median(runs) / 1e9
            row["native_over_onednn"] = row.get("native_gb_s", 0) / row.get("onednn_gb_s", float("nan"))
            rows_out.append(row)
            print(row, flush=True)
    write_results(
        "native",
        rows_out,
        note=(
            f"GB/s of float32 weights read by y = x W^T over {MATRICES} matrices {N_OUT} x {K_IN}, "
            "medians of interleaved rounds; native = spatialgen.nn.native on 2 MiB pages, native_4k_pages = "
            "the same kernel on ordinary pages; the native kernel is single-threaded"
        ),
    )


if __name__ == "__main__":
    main()
