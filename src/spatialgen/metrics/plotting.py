"""Figures for evaluation reports (matplotlib, Agg backend): energy maps and metric distributions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

__all__ = ["plot_energy_maps", "plot_metric_distributions"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_energy_maps(
    pairs: Sequence[tuple[str, Tensor, Tensor]], path: str | Path, *, title: str = "ViSAGe energy maps"
) -> Path:
    """Predicted vs ground-truth 90x180 maps (rows = clips), azimuth +178..−180° (left = +), elevation 88..−90°."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(9, 2.4 * len(pairs)), squeeze=False)
    extent = (179.0, -181.0, -91.0, 89.0)  # grid points at 2° corners: c ↔ 178 − 2c, r ↔ 88 − 2r
    for row, (name, pred, gt) in enumerate(pairs):
        for col, (label, m) in enumerate((("predicted", pred), ("ground truth", gt))):
            ax = axes[row, col]
            ax.imshow(m.detach().cpu().double().numpy(), extent=extent, aspect="auto", cmap="magma")
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xlabel("azimuth (deg, + = left)", fontsize=8)
            ax.set_ylabel("elevation (deg)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_metric_distributions(per_clip: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """One histogram per metric of its per-clip values (NaN clips left out and counted in the title)."""
    plt = _pyplot()
    names = list(per_clip)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        v = np.asarray(per_clip[name], dtype=np.float64)
        finite = v[np.isfinite(v)]
        ax.hist(finite, bins=min(20, max(5, finite.size)), color="tab:blue")
        nan = v.size - finite.size
        ax.set_title(name + (f" ({nan} NaN)" if nan else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
