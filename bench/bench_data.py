"""Data throughput: BiAudio builder clips/s and SpatialDataModule clips/s (raw vs cached features).

Run: ``.venv/bin/python bench/bench_data.py`` -> ``bench/results/data.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results

from spatialgen.data.biaudio import BiAudioConfig, build_biaudio
from spatialgen.data.datamodule import SpatialDataModule
from spatialgen.data.features import Featurizer, build_feature_cache
from spatialgen.data.synthetic import generate_dataset

N_CLIPS, SECONDS = 8, 2.0


def _epoch(dm: SpatialDataModule) -> float:
    start = time.perf_counter()
    n = sum(len(b["clip_id"]) for b in dm.train_dataloader())
    return n / (time.perf_counter() - start)


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        split = {"train": 1.0, "val": 0.0, "test": 0.0}
        generate_dataset(root / "synth", N_CLIPS, 0, duration=SECONDS, progress=False, split_ratios=split)
        start = time.perf_counter()
        build_biaudio(root / "synth", root / "bi", BiAudioConfig(seed=0), progress=False)
        rate = N_CLIPS / (time.perf_counter() - start)
        results.append(
            {
                "name": "biaudio_build",
                "clips_per_s": round(rate, 3),
                "clip_seconds": SECONDS,
                "view": "112x112",
                "equirect": "256x512",
            }
        )
        common = {
            "dataset": "biaudio",
            "root": str(root / "bi"),
            "val_split": None,
            "test_split": None,
            "clip_seconds": None,
            "batch_size": 4,
        }
        feats = {"encoders": ["tiny"], "codec": "stft", "pretrained": False}
        raw_media = SpatialDataModule(**common)
        raw_media.setup("fit")
        results.append({"name": "datamodule_raw_media", "clips_per_s": round(_epoch(raw_media), 3)})
        raw = SpatialDataModule(**common, **feats)
        raw.setup("fit")
        results.append({"name": "datamodule_raw_features_on_the_fly", "clips_per_s": round(_epoch(raw), 3)})
        build_feature_cache(
            raw.datasets["train"].dataset, root / "cache" / "train", Featurizer(**feats), progress=False
        )
        cached = SpatialDataModule(**common, source="cache", cache_dir=str(root / "cache"))
        cached.setup("fit")
        results.append({"name": "datamodule_cache", "clips_per_s": round(_epoch(cached), 3)})
    write_results("data", results, n_clips=N_CLIPS, workers=0)


if __name__ == "__main__":
    main()
