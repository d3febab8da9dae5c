"""The one media logger of both models: generated validation samples to disk and to media loggers.

:func:`log_samples` writes ``<log dir>/samples/epoch=E/<clip>_generated.wav`` and ``_reference.wav``
for every clip and a figure (FOA: energy maps of generated vs reference, ``energy_maps.png``;
binaural: log spectrograms per ear, ``spectrogram.png``), then sends the first clip's audio (FOA: the
omni W channel; binaural: each ear) as ``val/sample_<channel>`` and the figure as ``val/<figure>`` to
every logger that takes media (TensorBoard ``add_audio``/``add_image``; Weights & Biases
``log_audio``/``log_image``). Other loggers get the files on disk only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from spatialgen.io import write_audio

__all__ = ["log_samples", "plot_binaural_spectrograms"]


def plot_binaural_spectrograms(
    pred: Tensor, target: Tensor | None, sample_rate: int, title: str = "ViSAudio sample"
) -> Any:
    """Matplotlib figure of log-magnitude spectrograms: rows generated (/ ground truth), columns L, R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("generated", pred)] + ([("ground truth", target)] if target is not None else [])
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.6 * len(rows)), squeeze=False)
    n_fft = 512 if sample_rate >= 16000 else 256
    window = torch.hann_window(n_fft, dtype=torch.float64)
    for r, (label, audio) in enumerate(rows):
        for c, ear in enumerate(("left", "right")):
            x = audio[c].detach().cpu().to(torch.float64)
            spec = torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()
            db = 20 * torch.log10(spec.clamp_min(1e-5))
            ax = axes[r, c]
            extent = (0.0, x.shape[-1] / sample_rate, 0.0, sample_rate / 2000)
            ax.imshow(
                db.numpy(), origin="lower", aspect="auto", extent=extent, vmin=-80, vmax=float(db.max())
            )
            ax.set_title(f"{label}: {ear}", fontsize=9)
            ax.set_xlabel("time (s)", fontsize=8)
            ax.set_ylabel("kHz", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _figure(
    pred: Tensor, target: Tensor, ids: Sequence[str], rate: int, root: Path, epoch: int
) -> Path | None:
    if pred.shape[1] == 4:
        from spatialgen.metrics.plotting import plot_energy_maps
        from spatialgen.spatial.energy_map import visage_energy_map

        pairs = [
            (clip, visage_energy_map(p.double().cpu(), rate), visage_energy_map(t.double().cpu(), rate))
            for clip, p, t in zip(ids, pred, target)
        ]
        return plot_energy_maps(pairs, root / "energy_maps.png", title=f"epoch {epoch}")
    if pred.shape[1] == 2:
        import matplotlib.pyplot as plt

        fig = plot_binaural_spectrograms(pred[0], target[0], rate, f"epoch {epoch}: {ids[0]}")
        path = root / "spectrogram.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path
    return None


def log_samples(
    module: pl.LightningModule, pred: Tensor, target: Tensor, ids: Sequence[str], sample_rate: int
) -> Path:
    """Write and log generated samples ``pred`` and references ``target`` ``[N, C, T]``; returns the folder."""
    trainer = module.trainer
    epoch = module.current_epoch
    root = Path(trainer.log_dir or trainer.default_root_dir) / "samples" / f"epoch={epoch}"
    root.mkdir(parents=True, exist_ok=True)
    for clip, p, t in zip(ids, pred, target):
        write_audio(root / f"{clip}_generated.wav", p.float().cpu(), sample_rate, subtype="FLOAT")
        write_audio(root / f"{clip}_reference.wav", t.float().cpu(), sample_rate, subtype="FLOAT")
    figure = _figure(pred, target, ids, sample_rate, root, epoch)
    channels = {4: ("w",), 2: ("left", "right")}.get(pred.shape[1], ("mono",))
    first = pred[0].float().cpu()
    tracks = {name: first[c : c + 1].clamp(-1, 1) for c, name in enumerate(channels)}
    image = None
    if figure is not None:
        import matplotlib.image

        image = torch.from_numpy(matplotlib.image.imread(str(figure))[..., :3].copy())
    step = module.global_step
    tag = None if figure is None else f"val/{figure.stem}"
    for logger in trainer.loggers:
        exp = getattr(logger, "experiment", None)
        if hasattr(exp, "add_audio"):  # TensorBoard
            for name, track in tracks.items():
                exp.add_audio(f"val/sample_{name}", track, step, sample_rate=sample_rate)
            if image is not None and hasattr(exp, "add_image"):
                exp.add_image(tag, image, step, dataformats="HWC")
        elif hasattr(logger, "log_audio") and hasattr(logger, "log_image"):  # Weights & Biases
            logger.log_audio(
                "val/sample", [first.T.clamp(-1, 1).numpy()], step=step, sample_rate=[sample_rate]
            )
            if figure is not None:
                logger.log_image(tag, [str(figure)], step=step)
    return root
