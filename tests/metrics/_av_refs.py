"""Independent numpy / functional references for the official scorers' tests (hkchengrex/av-benchmark)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def kaldi_mel_ref(n_mels: int, n_fft: int, sr: float, lo: float, hi: float) -> np.ndarray:
    """Kaldi triangles, loop form: [n_mels, n_fft//2 + 1] (Nyquist column zero)."""

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    out = np.zeros((n_mels, n_fft // 2 + 1))
    ml, mh = mel(lo), mel(hi)
    d = (mh - ml) / (n_mels + 1)
    x = mel(sr * np.arange(n_fft // 2) / n_fft)
    for m in range(n_mels):
        left, c, right = ml + m * d, ml + (m + 1) * d, ml + (m + 2) * d
        rise, fall = (x > left) & (x <= c), (x > c) & (x < right)
        out[m, : n_fft // 2][rise] = (x[rise] - left) / (c - left)
        out[m, : n_fft // 2][fall] = (right - x[fall]) / (right - c)
    return out


def kaldi_fbank_ref(x: np.ndarray, sr: int, n_mels: int) -> np.ndarray:
    """[frames, n_mels]: 25/10 ms, snip edges, DC removal, pre-emphasis 0.97, symmetric Hann, 512-pt power."""
    win, hop = int(0.025 * sr), int(0.010 * sr)
    n = 1 + (len(x) - win) // hop
    banks = kaldi_mel_ref(n_mels, 512, sr, 20.0, sr / 2)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / (win - 1))
    f = np.stack([x[i * hop : i * hop + win] for i in range(n)]).astype(np.float64)
    f = f - f.mean(1, keepdims=True)
    f = f - 0.97 * np.concatenate([f[:, :1], f[:, :-1]], 1)
    p = np.abs(np.fft.rfft(f * w, 512, axis=1)) ** 2
    return np.log(np.maximum(p @ banks.T, np.finfo(np.float32).eps))


def stft_power_ref(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Centred (reflect-padded) power STFT [bins, frames]; ``window`` is centred in ``n_fft``."""
    w = np.zeros(n_fft)
    off = (n_fft - len(window)) // 2
    w[off : off + len(window)] = window
    xp = np.pad(x, n_fft // 2, mode="reflect")
    frames = [xp[i : i + n_fft] * w for i in range(0, len(xp) - n_fft + 1, hop)]
    return (np.abs(np.fft.rfft(np.stack(frames), axis=-1)) ** 2).T


def htk_mel_ref(n_freqs: int, sr: int, n_mels: int, fmax: float) -> np.ndarray:
    """torchaudio melscale_fbanks(htk, norm=None), loop form: [n_freqs, n_mels]."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges = np.linspace(mel(0.0), mel(fmax), n_mels + 2)
    hz = 700.0 * (10 ** (edges / 2595.0) - 1.0)
    freqs = np.linspace(0, sr // 2, n_freqs)
    out = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        out[:, m] = np.maximum(0.0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return out


# ------------------------------------------------------------------------- functional forwards


def ln(x, sd, p, eps):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps)


def attention(q, k, v, heads):
    b, n, d = q.shape
    split = lambda t: t.reshape(b, t.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1)
    return (a @ v).transpose(1, 2).reshape(b, n, d)


def mha(x, sd, p, heads):
    """nn.MultiheadAttention (in_proj [q; k; v], optional bias_k / bias_v appended as one extra key)."""
    q, k, v = F.linear(x, sd[p + ".in_proj_weight"], sd[p + ".in_proj_bias"]).chunk(3, -1)
    if p + ".bias_k" in sd:
        k = torch.cat([k, sd[p + ".bias_k"].expand(x.shape[0], 1, -1)], 1)
        v = torch.cat([v, sd[p + ".bias_v"].expand(x.shape[0], 1, -1)], 1)
    return F.linear(attention(q, k, v, heads), sd[p + ".out_proj.weight"], sd[p + ".out_proj.bias"])


def gelu_mlp(x, sd, p1, p2):
    return F.linear(
        F.gelu(F.linear(x, sd[p1 + ".weight"], sd[p1 + ".bias"])), sd[p2 + ".weight"], sd[p2 + ".bias"]
    )
