"""ViSAGe generation side by side with the official code, and the per-step floor (used by bench_visage.py).

Official side: the peers tool ``visage_official_dump.py``, run in an interpreter that has
transformers==4.40.2, writes ``VisageForAmbisonicsGeneration`` (jaeyeonkim99/visage, ``modeling/visage.py``)
with seeded weights and inputs; a worker in that interpreter loads the folder with the official class and
times its greedy ``generate_cfg`` with the tool's own timing helper ("no CFG" is ``guidance_scale=0``,
which still runs the unconditional pass). Our side: the same weights through
:func:`spatialgen.models.visage.load_official` and the same inputs. Official and our calls alternate one
by one (a shared machine's slow phases hit both), medians of the repeats.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from spatialgen.models.visage import generate, get_config, load_official
from spatialgen.models.visage import stepper as stepper_module
from spatialgen.models.visage.convert import AMBIX_TO_IMAGE

SIZES = {
    "d256": {"d_model": 256, "enc_layers": 4, "dec_layers": 4, "heads": 4, "ffn": 1024},
    "full": {"d_model": 1024, "enc_layers": 6, "dec_layers": 12, "heads": 16, "ffn": 4096},
}
# Our engines: name -> generate() keywords.
VARIANTS = {
    "fast": {},  # kernel="auto": the native kernel for float32 CPU steps of up to 8 rows on one thread
    "fast_onednn": {"kernel": "onednn"},
    "plain": {"engine": "plain"},
    "fast_bf16": {"dtype": torch.bfloat16},
}
DEFAULT_VARIANTS = {
    "d256": ["fast", "fast_onednn", "plain", "fast_bf16"],
    "full": ["fast", "fast_onednn", "fast_bf16"],
}


def _median_time(fn, repeats: int) -> tuple[float, list[float], Any]:
    runs, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs, out


# ---------------------------------------------------------------------------------------------- floor
def measure_machine() -> dict[str, float]:
    """Single-thread read bandwidth (sum over 256 MB) and float32 GEMM rate (1024^3), medians of 5."""
    big = torch.ones(64 * 2**20)
    bw, _, _ = _median_time(lambda: big.sum(), 5)
    a = torch.randn(1024, 1024)
    mm, _, _ = _median_time(lambda: a @ a, 5)
    return {"bandwidth_gb_s": big.numel() * 4 / bw / 1e9, "gemm_gflop_s": 2 * 1024**3 / mm / 1e9}


def step_cost(
    d: int, ffn: int, layers: int, vocab: int, streams: float, rows: int, position: float, memory: int
) -> dict[str, float]:
    """FLOPs and float32 bytes of one decoder step over ``rows`` rows (weights read once per step).

    Weights per layer: fused q/k/v (3d^2), self out, cross q, cross out (d^2 each), FFN (2 d ffn), biases
    and LayerNorms; heads: ``streams`` x vocab x d. Caches: self K/V up to ``position`` and cross K/V of
    ``memory`` encoder states, per row and layer. Embedding lookups and sampling are negligible.
    """
    layer_w = 6 * d * d + 2 * d * ffn + 9 * d + ffn + 6 * d
    head_w = streams * vocab * (d + 1)
    weight_bytes = 4 * (layers * layer_w + head_w)
    cache_bytes = 4 * layers * rows * 2 * d * (position + memory)
    matmul = layers * (6 * d * d + 2 * d * ffn) + streams * vocab * d
    attn = layers * 4 * d * (position + memory)
    flops = 2 * rows * matmul + rows * attn
    return {"weight_bytes": weight_bytes, "cache_bytes": cache_bytes, "flops": flops}


def step_floor_rows(frames: int = 20) -> list[dict[str, Any]]:
    """Floor of a decoder step for both sizes, batch 1 and 8, without and with joint CFG (5-s clips)."""
    cfg = get_config("visage")
    from spatialgen.models.visage.patterns import create_pattern

    pattern = create_pattern(cfg.pattern, cfg.num_channels, cfg.num_codebooks)
    num_frames = int(frames / 4 * 86)
    schedule = pattern.schedule(num_frames)
    L = len(schedule)
    streams = sum(len(s) for s in schedule) / L
    machine = measure_machine()
    rows = []
    for size, dims in SIZES.items():
        for batch in (1, 8):
            for guidance, n in (("none", 1), ("joint", 2)):
                R = batch * n
                c = step_cost(
                    dims["d_model"],
                    dims["ffn"],
                    dims["dec_layers"],
                    cfg.codebook_size,
                    streams,
                    R,
                    L / 2,
                    frames + 2,
                )
                total = c["weight_bytes"] + c["cache_bytes"]
                t_bytes = total / (machine["bandwidth_gb_s"] * 1e9)
                t_flops = c["flops"] / (machine["gemm_gflop_s"] * 1e9)
                # Official layout: conditional and unconditional branches are separate passes (decoder weights
                # read twice, also with guidance 0); each head's weights are reused hot for the second call.
                dec_w = c["weight_bytes"] - 4 * streams * cfg.codebook_size * (dims["d_model"] + 1)
                official_bytes = c["weight_bytes"] + dec_w + c["cache_bytes"] * (2 if n == 1 else 1)
                rows.append(
                    {
                        "task": "floor",
                        "size": size,
                        **dims,
                        "batch": batch,
                        "guidance": guidance,
                        "rows": R,
                        "decoder_steps": L,
                        "mean_heads_per_step": streams,
                        "flops_per_step": c["flops"],
                        "bytes_per_step": total,
                        "weight_bytes_per_step": c["weight_bytes"],
                        "official_bytes_per_step": official_bytes,
                        "flops_per_byte": c["flops"] / total,
                        "bandwidth_gb_s": machine["bandwidth_gb_s"],
                        "gemm_gflop_s": machine["gemm_gflop_s"],
                        "floor_step_s": max(t_bytes, t_flops),
                        "bound": "memory" if t_bytes >= t_flops else "compute",
                        "floor_generate_s": L * max(t_bytes, t_flops),
                        "official_floor_generate_s": L
                        * max(official_bytes / (machine["bandwidth_gb_s"] * 1e9), t_flops),
                        "threads": torch.get_num_threads(),
                    }
                )
    return rows


# ------------------------------------------------------------------------------------------- official
def _parse_map(text: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in text.split(",") if item)


# Runs in the official interpreter: loads a dump folder with the official class and times its greedy
# generate_cfg through the peers tool's own timing helper, one call per request line ("batch scale out").
WORKER = """
import json, os, sys, torch
from safetensors.torch import load_file, save_file
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import visage_official_dump as tool
torch.set_num_threads(int(sys.argv[3]))
visage, _, _ = tool.import_official(os.environ["VISAGE_OFFICIAL_SRC"])
model = visage.VisageForAmbisonicsGeneration.from_pretrained(sys.argv[2], attn_implementation="sdpa").eval()
inp = load_file(os.path.join(sys.argv[2], "inputs.safetensors"))
print("ready", flush=True)
for line in sys.stdin:
    b, scale, out = line.split()
    codes, dt = tool.run_generate(model, inp, int(b), torch.device("cpu"), float(scale), 0)
    save_file({"codes": codes}, out)
    print(json.dumps({"s": dt}), flush=True)
