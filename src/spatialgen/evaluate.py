"""``spatialgen evaluate``: score generated audio against ground truth, write JSON, Markdown and figures.

    spatialgen evaluate --pred GEN_DIR --gt GT_DIR --protocol visage --out REPORT_DIR

Files are paired by stem (``clip01.wav`` ↔ ``clip01.flac``); an unmatched or duplicated stem is an error
that lists them. ``--protocol`` fixes how audio reaches each metric (resampler, channel handling, clip
length, embedders, classifiers, IS splits; :mod:`spatialgen.metrics.protocols`) so numbers compare with
a paper's table: ``av-benchmark`` (MMAudio-era video-to-audio tables), ``visage`` (ViSAGe's FOA table) or
``spatialgen`` (this project's defaults, every option settable). Metric groups:

- ``spatial`` (FOA): ViSAGe ``corr_*`` / ``auc_j_*`` at all / 1fps / 5fps, plus the ``*_sn3d`` corrected
  variant; ``doa``: intensity-DOA error (FOA) or ITD lateral error (binaural), degrees;
- ``direction`` (FOA): azimuth / elevation / angular errors of the dominant direction, from intensity
  vectors and from the energy-map peak, per clip and per second (``azimuth_error_deg_map_1s``, ...);
- ``binaural`` (2 channels): STFT / envelope / waveform / magnitude / phase distances, SNR, ILD / ITD /
  IPD errors (also per band), IACC error, left-right confusion and per-second balance agreement;
- ``fd``, ``kl``, ``is``: semantic metrics with the protocol's embedders (2-channel audio under
  ``spatialgen`` also gets FD on the mid (L+R)/2 and the side (L−R)/2);
- ``ib``, ``desync`` (need ``--video``, paired by stem): ImageBind score and DeSync of the predicted audio
  with the ground-truth video, with ``--ib-scorer`` / ``--sync-scorer``.

Outputs in ``--out``: ``metrics.json`` (protocol, means, per-clip values, settings, warnings),
``metrics.md`` (a table) and ``figures/``. Silence, constant maps or clips without a defined cue give
NaN with a one-line reason, never a number; a prediction whose length differs from its truth is named
in a warning saying what was padded or cut.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spatialgen.errors import MediaError, SpatialgenError, run_cli
from spatialgen.metrics.suite import (
    METRIC_GROUPS,
    build_metrics,
    default_groups,
    resolve_protocol,
)

if TYPE_CHECKING:  # heavy imports stay inside the functions, so --help is instant
    import torch
    from torchmetrics import Metric

    from spatialgen.metrics.protocols import AudioPrep

__all__ = ["METRIC_GROUPS", "build_metrics", "default_groups", "main", "pair_files", "resolve_protocol"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")


def _audio_files(folder: Path, what: str, suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> dict[str, Path]:
    if not folder.is_dir():
        raise MediaError(folder, f"--{what} must be an existing folder of media files")
    files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in suffixes:
            continue
        if f.stem in files:
            raise MediaError(
                f, f"two files with stem {f.stem!r} in --{what} ({files[f.stem].name}); keep one"
            )
        files[f.stem] = f
    if not files:
        raise MediaError(folder, f"--{what} has no files ({', '.join(suffixes)})")
    return files


def pair_files(pred_dir: str | Path, gt_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """``[(stem, pred_file, gt_file)]`` sorted by stem; raises MediaError naming unmatched stems."""
    pred, gt = _audio_files(Path(pred_dir), "pred"), _audio_files(Path(gt_dir), "gt")
    missing_gt, missing_pred = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
    if missing_gt or missing_pred:

        def show(stems: list[str]) -> str:
            return ", ".join(stems[:5]) + (f" and {len(stems) - 5} more" if len(stems) > 5 else "")

        parts = []
        if missing_gt:
            parts.append(f"{len(missing_gt)} prediction(s) without ground truth: {show(missing_gt)}")
        if missing_pred:
            parts.append(f"{len(missing_pred)} ground truth file(s) without prediction: {show(missing_pred)}")
        raise MediaError(pred_dir, "files do not pair by stem with --gt: " + "; ".join(parts))
    return [(s, pred[s], gt[s]) for s in sorted(pred)]


def pair_videos(stems: Sequence[str], video_dir: str | Path) -> dict[str, Path]:
    """Stem -> video file in ``video_dir`` for every stem; raises MediaError naming stems without video."""
    videos = _audio_files(Path(video_dir), "video", VIDEO_SUFFIXES)
    missing = [s for s in stems if s not in videos]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MediaError(video_dir, f"no video for {len(missing)} clip(s): {', '.join(missing[:5])}{more}")
    return {s: videos[s] for s in stems}


def build_av_metrics(
    groups: Sequence[str],
    *,
    ib_scorer: str = "imagebind",
    sync_scorer: str = "synchformer",
    pretrained: bool = True,
) -> dict[str, Metric]:
    """Result key -> ImageBindScore / DeSync for the ``ib`` / ``desync`` groups present in ``groups``."""
    from spatialgen.metrics import DeSync, ImageBindScore, create_av_scorer

    out: dict[str, Metric] = {}
    if "ib" in groups:
        out["ib_score"] = ImageBindScore(create_av_scorer(ib_scorer, pretrained=pretrained))
    if "desync" in groups:
        out["desync"] = DeSync(create_av_scorer(sync_scorer, pretrained=pretrained))
    return out


def _video(path: Path, fps: float, seconds: float) -> torch.Tensor:
    """``[T, 3, H, W]`` uint8 at ``fps`` covering ``seconds`` (last frame held if the video is shorter)."""
    import torch

    from spatialgen.io import read_video

    frames, _ = read_video(path, fps=fps, duration=seconds)
    n = math.ceil(seconds * fps - 1e-6)
    if frames.shape[0] < n:
        frames = torch.cat([frames, frames[-1:].expand(n - frames.shape[0], -1, -1, -1)])
    return frames[:n]


def _read(path: Path, channels: int) -> tuple[torch.Tensor, int]:
    from spatialgen.io import read_audio

    return read_audio(path, channels=channels)


def _length_note(stem: str, pred: Path, gt: Path, dp: float, dg: float, prep: AudioPrep) -> str | None:
    """One warning line when a prediction's length differs from its truth's (> 10 ms), saying what happens."""
    if abs(dp - dg) <= 0.01:
        return None
    if prep.seconds is None:
        action = "both are scored at their own lengths"
    else:

        def what(d: float) -> str:
            if d < prep.seconds - 1e-3:
                return f"zero-padded by {prep.seconds - d:.2f} s" if prep.pad else "kept (not padded)"
            return f"cut by {d - prep.seconds:.2f} s" if d > prep.seconds + 1e-3 else "unchanged"

        action = f"clips are cut / padded to {prep.seconds:g} s: prediction {what(dp)}, truth {what(dg)}"
    return f"{pred}: prediction is {dp:.2f} s but its ground truth {gt.name} is {dg:.2f} s; {action}"


def _parser() -> argparse.ArgumentParser:
    from spatialgen.metrics.protocols import PROTOCOLS

    protocols = "\n".join(f"  {name}: {p.summary}" for name, p in PROTOCOLS.items())
    p = argparse.ArgumentParser(
        prog="spatialgen evaluate",
        description=__doc__.split("\n\n")[0] + "\n\nprotocols (--protocol):\n" + protocols,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, help="folder of generated audio")
    p.add_argument("--gt", required=True, help="folder of ground-truth audio (same stems)")
    p.add_argument(
        "--protocol",
        default="spatialgen",
        choices=list(PROTOCOLS),
        help="evaluation protocol (default: spatialgen)",
    )
    p.add_argument("--video", help="folder of ground-truth videos (same stems), for ib / desync")
    p.add_argument("--ib-scorer", default="imagebind", help="scorer for ib (imagebind, tiny_imagebind)")
    p.add_argument("--sync-scorer", default="synchformer", help="scorer for desync (synchformer, tiny_sync)")
    p.add_argument(
        "--metrics",
        help=f"comma-separated groups: {', '.join(METRIC_GROUPS)} (default: the protocol's; spatialgen: "
        "spatial,doa,direction for FOA, binaural,doa for 2 channels)",
    )
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sample-rate", type=int, help="spatialgen protocol: rate of the spatial metrics (16000)")
    p.add_argument("--seconds", type=float, help="spatialgen protocol: clips are padded / cut to this (5)")
    p.add_argument(
        "--embedder", help="spatialgen protocol: embedder for fd (vggish, panns_cnn14, passt, tiny)"
    )
    p.add_argument("--classifier", help="spatialgen protocol: classifier for kl / is (panns_cnn14, ...)")
    p.add_argument("--reduction", help="spatialgen protocol: mean_channels | first | all | mono | mid | side")
    p.add_argument(
        "--random-weights", action="store_true", help="embedders without pretrained weights (debug)"
    )
    p.add_argument("--n-figures", type=int, default=4, help="clips whose energy maps are plotted")
    p.add_argument("--no-progress", action="store_true")
    return p


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.6g}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; returns the exit status (user errors print one line and return 2)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    return run_cli("spatialgen evaluate", lambda: _run(args))


def _feed(
    metrics: dict[str, tuple[Metric, AudioPrep]],
    per_clip: dict[str, list[float]],
    pred: dict[AudioPrep, list[torch.Tensor]],
    gt: dict[AudioPrep, list[torch.Tensor]],
) -> None:
    """Update every metric with its prepared inputs: one batch when shapes agree, else clip by clip."""
    import torch

    batched: dict[AudioPrep, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for prep in {prep for _, prep in metrics.values()}:  # built once, so metrics may share work on them
        ps, gs = pred[prep], gt[prep]
        if len({x.shape for x in ps + gs}) == 1:
            batched[prep] = [(torch.stack(ps), torch.stack(gs))]
        else:
            batched[prep] = [(p[None], g[None]) for p, g in zip(ps, gs)]
    for key, (metric, prep) in metrics.items():
        for p, g in batched[prep]:
            metric.to(p.device)
            if key in per_clip:
                values = metric.scores(p, g)
                metric.update(scores=values)
                per_clip[key] += values.double().cpu().tolist()
            elif key.startswith("is_"):
                metric.update(p)
            else:
                metric.update(p, g)


def _run(args: argparse.Namespace) -> int:
    import warnings

    import torch
    from tqdm import tqdm

    from spatialgen.io import audio_info
    from spatialgen.metrics.plotting import plot_energy_maps, plot_metric_distributions
    from spatialgen.metrics.protocols import AudioPrep
    from spatialgen.spatial.doa import visage_energy_map, visage_fit_length

    if args.batch_size < 1:
        raise SpatialgenError(f"--batch-size must be >= 1, got {args.batch_size}")
    protocol = resolve_protocol(
        args.protocol,
        sample_rate=args.sample_rate,
        seconds=args.seconds,
        embedder=args.embedder,
        classifier=args.classifier,
        reduction=args.reduction,
    )
    pairs = pair_files(args.pred, args.gt)
    channels = audio_info(pairs[0][2]).channels
    groups = [g.strip() for g in args.metrics.split(",") if g.strip()] if args.metrics else None
    groups = groups or default_groups(protocol, channels)
    if "is" in groups and protocol.is_classifiers and len(pairs) < protocol.is_splits:
        raise SpatialgenError(
            f"--metrics is needs at least {protocol.is_splits} clips ({protocol.is_splits} IS splits under "
            f"--protocol {protocol.name}); got {len(pairs)}"
        )
    device = torch.device(args.device)
    metrics = build_metrics(groups, channels, protocol, pretrained=not args.random_weights)
    av_metrics = build_av_metrics(
        groups, ib_scorer=args.ib_scorer, sync_scorer=args.sync_scorer, pretrained=not args.random_weights
    )
    if av_metrics and not args.video:
        raise SpatialgenError("--metrics ib / desync need --video DIR with the ground-truth videos")
    videos = pair_videos([s for s, _, _ in pairs], args.video) if av_metrics else {}
    seconds = protocol.spatial.seconds or 5.0
    per_clip: dict[str, list[float]] = {k: [] for k, (m, _) in metrics.items() if hasattr(m, "scores")}
    per_clip.update({k: [] for k in av_metrics})
    preps = {prep for _, prep in metrics.values()} | {protocol.spatial}
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    map_pairs = []
    batches = range(0, len(pairs), args.batch_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for start in tqdm(batches, desc="evaluate", unit="batch", disable=args.no_progress):
            chunk = pairs[start : start + args.batch_size]
            raw = [(_read(p, channels), _read(g, channels)) for _, p, g in chunk]
            for (stem, p, g), ((a, ra), (b, rb)) in zip(chunk, raw):
                note = _length_note(stem, p, g, a.shape[-1] / ra, b.shape[-1] / rb, protocol.spatial)
                if note:
                    warnings.warn(note, UserWarning, stacklevel=1)
            pred = {q: [q(a.to(device), ra) for (a, ra), _ in raw] for q in preps}
            gt = {q: [q(b.to(device), rb) for _, (b, rb) in raw] for q in preps}
            _feed(metrics, per_clip, pred, gt)
            for key, metric in av_metrics.items():  # one clip at a time: videos differ in size
                scorer = metric.scorer.to(device)
                sr, fps = scorer.sample_rate, scorer.video_fps
                q = AudioPrep(sr, seconds=seconds, pad=True)
                for (stem, _, _), ((a, ra), _) in zip(chunk, raw):
                    audio = q(a.to(device), ra)[None]
                    value = metric.scores(audio, _video(videos[stem], fps, seconds)[None].to(device))
                    metric.update(scores=value)
                    per_clip[key] += value.double().cpu().tolist()
            if channels == 4 and len(map_pairs) < args.n_figures:
                sp = protocol.spatial
                for (stem, _, _), p, g in zip(chunk, pred[sp], gt[sp]):
                    if len(map_pairs) < args.n_figures:
                        maps = [
                            visage_energy_map(visage_fit_length(x, sp.sample_rate, seconds), sp.sample_rate)
                            for x in (p, g)
                        ]
                        map_pairs.append((stem, *maps))
        all_metrics = {k: m for k, (m, _) in metrics.items()} | av_metrics
        results = {k: float(m.compute()) for k, m in all_metrics.items()}
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    report = {
        "protocol": protocol.name,
        "n_clips": len(pairs),
        "channels": channels,
        "settings": {k: v for k, v in vars(args).items() if k not in ("pred", "gt", "out")},
        "protocol_settings": protocol.settings(),
        "metrics": results,
        "per_clip": {stem: {k: v[i] for k, v in per_clip.items()} for i, (stem, _, _) in enumerate(pairs)},
        "warnings": notes,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=True))
    lines = [
        f"# spatialgen evaluate: {len(pairs)} clips, protocol {protocol.name}",
        "",
        "| metric | value | better |",
        "|---|---|---|",
    ]
    for k, v in results.items():
        better = "higher" if all_metrics[k].higher_is_better else "lower"
        lines.append(f"| {k} | {_fmt(v)} | {better} |")
    if notes:
        lines += ["", "Warnings:", *[f"- {w}" for w in notes]]
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
    if map_pairs:
        plot_energy_maps(map_pairs, out / "figures" / "energy_maps.png")
    if per_clip:
        plot_metric_distributions(per_clip, out / "figures" / "metric_distributions.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
