"""Command-line start-up: wall time and peak memory of ``--help`` and of an option error.

Each variant runs as a fresh ``python`` process (``--repeats`` times, after one warm-up run that fills the
OS file cache); reported are the median wall seconds and the median peak RSS (MiB, from ``os.wait4``).
``import spatialgen.generate + zoo`` is what ``spatialgen generate --help`` imported before the parser
moved to the light :mod:`spatialgen.generate_cli` (torch, PyAV, scipy, the model code), and ``import
torch`` is the floor of any command that generates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import write_results

TIME = "/usr/bin/time"

VARIANTS: dict[str, list[str]] = {
    "spatialgen --help": ["-m", "spatialgen", "--help"],
    "spatialgen generate --help": ["-m", "spatialgen", "generate", "--help"],
    "spatialgen generate --batch-size 0 (error)": [
        *("-m", "spatialgen", "generate", "x.mp4", "--model", "m", "--out", "o", "--batch-size", "0")
    ],
    "import spatialgen.generate + zoo (the old help path)": ["-c", "import spatialgen.generate, zoo"],
    "import torch": ["-c", "import torch"],
}


def run_once(args: list[str], report: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``python args`` process.

    Started through GNU time: a child forked from this (torch-importing) process would count the
    parent's pages in its peak RSS until it execs.
    """
    cmd = [TIME, "-f", "%e %M", "-o", report, sys.executable, *args]
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    with open(report) as f:
        peak_kib = float(f.read().split()[-1])
    return wall, peak_kib / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args, _ = p.parse_known_args()  # run_all.py passes its own options on
    if not os.access(TIME, os.X_OK):
        print(f"{TIME} (GNU time) is needed for the peak memory; install the 'time' package", file=sys.stderr)
        return 2
    rows = []
    report = os.path.join(tempfile.mkdtemp(), "time.txt")
    for name, argv in VARIANTS.items():
        run_once(argv, report)  # warm-up
        runs = [run_once(argv, report) for _ in range(args.repeats)]
        rows.append(
            {
                "variant": name,
                "wall_s_median": statistics.median(r[0] for r in runs),
                "peak_rss_mib_median": statistics.median(r[1] for r in runs),
                "repeats": args.repeats,
            }
        )
        print(
            f"{name}: {rows[-1]['wall_s_median']:.2f} s, {rows[-1]['peak_rss_mib_median']:.0f} MiB",
            flush=True,
        )
    write_results("cli", rows, load_average=os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
