"""Independent numpy references for the metric tests, written from the formulas.

Sources: jaeyeonkim99/visage ``evaluate_spatial.py``; facebookresearch/2.5D-Visual-Sound ``evaluate.py``;
hkchengrex/av-benchmark ``av_bench/metrics/{fad,kl,isc}.py``.
"""

from __future__ import annotations

import numpy as np


def cc_ref(p: np.ndarray, q: np.ndarray) -> float:
    p = (p - p.mean()) / p.std()
    q = (q - q.mean()) / q.std()
    return float((p * q).sum() / np.sqrt((p * p).sum() * (q * q).sum()))


def auc_judd_ref(sal: np.ndarray, gt: np.ndarray, noise: np.ndarray) -> float:
    """Loop form of ViSAGe's AUC_Judd with a given jitter vector (tp_i = i/Nf kept)."""
    s = sal + noise / 1e7
    s = (s - s.min()) / (s.max() - s.min())
    fix = gt > gt.max() - gt.std()
    thr = np.sort(s[fix])[::-1]
    nf, n_p = len(thr), len(s)
    i = np.arange(nf)
    above = (s[None, :] >= thr[:, None]).sum(1)  # #(S >= t_i) for every threshold
    tp = np.concatenate([[0.0], i / nf, [1.0]])
    fp = np.concatenate([[0.0], (above - i) / (n_p - nf), [1.0]])
    return float(np.trapezoid(tp, fp))


def stft_ref(x: np.ndarray, n_fft: int = 512, hop: int = 160, win: int = 400) -> np.ndarray:
    """librosa.stft(center=True, zero padding) with a periodic Hann of ``win`` centred in ``n_fft``."""
    w = np.zeros(n_fft)
    off = (n_fft - win) // 2
    w[off : off + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    xp = np.pad(x, n_fft // 2)
    n_frames = 1 + (len(xp) - n_fft) // hop
    frames = np.stack([xp[i * hop : i * hop + n_fft] * w for i in range(n_frames)], -1)
    return np.fft.rfft(frames, axis=0)
