"""Demo driver: the eight steps in order, and the command line (``python -m examples.demo``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from examples.demo.report import write_report
from examples.demo.scoring import (
    binaural_direction_table,
    foa_direction_table,
    run_evaluate,
    spectrogram_figure,
)
from examples.demo.settings import BLOCK_SECONDS, DemoSettings, _cpu_seconds, _log, _Step
from examples.demo.steps import (
    export_model,
    fit_codec,
    generate_tests,
    make_dataset,
    pretrain_encoder,
    train_visage,
    train_visaudio,
)


def run_demo(s: DemoSettings) -> Path:
    """Run the eight steps into ``s.out``; returns the report path."""
    from spatialgen.data.synthetic.metadata import read_manifest

    s.out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    res: dict[str, Any] = {}
    with _Step(s, "1 synthetic dataset"):
        data = make_dataset(s)
    test = read_manifest(data).split("test")
    if not test or not read_manifest(data).split("val"):
        raise ValueError(f"--clips {s.clips} leaves no val/test clip; use at least 10")
    ids = [e.clip_id for e in test]
    videos = {e.clip_id: data / e.path / "video.mp4" for e in test}
    metas = {e.clip_id: data / e.path / "meta.json" for e in test}
    res["n_test"], res["test_ids"] = len(ids), ids
    with _Step(s, "2 pretrain visual encoder"):
        encoder = pretrain_encoder(s, data)
        res["encoder_recipe"] = s.out / "recipes" / "encoder.yaml"
    with _Step(s, "3 train ViSAudio"):
        ckpt = train_visaudio(s, data, encoder)
        res["visaudio_recipe"] = s.out / "recipes" / "visaudio.yaml"
        export_model(ckpt, s.out / "models" / "visaudio")
    with _Step(s, "4 fit stft_vq codec"):
        codec = fit_codec(s, data)
    with _Step(s, "5 train ViSAGe"):
        ckpt = train_visage(s, data, codec, encoder)
        res["visage_recipe"] = s.out / "recipes" / "visage.yaml"
        export_model(ckpt, s.out / "models" / "visage")
    gen = s.out / "generated"
    with _Step(s, "6 generate test clips"):
        generate_tests(s.out / "models" / "visaudio", videos, gen / "visaudio", "binaural", s.seed)
        generate_tests(s.out / "models" / "visage", videos, gen / "visage", "both", s.seed)
    with _Step(s, "7 evaluate"):
        gt_bin = {c: data / e.path / "binaural.wav" for c, e in zip(ids, test, strict=True)}
        gt_foa = {c: data / e.path / "foa.wav" for c, e in zip(ids, test, strict=True)}
        va = {c: gen / "visaudio" / c / "video.binaural.wav" for c in ids}
        vg_foa = {c: gen / "visage" / c / "video.foa.wav" for c in ids}
        vg_bin = {c: gen / "visage" / c / "video.binaural.wav" for c in ids}
        res["binaural_table"] = binaural_direction_table(
            gt_bin, {"ViSAudio": va, "ViSAGe (FOA rendered binaural)": vg_bin}, metas, s.seed
        )
        res["foa_table"] = foa_direction_table(gt_foa, vg_foa, metas, s.seed)
        res["visaudio_eval"] = run_evaluate(va, gt_bin, s.out / "eval" / "visaudio", "binaural", s)
        res["visage_eval"] = run_evaluate(vg_foa, gt_foa, s.out / "eval" / "visage", "spatial,doa", s)
        figs = [
            spectrogram_figure(va[ids[0]], gt_bin[ids[0]], s.out / "figures" / "visaudio_spectrogram.png",
                               f"ViSAudio, {ids[0]}"),
        ]  # fmt: skip
        figs += sorted((s.out / "eval").rglob("*.png"))
        res["figures"] = figs
    s.timings["total"] = time.perf_counter() - t0
    s.timings["total (CPU)"] = _cpu_seconds() - c0
    path = write_report(s, res)
    _log(f"report: {path} ({s.timings['total']:.0f} s wall, {s.timings['total (CPU)']:.0f} s CPU)")
    return path


def build_parser(prog: str = "python -m examples.demo") -> argparse.ArgumentParser:
    """The demo's options."""
    p = argparse.ArgumentParser(
        prog=prog, description="End-to-end demo on synthetic data (see examples/demo/__init__.py)."
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--clips", type=int, default=None, help="synthetic clips (default 160; --quick 10)")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length in s (default 1)")
    p.add_argument(
        "--steps-encoder", type=int, default=None, help="encoder pretraining steps (default 1000; --quick 2)"
    )
    p.add_argument("--steps-visaudio", type=int, default=None, help="ViSAudio steps (default 600; --quick 2)")
    p.add_argument("--steps-visage", type=int, default=None, help="ViSAGe steps (default 1200; --quick 2)")
    p.add_argument("--quick", action="store_true", help="tiny test-size run (seconds)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.demo [--out DIR] [--quick] ...``; returns the exit code."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    quick = bool(args.quick)
    s = DemoSettings(
        out=Path(args.out),
        clips=_default(args.clips, 10 if quick else 160),
        seconds=args.seconds,
        steps_encoder=_default(args.steps_encoder, 2 if quick else 1000),
        steps_visaudio=_default(args.steps_visaudio, 2 if quick else 600),
        steps_visage=_default(args.steps_visage, 2 if quick else 1200),
        codebook_size=16 if quick else 256,
        batch_size=2 if quick else 8,
        seed=args.seed,
        quick=quick,
    )
    for name in ("clips", "steps_encoder", "steps_visaudio", "steps_visage"):
        if getattr(s, name) < 1:
            raise SystemExit(f"demo: --{name.replace('_', '-')} must be >= 1")
    if s.seconds < BLOCK_SECONDS:
        raise SystemExit(f"demo: --seconds must be >= {BLOCK_SECONDS}")
    run_demo(s)
    return 0
