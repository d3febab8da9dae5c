"""Demo settings, paths, logging and step timing (shared by every demo module)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the repository's recipes: the demo runs from a source checkout, next to them
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
BLOCK_SECONDS = 0.5  # direction is scored per 0.5-s block of each test clip
LATERAL_DEG = 20.0  # a block is "clearly lateral" when the source is > 20° off the median plane
SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


@dataclass
class DemoSettings:
    """Sizes of one demo run (defaults: the ``make demo`` size)."""

    out: Path
    clips: int = 160
    seconds: float = 1.0
    steps_encoder: int = 1000
    steps_visaudio: int = 600
    steps_visage: int = 1200
    codebook_size: int = 256
    batch_size: int = 8
    seed: int = 0
    quick: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


class _Step:
    """Times one demo step (wall and process CPU incl. children) into ``settings.timings``."""

    def __init__(self, settings: DemoSettings, name: str) -> None:
        self.settings, self.name = settings, name

    def __enter__(self) -> _Step:
        _log(f"{self.name} ...")
        self.t0, self.c0 = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall, cpu = time.perf_counter() - self.t0, _cpu_seconds() - self.c0
        self.settings.timings[self.name] = wall
        self.settings.timings[f"{self.name} (CPU)"] = cpu
        if exc[0] is None:
            _log(f"{self.name}: done in {wall:.1f} s wall, {cpu:.1f} s CPU")


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
