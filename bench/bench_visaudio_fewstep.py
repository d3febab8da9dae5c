"""Few-step ViSAudio student vs its 25-step teacher on the synthetic task -> bench/results/visaudio_fewstep.json.

Quality on held-out clips (the teacher's val + test splits) from the same initial noise for every system:
left/right confusion against the ground-truth binaural (per 0.5-s block, decisive blocks only, as the demo's
``lr_confusion_ild``), ILD correlation (Pearson over blocks of generated vs true ILD), FD with the ``tiny``
debug embedder (both ears), and the latent MSE to the teacher's 25-step samples. Speed: median wall time of
one clip's latent sampling (batch 1, network evaluations only; the codec decode is the same for all), each
variant timed interleaved with the others in one run; bf16 autocast and torch.compile rows too.

Systems: teacher 25 Euler steps with CFG (50 network evaluations), the teacher at 1/2/4 steps with CFG
(what the student must beat), the student at 1/2/4 steps without CFG (1/2/4 evaluations).

Run (teacher and student from the recipes, or the demo's export):

    python bench/bench_visaudio_fewstep.py --teacher demo_out/models/visaudio \
        --student runs/visaudio_fewstep_synthetic/checkpoints/last.ckpt --data demo_out/data
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results

from spatialgen.data.clips import ClipOptions
from spatialgen.data.registry import create_dataset
from spatialgen.metrics import FrechetDistance
from spatialgen.metrics.functional.binaural import left_right_confusion
from spatialgen.models.visaudio.fast_sampling import fast_generate
from spatialgen.models.visaudio.pipeline import ViSAudioPipeline, resample_frames
from spatialgen.spatial.cues import ild

BLOCK_SECONDS = 0.5


def load_student(path: str) -> ViSAudioPipeline:
    """Student pipeline from a few-step checkpoint (EMA weights when stored) or an export folder."""
    p = Path(path)
    if p.is_file():
        from spatialgen.hub.export import pipeline_from_checkpoint

        model = pipeline_from_checkpoint(p, use_ema=True)
        model.pipeline.load_export_state_dict(model.state)
        return model.pipeline.eval()
    return ViSAudioPipeline.from_pretrained(str(p)).eval()


def clips(pipe: ViSAudioPipeline, root: str, splits: list[str], fps: float) -> list[dict[str, Any]]:
    """Eval clips: features per role and the ground-truth binaural audio."""
    out = []
    opts = ClipOptions(
        clip_seconds=pipe.clip_seconds, sample_rate=pipe.sample_rate, fps=fps, format="binaural"
    )
    for split in splits:
        ds = create_dataset("synthetic", root, split, opts)
        for i in range(len(ds)):
            item = ds[i]
            video = item["video"][None]
            frames = {n: resample_frames(video, fps, r) for n, r in pipe.frame_rates.items()}
            with torch.no_grad():
                feats = pipe.encode_video(frames, pipe.clip_seconds)
            out.append({"id": item["clip_id"], "features": feats, "audio": item["audio"].float()})
    return out


def blocks(x: torch.Tensor, sr: int) -> torch.Tensor:
    """``[2, T]`` -> ``[n, 2, block]`` 0.5-s blocks."""
    n = int(BLOCK_SECONDS * sr)
    k = x.shape[-1] // n
    return x[..., : k * n].reshape(2, k, n).transpose(0, 1)


def sample(pipe: ViSAudioPipeline, feats: dict, steps: int, cfg: float, seed: int, **kw: Any) -> torch.Tensor:
    n_lat = pipe.latent_len()
    cond = pipe.conditions(feats, n_lat)
    uncond = None
    if cfg != 1.0:
        uncond = pipe.conditions(feats, n_lat, drop=torch.ones(cond.batch_size, dtype=torch.bool))
    noise = pipe.initial_noise(cond.batch_size, n_lat, seed)
    return fast_generate(pipe.network, cond, uncond=uncond, cfg_scale=cfg, steps=steps, noise=noise, **kw)


def score(pipe: ViSAudioPipeline, data: list[dict], lat: list[torch.Tensor], ref: list[torch.Tensor]) -> dict:
    sr = pipe.sample_rate
    fd = FrechetDistance("tiny", pretrained=False, sample_rate=sr, channels=2)
    wrong = decisive = 0
    ild_p, ild_g = [], []
    for clip, z in zip(data, lat, strict=True):
        n = pipe.num_samples()
        wave = pipe.codec.decode_latents(z, length=n).float()[0]
        gt = clip["audio"][..., :n]
        pb, gb = blocks(wave, sr).double(), blocks(gt, sr).double()
        confused, dec = left_right_confusion(pb, gb, sr)
        wrong, decisive = wrong + int(confused.sum()), decisive + int(dec.sum())
        ild_p.append(ild(pb, sr))
        ild_g.append(ild(gb, sr))
        fd.update(wave[None], gt[None])
    a, b = torch.cat(ild_p), torch.cat(ild_g)
    ok = torch.isfinite(a) & torch.isfinite(b)
    corr = float(torch.corrcoef(torch.stack((a[ok], b[ok])))[0, 1])
    mse = statistics.fmean(float((z - r).pow(2).mean()) for z, r in zip(lat, ref, strict=True))
    return {
        "lr_confusion": wrong / max(decisive, 1),
        "decisive_blocks": decisive,
        "ild_correlation": corr,
        "fd_tiny": float(fd.compute()),
        "latent_mse_to_teacher25": mse,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="teacher export folder or ViSAudio checkpoint")
    p.add_argument("--student", required=True, help="few-step student checkpoint or export folder")
    p.add_argument("--data", required=True, help="synthetic dataset root (the teacher's)")
    p.add_argument("--splits", default="val,test")
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--teacher-steps", type=int, default=25)
    p.add_argument("--student-steps", default="1,2,4")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile timing rows")
    p.add_argument(
        "--note", default="", help="free text stored with the results (e.g. how the teacher was trained)"
    )
    p.add_argument("--out-name", default="visaudio_fewstep", help="results file bench/results/<name>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from spatialgen.training.visaudio_fewstep import load_teacher

    teacher, student = load_teacher(args.teacher), load_student(args.student)
    cfg = float(teacher.sampling["cfg_scale"])
    data = clips(teacher, args.data, args.splits.split(","), args.fps)
    ks = [int(k) for k in args.student_steps.split(",")]
    systems: list[tuple[str, ViSAudioPipeline, int, float]] = [
        (f"teacher {args.teacher_steps} steps + CFG", teacher, args.teacher_steps, cfg)
    ]
    systems += [(f"teacher {k} steps + CFG", teacher, k, cfg) for k in ks]
    systems += [(f"student {k} steps", student, k, 1.0) for k in ks]
    lat = {
        name: [sample(pi, c["features"], k, w, seed=i) for i, c in enumerate(data)]
        for name, pi, k, w in systems
    }
    ref = lat[systems[0][0]]
    rows = []
    for name, pi, k, w in systems:
        row = {"system": name, "steps": k, "cfg_scale": w, "network_evals": k * (2 if w != 1.0 else 1)}
        row.update(score(pi, data, lat[name], ref))
        rows.append(row)
    # speed: batch-1 latent sampling, variants interleaved, median of repeats
    feats = data[0]["features"]
    variants: list[tuple[str, ViSAudioPipeline, int, float, dict]] = [
        (n, pi, k, w, {}) for n, pi, k, w in systems if not n.startswith("teacher") or k == args.teacher_steps
    ]
    variants += [
        (f"{systems[0][0]}, bf16 autocast", teacher, args.teacher_steps, cfg, {"autocast": torch.bfloat16})
    ]
    variants += [(f"student {ks[0]} steps, bf16 autocast", student, ks[0], 1.0, {"autocast": torch.bfloat16})]
    if not args.no_compile:
        variants += [(f"{systems[0][0]}, compiled", teacher, args.teacher_steps, cfg, {"compile": True})]
        variants += [(f"student {ks[0]} steps, compiled", student, ks[0], 1.0, {"compile": True})]
    times: dict[str, list[float]] = {v[0]: [] for v in variants}
    for _n, pi, k, w, kw in variants:  # warm-up (compilation happens here)
        sample(pi, feats, k, w, seed=0, **kw)
    for _ in range(args.repeats):
        for n, pi, k, w, kw in variants:
            t0 = time.perf_counter()
            sample(pi, feats, k, w, seed=0, **kw)
            times[n].append(time.perf_counter() - t0)
    base = statistics.median(times[systems[0][0]])
    speed = [
        {"variant": n, "median_s": statistics.median(ts), "speedup_vs_teacher": base / statistics.median(ts)}
        for n, ts in times.items()
    ]
    write_results(
        args.out_name,
        rows,
        speed=speed,
        settings={**vars(args), "eval_clips": len(data), "teacher_cfg_scale": cfg, "torch_threads": 1},
        machine_note="shared 2-core CPU (other jobs running): timings are medians of interleaved runs",
        host=machine(),
    )
    for s in speed:
        print(f"{s['variant']}: {s['median_s'] * 1e3:.1f} ms, x{s['speedup_vs_teacher']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
