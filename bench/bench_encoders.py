"""Throughput of every visual encoder: input frames per second, preprocessing included.

Usage::

    python bench/bench_encoders.py                      # CPU (+ CUDA when available), default encoder set
    python bench/bench_encoders.py --encoders 'clip_*' --device cuda --frames 64 --dtype bfloat16

Frames are uint8 360x640 (a typical decoded video) and are resized by the encoder. Weights are random
(``pretrained=False``): speed does not depend on the values. Results are merged into
``bench/results/encoders.json`` keyed by device and encoder.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from spatialgen.encoders import create_encoder, list_encoders

# the CPU default skips the large towers (ViT-H, PE): tens of seconds per frame on a small CPU
CPU_DEFAULT = ("tiny", "clip_vit_b32", "synchformer")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(
    name: str, device: torch.device, *, batch: int, frames: int, repeats: int, dtype: torch.dtype
) -> dict:
    """Time ``repeats`` forwards of ``[batch, frames, 3, 360, 640]`` uint8 frames (after one warm-up)."""
    enc = create_encoder(name, pretrained=False, device=device).to(dtype)
    if name == "synchformer":  # whole 16-frame segments with stride 8
        frames = max(16, 16 + 8 * ((frames - 16 + 7) // 8))
    video = torch.randint(0, 256, (batch, frames, 3, 360, 640), dtype=torch.uint8, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = enc(video)  # warm-up (kernels, allocator)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = enc(video)
        _sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "encoder": name,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "batch": batch,
        "frames": frames,
        "input_size": list(enc.input_size),
        "params_m": round(sum(p.numel() for p in enc.parameters()) / 1e6, 2),
        "median_s": round(median, 4),
        "frames_per_s": round(batch * frames / median, 2),
        "features_per_s": round(out.global_features.shape[0] * out.global_features.shape[1] / median, 2),
        "output_shape": list(out.global_features.shape),
    }
    if device.type == "cuda":
        result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    del enc, video, out
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoders", default=None, help="glob or comma list (default: all on CUDA, a subset on CPU)"
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda or auto (= cpu, plus cuda when available)"
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--frames", type=int, default=8, help="frames per video (Synchformer: rounded to segments)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "encoders.json")
    args = parser.parse_args(argv)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [torch.device(args.device)]
    out_path: Path = args.out
    report = json.loads(out_path.read_text()) if out_path.exists() else {"results": {}}
    for device in devices:
        if args.encoders is None:
            names = list(CPU_DEFAULT) if device.type == "cpu" else list_encoders()
        else:
            names = sorted(
                {n for pat in args.encoders.split(",") for n in fnmatch.filter(list_encoders(), pat)}
            )
        dtype = DTYPES[args.dtype] if device.type == "cuda" else torch.float32
        for name in names:
            res = bench_one(
                name, device, batch=args.batch, frames=args.frames, repeats=args.repeats, dtype=dtype
            )
            report["results"][f"{device.type}/{res['dtype']}/{name}"] = res
            print(
                f"{device.type:4s} {res['dtype']:8s} {name:20s} {res['frames_per_s']:10.2f} frames/s  "
                f"({res['median_s']:.3f} s for {res['batch']}x{res['frames']} frames, {res['params_m']} M params)",
                flush=True,
            )
        info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor()}
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
        report.setdefault("machines", {})[device.type] = info
    report["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
