"""ViSAudio benchmark: training samples/s and sampling real-time factor for 8 s binaural clips.

Workload: random features at the config's rates, random weights (speed does not depend on them).
Training = one AdamW step on the flow-matching loss (batch ``--batch``); sampling = 25 Euler steps with
CFG batched (conditional + unconditional in one forward), joint and sequential (Gauss-Seidel) ear
updates. ``rtf`` = audio seconds generated per wall second (per clip, batch 1). Small configs on CPU;
``S_16k`` on CUDA when available. Peak memory: CUDA max allocated, or the process max RSS on CPU.
"""

from __future__ import annotations

import argparse
import resource

import torch
from common import timeit, write_results

from spatialgen.models.visaudio import ViSAudioNet, flow_matching_loss, generate, visaudio_config


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cuda-configs", nargs="+", default=["S_16k", "S_44k"])
    args = ap.parse_args()
    rows = []
    for name in args.configs:
        rows += bench(name, "cpu", args.batch, args.steps)
    if torch.cuda.is_available():
        for name in args.cuda_configs:
            rows += bench(name, "cuda", 16, args.steps)
    write_results("visaudio", rows, duration_s=8.0, cfg_scale=4.5)


if __name__ == "__main__":
    main()
