"""ViSAGe benchmark: training tokens/s (forward + backward) and generation real-time factor.

Workload: random weights and random conditions (speed does not depend on their values), one clip length
from the config (5 s). Reported per config and device:

- ``train``: ``tokens_per_s`` = codec tokens (B x C x Q x F) per second of forward + backward + AdamW step;
- ``generate``: ``rtf`` = seconds of generated 5-s FOA audio per second of compute (token generation only;
  codec decoding is timed by bench_codecs.py), batch 1 and 8, without guidance and with joint CFG
  (both branches batched);
- ``peak_mem_mb``: peak CUDA memory allocated, or the process peak RSS on CPU (an upper bound).

Default: ``visage_small`` on CPU; the full-size config (358.6 M) runs on CUDA when available
(bf16 autocast for training, as the official recipe's mixed precision; float32 generation).

``--official-src CHECKOUT --official-python PY`` adds the side-by-side rows against the official code
(jaeyeonkim99/visage, ``modeling/visage.py`` ``generate_cfg``): the peers dump tool (``--peers-script``)
writes seeded official weights and inputs, a worker in that interpreter loads them with the official class
and times its greedy generation call by call, alternating with our engines on the same weights (through
:func:`spatialgen.models.visage.load_official`) and inputs. Rows ``task=official_compare`` hold both
medians, their ratio and whether the greedy tokens are identical to the official ones. Rows ``task=floor``
give FLOPs and bytes per decoder step and the time floor at the single-thread bandwidth and GEMM rate
measured in the same run (``visage_official.step_floor_rows``).
"""

from __future__ import annotations

import argparse
import json
import resource

import torch
from common import RESULTS, timeit, write_results
from visage_official import official_rows, step_floor_rows

from spatialgen.models.visage import ViSAGe, generate, get_config, stream_cross_entropy


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def inputs(cfg, batch: int, device: str):
    g = torch.Generator().manual_seed(0)
    T = cfg.source_length
    visual = torch.randn(batch, T, cfg.d_visual, generator=g)
    energy = torch.rand(batch, T, cfg.energy_map_dim, generator=g) if cfg.energy_map_dim else None
    direction = torch.nn.functional.normalize(torch.randn(batch, 3, generator=g), dim=-1)
    codes = torch.randint(0, cfg.codebook_size, (batch, cfg.num_channels, cfg.num_codebooks, cfg.num_frames))
    move = lambda x: None if x is None else x.to(device)  # noqa: E731
    return move(visual), move(energy), move(direction if cfg.use_direction else None), codes.to(device)