"""


def make_dump(args, size: str, out: Path, frames: int, batch: int) -> None:
    """Seeded official weights (constants perturbed) and inputs, written by the peers tool."""
    dims = SIZES[size]
    cmd = [args.official_python, args.peers_script, str(out), "--frames", str(frames)]
    cmd += ["--d-model", str(dims["d_model"]), "--enc-layers", str(dims["enc_layers"])]
    cmd += ["--dec-layers", str(dims["dec_layers"]), "--heads", str(dims["heads"]), "--ffn", str(dims["ffn"])]
    cmd += ["--threads", str(torch.get_num_threads()), "--batch", str(batch), "--tf-batch", "1"]
    cmd += ["--skip-generation", "--perturb-constants", "0.02"]
    env = dict(os.environ, VISAGE_OFFICIAL_SRC=args.official_src)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


class OfficialWorker:
    """The official model in its own interpreter, timing one greedy ``generate_cfg`` call per request."""

    def __init__(self, args, dump: Path) -> None:
        env = dict(os.environ, VISAGE_OFFICIAL_SRC=args.official_src)
        cmd = [args.official_python, "-c", WORKER, args.peers_script, str(dump), str(torch.get_num_threads())]
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.dump = dump
        if self._line() != "ready":
            raise RuntimeError("official worker did not start")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"official worker exited ({self.proc.wait()})")
        return line.strip()

    def generate(self, batch: int, scale: float) -> tuple[float, torch.Tensor]:
        out = self.dump / "worker_codes.safetensors"
        self.proc.stdin.write(f"{batch} {scale} {out}\n")
        self.proc.stdin.flush()
        seconds = json.loads(self._line())["s"]
        return seconds, load_file(str(out))["codes"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _as_official(codes: torch.Tensor, frames_out: int) -> torch.Tensor:
    """Our ``[B, C, Q, F]`` -> the official ``[B, R, C*Q]`` (last frame repeated up to ``R``)."""
    B, C, Q, F_ = codes.shape
    if frames_out > F_:
        codes = torch.cat([codes, codes[..., -1:].expand(B, C, Q, frames_out - F_)], dim=-1)
    return codes.permute(0, 3, 1, 2).reshape(B, frames_out, C * Q)


def official_conditions(inp: dict[str, torch.Tensor], batch: int) -> tuple[torch.Tensor, ...]:
    """The dump's inputs for our model: the camera direction moves from the official image frame to AmbiX.

    The converter folds the frame change into the direction MLP (``W' = W M``), so the official vector
    ``d_image`` must be fed as ``d_ambix = Mᵀ d_image`` (row vector: ``d_image @ M``); fed unchanged, the
    conditioning differs and the greedy tokens diverge from the first frame.
    """
    clip, energy, direction = (inp[k][:batch].float() for k in ("clip_embeds", "energy_map", "direction"))
    return clip, energy, (direction.double() @ AMBIX_TO_IMAGE).float()


def ours_generate(model, cond, guidance: str, kw: dict, frames: int) -> torch.Tensor:
    """Our greedy generation with the official scale (2.5)."""
    return generate(
        model, *cond, num_frames=frames, guidance=guidance, guidance_scale=2.5, do_sample=False, **kw
    )


def official_rows(args, size: str) -> list[dict[str, Any]]:
    """Official and our calls alternate one by one; one row per (size, batch, guidance, engine).

    Per (batch, guidance) and repeat: one official call, then one call of each of our engines, so slow
    phases of a shared machine hit both sides alike. "No CFG" is the official ``guidance_scale=0``.
    """
    frames_of = {k: int(v) for k, v in _parse_map(args.official_frames).items()}
    batches_of = {k: [int(b) for b in v.split("+")] for k, v in _parse_map(args.official_batches).items()}
    rows: list[dict[str, Any]] = []
    frames, batches = frames_of[size], batches_of[size]
    dump = Path(args.work_dir) / f"{size}_f{frames}"
    dump.mkdir(parents=True, exist_ok=True)
    if not (dump / "inputs.safetensors").is_file():  # a finished dump is reused
        make_dump(args, size, dump, frames, max(batches))
    model = load_official(dump).eval()
    inp = load_file(str(dump / "inputs.safetensors"))
    worker = OfficialWorker(args, dump)
    # Keep every variant's packed weights (the default keeps 2 per model): re-packing 0.8 GB inside a
    # timed call would be measured as decoding time.
    variants = args.official_variants.split(",") if args.official_variants else DEFAULT_VARIANTS[size]
    stepper_module.MAX_PACKED = max(stepper_module.MAX_PACKED, 2 * len(variants))
    num_frames = int(frames / 4 * 86)  # the official target length
    steps = model.pattern.sequence_length(num_frames)
    try:
        for b in batches:
            cond = official_conditions(inp, b)
            modes = [m for m in (("none", 0.0), ("joint", 2.5)) if m[0] in args.official_modes.split(",")]
            for guidance, scale in modes:
                worker.generate(b, scale)  # warm-up (as the peers tool's own)
                for v in variants:  # warm-up on 2 frames: packs the weights for this row count
                    ours_generate(model, cond, guidance, VARIANTS[v], 2)
                times: dict[str, list[float]] = {v: [] for v in ["official", *variants]}
                codes: dict[str, torch.Tensor] = {}
                for _ in range(args.repeats):
                    seconds, codes["official"] = worker.generate(b, scale)
                    times["official"].append(seconds)
                    for v in variants:
                        call = partial(ours_generate, model, cond, guidance, VARIANTS[v], num_frames)
                        seconds, _, codes[v] = _median_time(call, 1)
                        times[v].append(seconds)
                official = codes["official"]
                t_off = statistics.median(times["official"])
                for v in variants:
                    mine = _as_official(codes[v], official.shape[1])
                    t = statistics.median(times[v])
                    rows.append(
                        {
                            "task": "official_compare",
                            "size": size,
                            **SIZES[size],
                            "clip_frames": frames,
                            "decoder_steps": steps,
                            "batch": b,
                            "guidance": guidance,
                            "engine": v,
                            "official_s": t_off,
                            "official_runs_s": times["official"],
                            "ours_s": t,
                            "ours_runs_s": times[v],
                            "speedup": t_off / t,
                            "speedup_per_repeat": [o / m for o, m in zip(times["official"], times[v])],
                            "tokens_identical": bool(torch.equal(mine, official)),
                            "token_agreement": float((mine == official).float().mean()),
                            "threads": torch.get_num_threads(),
                        }
                    )
                    print(
                        f"{size} {v} b={b} {guidance}: official {t_off:.2f} s, ours {t:.2f} s, "
                        f"x{t_off / t:.2f}, identical={rows[-1]['tokens_identical']}",
                        flush=True,
                    )
    finally:
        worker.close()
    return rows
