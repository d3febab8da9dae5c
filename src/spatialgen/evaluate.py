"""``spatialgen evaluate``: score generated audio against ground truth, write JSON, Markdown and figures.

    spatialgen evaluate --pred GEN_DIR --gt GT_DIR --metrics spatial,fd --out REPORT_DIR

Files are paired by stem (``clip01.wav`` ↔ ``clip01.flac``); an unmatched or duplicated stem is an error
that lists them. Audio is resampled to ``--sample-rate`` (ViSAGe: 16 kHz) and padded / truncated to
``--seconds`` (ViSAGe: 5 s) so clips batch. Metric groups:

- ``spatial`` (FOA): ViSAGe ``corr_*`` / ``auc_j_*`` at all / 1fps / 5fps, plus the ``*_sn3d`` corrected
  variant; ``doa``: intensity-DOA error (FOA) or ITD lateral error (binaural), degrees;
- ``binaural`` (2 channels): STFT / envelope / waveform / magnitude / phase distances, SNR, ILD / ITD /
  IPD errors, left-right confusion;
- ``fd``, ``kl``, ``is``: semantic metrics with ``--embedder`` (``--reduction`` for multi-channel audio);
- ``ib``, ``desync`` (need ``--video``, paired by stem): ImageBind score and DeSync of the predicted audio
  with the ground-truth video, with ``--ib-scorer`` / ``--sync-scorer`` (frames decoded at each scorer's
  rate, audio resampled to its rate).

Outputs in ``--out``: ``metrics.json`` (means, per-clip values, settings), ``metrics.md`` (a table) and
``figures/`` (energy maps of the first ``--n-figures`` clips for FOA, per-clip metric histograms).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torchmetrics import Metric

from spatialgen.errors import MediaError, SpatialgenError

__all__ = ["METRIC_GROUPS", "build_metrics", "main", "pair_files"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
METRIC_GROUPS = ("spatial", "doa", "binaural", "fd", "kl", "is", "ib", "desync")
AV_GROUPS = ("ib", "desync")
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
    from spatialgen.io import read_video

    frames, _ = read_video(path, fps=fps, duration=seconds)
    n = math.ceil(seconds * fps - 1e-6)
    if frames.shape[0] < n:
        frames = torch.cat([frames, frames[-1:].expand(n - frames.shape[0], -1, -1, -1)])
    return frames[:n]


def build_metrics(
    groups: Sequence[str],
    channels: int,
    sample_rate: int,
    *,
    embedder: str = "vggish",
    classifier: str = "panns_cnn14",
    pretrained: bool = True,
    reduction: str = "mean_channels",
) -> dict[str, Metric]:
    """Result key -> Metric for the requested groups and this channel count (4 = FOA, 2 = binaural)."""
    from spatialgen.metrics import (
        BINAURAL_METRICS,
        DOAError,
        EnergyMapAUC,
        EnergyMapCC,
        FrechetDistance,
        InceptionScore,
        KLDivergence,
    )

    metrics: dict[str, Metric] = {}
    for group in groups:
        if group in AV_GROUPS:
            continue  # built by build_av_metrics
        if group not in METRIC_GROUPS:
            raise SpatialgenError(
                f"--metrics: unknown group {group!r}; choose from {', '.join(METRIC_GROUPS)}"
            )
        if group == "spatial":
            if channels != 4:
                raise SpatialgenError(
                    f"--metrics spatial needs 4-channel FOA audio, the files have {channels}"
                )
            for beam in ("visage", "sn3d"):
                for fps in (None, 1, 5):
                    for cls in (EnergyMapCC, EnergyMapAUC):
                        m = cls(sample_rate, fps, beam=beam)
                        metrics[m.key] = m
        elif group == "doa":
            if channels not in (2, 4):
                raise SpatialgenError(
                    f"--metrics doa needs FOA (4) or binaural (2) audio, got {channels} channels"
                )
            key = "doa_error_deg" if channels == 4 else "lateral_error_deg"
            metrics[key] = DOAError(sample_rate, mode="foa" if channels == 4 else "binaural")
        elif group == "binaural":
            if channels != 2:
                raise SpatialgenError(
                    f"--metrics binaural needs 2-channel [L, R] audio, the files have {channels}"
                )
            metrics.update({k: cls(sample_rate) for k, cls in BINAURAL_METRICS.items()})
        elif group == "fd":
            metrics[f"fd_{embedder}"] = FrechetDistance(
                embedder,
                pretrained=pretrained,
                sample_rate=sample_rate,
                reduction=reduction,
                channels=channels,
            )
        elif group == "kl":
            metrics[f"kl_{classifier}"] = KLDivergence(
                classifier, pretrained=pretrained, sample_rate=sample_rate, reduction=reduction
            )
        else:
            metrics[f"is_{classifier}"] = InceptionScore(
                classifier, pretrained=pretrained, sample_rate=sample_rate, reduction=reduction, splits=1
            )
    return metrics


def _load(path: Path, sample_rate: int, n: int, channels: int | None) -> torch.Tensor:
    from spatialgen.io import read_audio

    audio, _ = read_audio(path, channels=channels, sample_rate=sample_rate, resample=True)
    return torch.nn.functional.pad(audio[:, :n], (0, max(0, n - audio.shape[-1])))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spatialgen evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", required=True, help="folder of generated audio")
    p.add_argument("--gt", required=True, help="folder of ground-truth audio (same stems)")
    p.add_argument("--video", help="folder of ground-truth videos (same stems), for ib / desync")
    p.add_argument("--ib-scorer", default="imagebind", help="scorer for ib (imagebind, tiny_imagebind)")
    p.add_argument("--sync-scorer", default="synchformer", help="scorer for desync (synchformer, tiny_sync)")
    p.add_argument(
        "--metrics", default="spatial,doa", help=f"comma-separated groups: {', '.join(METRIC_GROUPS)}"
    )
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--sample-rate", type=int, default=16000, help="rate audio is resampled to (ViSAGe: 16000)"
    )
    p.add_argument(
        "--seconds", type=float, default=5.0, help="clips are padded / truncated to this (ViSAGe: 5)"
    )
    p.add_argument("--embedder", default="vggish", help="embedder for fd (vggish, panns_cnn14, tiny, ...)")
    p.add_argument("--classifier", default="panns_cnn14", help="classifier for kl / is")
    p.add_argument("--reduction", default="mean_channels", help="mean_channels | first | all")
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
    try:
        return _run(args)
    except SpatialgenError as exc:
        print(f"spatialgen evaluate: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import warnings

    from tqdm import tqdm

    from spatialgen.io import audio_info
    from spatialgen.metrics.plotting import plot_energy_maps, plot_metric_distributions
    from spatialgen.spatial.doa import visage_energy_map, visage_fit_length

    if args.batch_size < 1:
        raise SpatialgenError(f"--batch-size must be >= 1, got {args.batch_size}")
    pairs = pair_files(args.pred, args.gt)
    channels = audio_info(pairs[0][2]).channels
    groups = [g.strip() for g in args.metrics.split(",") if g.strip()]
    device = torch.device(args.device)
    metrics = build_metrics(
        groups,
        channels,
        args.sample_rate,
        embedder=args.embedder,
        classifier=args.classifier,
        pretrained=not args.random_weights,
        reduction=args.reduction,
    )
    av_metrics = build_av_metrics(
        groups, ib_scorer=args.ib_scorer, sync_scorer=args.sync_scorer, pretrained=not args.random_weights
    )
    if av_metrics and not args.video:
        raise SpatialgenError("--metrics ib / desync need --video DIR with the ground-truth videos")
    videos = pair_videos([s for s, _, _ in pairs], args.video) if av_metrics else {}
    n = round(args.seconds * args.sample_rate)
    per_clip: dict[str, list[float]] = {k: [] for k, m in metrics.items() if hasattr(m, "scores")}
    per_clip.update({k: [] for k in av_metrics})
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    map_pairs = []
    batches = range(0, len(pairs), args.batch_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for start in tqdm(batches, desc="evaluate", unit="batch", disable=args.no_progress):
            chunk = pairs[start : start + args.batch_size]
            pred = torch.stack([_load(p, args.sample_rate, n, channels) for _, p, _ in chunk]).to(device)
            gt = torch.stack([_load(g, args.sample_rate, n, channels) for _, _, g in chunk]).to(device)
            for key, metric in metrics.items():
                metric.to(device)
                if key in per_clip:
                    values = metric.scores(pred, gt)
                    metric.accumulate(values)
                    per_clip[key] += values.double().cpu().tolist()
                elif key.startswith("is_"):
                    metric.update(pred)
                else:
                    metric.update(pred, gt)
            for key, metric in av_metrics.items():  # one clip at a time: videos differ in size
                scorer = metric.scorer.to(device)
                sr, fps = scorer.sample_rate, scorer.video_fps
                for stem, p, _ in chunk:
                    audio = _load(p, sr, round(args.seconds * sr), channels)[None].to(device)
                    value = metric.scores(audio, _video(videos[stem], fps, args.seconds)[None].to(device))
                    metric.accumulate(value)
                    per_clip[key] += value.double().cpu().tolist()
            if channels == 4 and len(map_pairs) < args.n_figures:
                for (stem, _, _), p, g in zip(chunk, pred, gt):
                    if len(map_pairs) < args.n_figures:
                        maps = [
                            visage_energy_map(visage_fit_length(x, args.sample_rate), args.sample_rate)
                            for x in (p, g)
                        ]
                        map_pairs.append((stem, *maps))
        metrics.update(av_metrics)
        results = {k: float(m.compute()) for k, m in metrics.items()}
    notes = sorted({str(w.message) for w in caught})
    report = {
        "n_clips": len(pairs),
        "channels": channels,
        "settings": {k: v for k, v in vars(args).items() if k not in ("pred", "gt", "out")},
        "metrics": results,
        "per_clip": {stem: {k: v[i] for k, v in per_clip.items()} for i, (stem, _, _) in enumerate(pairs)},
        "warnings": notes,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=True))
    lines = [f"# spatialgen evaluate: {len(pairs)} clips", "", "| metric | value | better |", "|---|---|---|"]
    for k, v in results.items():
        better = "higher" if metrics[k].higher_is_better else "lower"
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
