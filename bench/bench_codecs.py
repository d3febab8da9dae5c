"""Codec benchmark: audio seconds coded per compute second (encode + decode) for each registered codec.

Workload: a 4-channel FOA clip (channels are coded as mono, folded into the batch), random weights
(speed does not depend on their values), inference mode. Reported per codec and device:
``encode_s`` / ``decode_s`` (best of 3 after a warm-up), ``rtf`` = clip seconds per second of
encode+decode, and ``mono_rtf`` = mono-channel seconds per second (4x rtf). Small configs by default;
``--full`` adds the full-size official DACs (44.1/24/16 kHz, ~75 M parameters each).
"""

from __future__ import annotations

import argparse

import torch
from common import timeit, write_results

from spatialgen.codecs import create_codec, list_codecs

FULL_SIZE = ("dac_16khz", "dac_24khz", "dac_44khz")


def bench(names: list[str], device: str, seconds: float, channels: int = 4) -> list[dict]:
    rows = []
    for name in names:
        codec = create_codec(name, pretrained=False).to(device)
        n = round(seconds * codec.sample_rate)
        gen = torch.Generator().manual_seed(0)
        x = (0.1 * torch.randn(1, channels, n, generator=gen)).to(device)
        with torch.inference_mode():
            enc = codec.encode(x)
            encode_s = timeit(lambda codec=codec, x=x: codec.encode(x), device=device)
            decode_s = timeit(lambda codec=codec, enc=enc, n=n: codec.decode(enc, length=n), device=device)
        total = encode_s + decode_s
        rows.append(
            {
                "codec": name,
                "kind": codec.kind,
                "device": device,
                "sample_rate": codec.sample_rate,
                "frame_rate": round(codec.frame_rate, 3),
                "params": sum(p.numel() for p in codec.parameters()),
                "channels": channels,
                "clip_seconds": seconds,
                "encode_s": encode_s,
                "decode_s": decode_s,
                "rtf": seconds / total,
                "mono_rtf": channels * seconds / total,
            }
        )
        print(f"{name} {device}: {rows[-1]['rtf']:.1f}x real time", flush=True)
        del codec
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time the full-size official DACs")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2 s)")
    args, _ = parser.parse_known_args()  # run_all.py forwards its own flags to every benchmark
    names = [n for n in list_codecs() if args.full or n not in FULL_SIZE]
    rows = bench(names, "cpu", args.seconds)
    if torch.cuda.is_available() and not args.cpu_only:
        rows += bench(names, "cuda", args.seconds)
    write_results(
        "codecs",
        rows,
        note="rtf = clip seconds (4-channel FOA) per second of encode+decode; mono_rtf counts each channel",
    )


if __name__ == "__main__":
    main()