def bench_train(name: str, device: str, batch: int, amp: bool) -> dict:
    cfg = get_config(name)
    model = ViSAGe(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    visual, energy, direction, codes = inputs(cfg, batch, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
            logits = model(visual, codes, energy, direction).logits
        loss, _ = stream_cross_entropy(logits, codes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timeit(step, repeats=3, warmup=1, device=device)
    tokens = codes.numel()
    row = {
        "task": "train",
        "config": name,
        "device": device,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "bf16_autocast": amp,
        "step_s": seconds,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / seconds,
        "peak_mem_mb": peak_memory_mb(device),
    }
    print(f"train {name} {device} b={batch}: {row['tokens_per_s']:.0f} tokens/s", flush=True)
    return row


def bench_generate(name: str, device: str, batches: list[int], repeats: int) -> list[dict]:
    cfg = get_config(name)
    model = ViSAGe(cfg).to(device).eval()
    rows = []
    for batch in batches:
        visual, energy, direction, _ = inputs(cfg, batch, device)
        for guidance in ("none", "joint"):
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            gen = torch.Generator(device).manual_seed(0)

            def run(guidance=guidance, visual=visual, energy=energy, direction=direction, gen=gen) -> None:
                generate(model, visual, energy, direction, guidance=guidance, top_k=256, generator=gen)

            seconds = timeit(run, repeats=repeats, warmup=1, device=device)
            rows.append(
                {
                    "task": "generate",
                    "config": name,
                    "device": device,
                    "batch": batch,
                    "guidance": guidance,
                    "decoder_steps": model.pattern.sequence_length(cfg.num_frames),
                    "clip_seconds": cfg.clip_seconds,
                    "generate_s": seconds,
                    "rtf": batch * cfg.clip_seconds / seconds,
                    "peak_mem_mb": peak_memory_mb(device),
                }
            )
            print(
                f"generate {name} {device} b={batch} cfg={guidance}: {rows[-1]['rtf']:.2f}x real time",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--full", action="store_true", help="also run the full-size config on CPU (slow)")
    parser.add_argument("--train-batch", type=int, default=4, help="training batch on CPU (default 4)")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU intra-op threads (default: torch's; 1 on a shared CPU)"
    )
    parser.add_argument(
        "--official-src", default=None, help="checkout of jaeyeonkim99/visage (side-by-side rows)"
    )
    parser.add_argument("--official-python", default=None, help="interpreter with transformers==4.40.2")
    parser.add_argument("--peers-script", default=None, help="path of the peers tool visage_official_dump.py")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per official_compare variant")
    parser.add_argument("--official-sizes", default="d256,full", help="comma list of d256 / full")
    parser.add_argument("--official-frames", default="d256:8,full:2", help="CLIP frames per size (4 fps)")
    parser.add_argument("--official-batches", default="d256:1+4,full:1", help="generation batches per size")
    parser.add_argument("--official-modes", default="none,joint", help="guidance modes (none / joint)")
    parser.add_argument(
        "--official-variants", default="", help="comma list of our engines (default: all for the size)"
    )
    parser.add_argument("--skip-floor", action="store_true", help="no floor rows (re-measuring comparisons)")
    parser.add_argument("--work-dir", default="/tmp/visage_bench", help="where the official dumps go")
    args, _ = parser.parse_known_args()  # run_all.py forwards its own flags to every benchmark
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.official_src:
        if not (args.official_python and args.peers_script):
            parser.error("--official-src needs --official-python and --peers-script")
        new = [] if args.skip_floor else step_floor_rows()
        merge_results(new)
        for size in args.official_sizes.split(","):  # written after each size
            new += official_rows(args, size)
            merge_results(new)
        return
    rows = [bench_train("visage_small", "cpu", args.train_batch, amp=False)]
    rows += bench_generate("visage_small", "cpu", [1, 8], repeats=1)
    if args.full:
        rows.append(bench_train("visage", "cpu", 1, amp=False))
    if torch.cuda.is_available() and not args.cpu_only:
        rows.append(bench_train("visage_small", "cuda", 32, amp=True))
        rows += bench_generate("visage_small", "cuda", [1, 8], repeats=2)
        rows.append(bench_train("visage", "cuda", 16, amp=True))
        rows += bench_generate("visage", "cuda", [1, 8], repeats=1)
    merge_results(rows, note=NOTE)


NOTE = (
    "tokens_per_s = codec tokens (B*C*Q*F) per second of fwd+bwd+AdamW; rtf = seconds of 5-s FOA "
    "audio generated per compute second (tokens only, top-k 256; joint CFG batches both branches); "
    "peak_mem_mb = CUDA max allocated, or process peak RSS on CPU; official_compare: official and our "
    "calls alternate one by one, medians of the repeats, speedup = official / ours, same seeded weights "
    "(constants perturbed) and inputs, greedy, tokens compared with the official call's; floor: per decoder "
    "step, bytes = weights + caches read, "
    "time = max(bytes / bandwidth, flops / gemm rate) measured on this machine in the same run"
)


IDENTITY = ("task", "config", "size", "clip_frames", "device", "batch", "guidance", "engine", "bf16_autocast")


def merge_results(rows: list[dict], note: str = NOTE) -> None:
    """Write ``rows`` into results/visage.json, replacing only the earlier rows they re-measure."""
    path = RESULTS / "visage.json"
    old = json.loads(path.read_text())["results"] if path.is_file() else []

    def identity(row: dict) -> tuple:
        return tuple(row.get(k) for k in IDENTITY)

    new = {identity(r) for r in rows}
    write_results("visage", [r for r in old if identity(r) not in new] + rows, note=note)


if __name__ == "__main__":
    main()
