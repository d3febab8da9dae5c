"""DSP core benchmark: real-time factors of FOA rotation, binaural rendering and equirect projection.

Workloads (issue 2): FOA rotate (per-sample yaw/pitch/roll trajectory) + binaural render of 60 s of
48 kHz audio; equirect -> perspective of 8 s of 224² video at 8 fps. Real-time factor = media seconds
processed per second of compute (higher is better). Floors: the per-sample rotation is 9 MAC/sample
plus building R(t) (~40 flops/sample); the binaural render is 8 FFT convolutions (4 SH channels x 2
ears) of 2.88 M samples; the projection reads 4 taps x 3 channels per output pixel.
"""

from __future__ import annotations

import argparse
import math

import torch
from common import timeit, write_results

from spatialgen.spatial import binaural, foa, projection


def bench(device: str, dtype: torch.dtype) -> list[dict]:
    rows = []
    sr, seconds = 48_000, 60.0
    n = int(sr * seconds)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, n, generator=gen, dtype=dtype) * 0.1).to(device)
    t = torch.arange(n, dtype=dtype, device=device) / sr
    # per-sample angles carry the batch dim: [B, T] for x [B, 4, T]
    yaw, pitch, roll = (a * torch.sin(w * t)[None] for a, w in ((0.5, 0.3), (0.2, 0.2), (0.1, 0.1)))

    def rotate_static() -> torch.Tensor:
        return foa.rotate(x, 0.3, 0.1, 0.05)

    def rotate_trajectory() -> torch.Tensor:
        return foa.rotate(x, yaw, pitch, roll)

    def render() -> torch.Tensor:
        return binaural.render_foa(x, sr)

    def row(op: str, sec: float, media_seconds: float, kind: str = str(dtype)) -> dict:
        return {"op": op, "device": device, "dtype": kind, "seconds": sec, "rtf": media_seconds / sec}

    binaural.render_foa(x[..., :sr], sr)  # build and cache the decoder filters outside the timing
    rows.append(row("foa_rotate_static", timeit(rotate_static, device=device), seconds))
    rows.append(row("foa_rotate_trajectory", timeit(rotate_trajectory, device=device), seconds))
    rows.append(row("binaural_render_foa", timeit(render, device=device, repeats=2), seconds))
    both = timeit(lambda: binaural.render_foa(foa.rotate(x, yaw, pitch, roll), sr), device=device, repeats=2)
    rows.append(row("rotate+binaural", both, seconds))

    fps, video_seconds = 8, 8.0
    n_frames = int(fps * video_seconds)
    frames = torch.randint(0, 256, (1, n_frames, 3, 512, 1024), dtype=torch.uint8, generator=gen).to(device)
    frame_yaw = torch.linspace(-math.pi, math.pi, n_frames, device=device)[None]
    sec = timeit(
        lambda: projection.equirect_to_perspective(frames, frame_yaw, 0.2, 0.1, math.radians(90), (224, 224)),
        device=device,
    )
    rows.append(row("equirect_to_perspective_224", sec, video_seconds, "uint8"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    rows = bench("cpu", torch.float32)
    if torch.cuda.is_available() and not args.cpu_only:
        rows += bench("cuda", torch.float32)
    write_results("dsp", rows, note="rtf = media seconds per compute second (higher is better)")


if __name__ == "__main__":
    main()
