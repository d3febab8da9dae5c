"""ViSAudio benchmark: training samples/s and sampling real-time factor for 8 s binaural clips.

Workload: random features at the config's rates, random weights (speed does not depend on them).
Training = one AdamW step on the flow-matching loss (batch ``--batch``); sampling = 25 Euler steps with
CFG batched (conditional + unconditional in one forward), joint and sequential (Gauss-Seidel) ear
updates. ``rtf`` = audio seconds generated per wall second (per clip, batch 1). Small configs on CPU;
``S_16k`` on CUDA when available. Peak memory: CUDA max allocated, or the process max RSS on CPU.

``--mmaudio`` adds (keeping the other rows): per ``ear_attention`` option the parameter count and the
median CPU time of one CFG-batched forward (``--configs``, 8 s); and for ``--pe-config`` (S_16k) at batch 1
the peak RSS added by preparing the conditions (cond + null) with the Perception-Encoder pooling as it
was (``materialised``: per-ear ``[B, 2, T, P, Dp]`` tokens) and as it is (``lean``), each in a fresh
process, plus a 25-step CFG sample time per variant: conditioning + 25 x the mean of ``--steps`` timed
CFG Euler steps (the steps themselves do not depend on the variant; few are timed on a slow CPU).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import RESULTS, timeit, write_results

from spatialgen.models.visaudio import ViSAudioNet, flow_matching_loss, generate, visaudio_config
from spatialgen.models.visaudio.conditioning import SpacetimeConditioning, linear_time_matrix


def features(cfg, batch, device):
    gen = torch.Generator().manual_seed(0)
    d = cfg.duration
    shapes = [
        (batch, cfg.clip_len(d), cfg.clip_dim),
        (batch, cfg.sync_len(d), cfg.sync_dim),
        (batch, cfg.pe_len(d), cfg.pe_tokens, cfg.pe_dim),
    ]
    return [torch.randn(*s, generator=gen).to(device) for s in shapes]


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(name: str, device: str, batch: int, steps: int) -> list[dict]:
    cfg = visaudio_config(name, duration=8.0)
    net = ViSAudioNet(cfg).to(device)
    params = sum(p.numel() for p in net.parameters())
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    clip, sync, pe = features(cfg, batch, device)
    x1 = torch.randn(batch, 2, cfg.latent_dim, cfg.latent_len(), device=device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def train_step():
        with autocast:
            loss, _ = flow_matching_loss(net, x1, net.prepare_conditions(clip, sync, pe))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_s = timeit(train_step, repeats=3, warmup=1, device=device)
    train_peak = peak_mb(device)
    rows = [
        {
            "config": name,
            "device": device,
            "params_m": round(params / 1e6, 2),
            "mode": "train",
            "batch": batch,
            "samples_per_s": round(batch / train_s, 3),
            "peak_mb": round(train_peak, 1),
        }
    ]
    net.eval()
    c1 = net.prepare_conditions(clip[:1], sync[:1], pe[:1])
    u1 = net.prepare_conditions(
        clip[:1], sync[:1], pe[:1], drop=torch.ones(1, dtype=torch.bool, device=device)
    )
    for sequential in (False, True):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

        def sample(sequential=sequential):
            with autocast:
                generate(net, c1, uncond=u1, cfg_scale=4.5, steps=steps, sequential=sequential, seed=0)

        s = timeit(sample, repeats=2, warmup=1, device=device)
        rows.append(
            {
                "config": name,
                "device": device,
                "params_m": round(params / 1e6, 2),
                "mode": "sample_sequential" if sequential else "sample_joint",
                "steps": steps,
                "nfe": steps * 2 * (2 if sequential else 1),
                "seconds": round(s, 4),
                "rtf": round(cfg.duration / s, 3),
                "peak_mb": round(peak_mb(device), 1),
            }
        )
    return rows


# ---------------------------------------------------------------- MMAudio-exact options and PE memory
def _median_s(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_ear_attention(name: str, repeats: int) -> list[dict]:
    """Params and CPU time of one CFG-batched forward (batch 2 = cond + null, 8 s) per ``ear_attention``."""
    rows = []
    for mode in ("joint", "joint_offset", "per_ear"):
        cfg = visaudio_config(name, duration=8.0, ear_attention=mode)
        torch.manual_seed(0)
        net = ViSAudioNet(cfg).eval()
        clip, sync, pe = features(cfg, 2, "cpu")
        x = torch.randn(2, 2, cfg.latent_dim, cfg.latent_len())
        with torch.no_grad():
            cond = net.prepare_conditions(clip, sync, pe)
            s = _median_s(lambda net=net, x=x, cond=cond: net(x, torch.rand(2), cond), repeats)
        rows.append(
            {
                "config": name,
                "device": "cpu",
                "mode": "forward_ear_attention",
                "ear_attention": mode,
                "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 4),
                "batch": 2,
                "seconds_median": round(s, 4),
                "repeats": repeats,
            }
        )
    return rows


def _spatial_materialised(self, pe, latent_len):
    """The PE pooling as it was: per-ear tokens ``[B, 2, T, P, Dp]`` and per-patch keys/values."""
    cfg = self.config
    heads, d = cfg.num_heads, cfg.hidden_dim
    tokens = self.pe_norm(pe[:, None] + self.ear_embed[None, :, None].to(pe.dtype))
    keys = self.pe_key(tokens).unflatten(-1, (heads, -1))
    values = self.pe_value(tokens).unflatten(-1, (heads, -1))
    query = self.pe_query.to(pe.dtype).unflatten(-1, (heads, -1))
    weights = torch.softmax((keys * query).sum(-1) / math.sqrt(d // heads), dim=-2)
    pooled = self.pe_out((weights[..., None] * values).sum(-3).flatten(-2))
    frames = pe.shape[1]
    frame_times = (torch.arange(frames, dtype=torch.float64) + 0.5) / cfg.pe_fps
    latent_times = (torch.arange(latent_len, dtype=torch.float64) + 0.5) / cfg.latent_rate
    up = linear_time_matrix(frame_times, latent_times).to(pooled)
    return torch.einsum("nt,betd->bend", up, pooled)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pe_memory_worker(variant: str, name: str, steps: int) -> None:
    """Run in a fresh process: peak RSS added by ``prepare_conditions`` (cond + null) at batch 1, 8 s, then
    the time of one CFG sample (conditioning + ``steps`` Euler steps, CFG batched). Prints one JSON row."""
    if variant == "materialised":
        SpacetimeConditioning.spatial = _spatial_materialised
    cfg = visaudio_config(name, duration=8.0)
    torch.manual_seed(0)
    net = ViSAudioNet(cfg).eval()
    clip, sync, pe = features(cfg, 1, "cpu")
    gc.collect()
    base = _rss_mb()
    with torch.no_grad():
        start = time.perf_counter()
        cond = net.prepare_conditions(clip, sync, pe)
        uncond = net.prepare_conditions(clip, sync, pe, drop=torch.ones(1, dtype=torch.bool))
        cond_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    generate(net, cond, uncond=uncond, cfg_scale=4.5, steps=steps, seed=0)
    step_s = (time.perf_counter() - start) / steps
    row = {
        "config": name,
        "device": "cpu",
        "mode": "pe_conditioning",
        "variant": variant,
        "batch": 1,
        "pe_tokens": [cfg.pe_len(), cfg.pe_tokens, cfg.pe_dim],
        "conditioning_peak_extra_mb": round(peak - base, 1),
        "conditioning_seconds": round(cond_s, 3),
        "timed_steps": steps,
        "seconds_per_cfg_step": round(step_s, 3),
        "sample_25_steps_seconds": round(cond_s + 25 * step_s, 2),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(row))


def _merge(rows: list[dict], key: tuple[str, ...]) -> None:
    """Add ``rows`` to bench/results/visaudio.json, replacing earlier rows with the same ``key`` fields."""
    path = RESULTS / "visaudio.json"
    old = json.loads(path.read_text())["results"] if path.exists() else []
    new = {tuple(r.get(k) for k in key) for r in rows}
    kept = [r for r in old if tuple(r.get(k) for k in key) not in new]
    write_results("visaudio", kept + rows, duration_s=8.0, cfg_scale=4.5)


def bench_mmaudio(args) -> None:
    """Rows added to bench/results/visaudio.json (rows of other modes/configs are kept)."""
    if "pe" in args.parts:
        rows = []
        for variant in ("materialised", "lean"):
            cmd = [sys.executable, __file__, "--pe-worker", variant, "--pe-config", args.pe_config]
            out = subprocess.run(
                [*cmd, "--steps", str(args.steps)], check=True, capture_output=True, text=True
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        _merge(rows, ("mode", "config", "variant"))
    if "ear" in args.parts:
        for name in args.configs:
            _merge(bench_ear_attention(name, args.repeats), ("mode", "config", "ear_attention"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cuda-configs", nargs="+", default=["S_16k", "S_44k"])
    ap.add_argument("--mmaudio", action="store_true", help="ear_attention options and PE conditioning memory")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", nargs="+", default=["pe", "ear"], choices=["pe", "ear"])
    ap.add_argument("--pe-config", default="S_16k")
    ap.add_argument("--pe-worker", choices=["materialised", "lean"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pe_worker:
        return pe_memory_worker(args.pe_worker, args.pe_config, args.steps)
    if args.mmaudio:
        return bench_mmaudio(args)
    rows = []
    for name in args.configs:
        rows += bench(name, "cpu", args.batch, args.steps)
    if torch.cuda.is_available():
        for name in args.cuda_configs:
            rows += bench(name, "cuda", 16, args.steps)
    write_results("visaudio", rows, duration_s=8.0, cfg_scale=4.5)


if __name__ == "__main__":
    main()
