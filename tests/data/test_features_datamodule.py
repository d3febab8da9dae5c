"""Feature cache (resumable, exact read-back), DataModule raw vs cache, streaming shard splitting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from spatialgen.data.clips import ClipOptions, DatasetError
from spatialgen.data.datamodule import SpatialDataModule
from spatialgen.data.features import CachedDataset, Featurizer, build_feature_cache
from spatialgen.data.registry import create_dataset
from spatialgen.data.streaming import ShardStream, write_shards
from spatialgen.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(
        root, 2, 4, duration=1.0, progress=False, split_ratios={"train": 1.0, "val": 0.0, "test": 0.0}
    )
    return root


FEATS = {"encoders": ["tiny"], "codec": "stft", "pretrained": False, "seed": 0}


def test_cache_resumable_and_exact(synth: Path, tmp_path: Path) -> None:
    ds = create_dataset("synthetic", synth, "train", ClipOptions(clip_seconds=None, format="binaural"))
    featurizer = Featurizer(**FEATS)
    out = tmp_path / "cache" / "train"
    assert build_feature_cache(ds, out, featurizer, shard_size=1, progress=False) == {
        "done": 2,
        "skipped": 0,
        "failed": 0,
    }
    first = [CachedDataset(out)[i] for i in range(2)]
    assert sorted(p.parent.name for p in out.rglob("*.safetensors")) == ["shard_00000", "shard_00001"]
    assert build_feature_cache(ds, out, featurizer, progress=False) == {"done": 0, "skipped": 2, "failed": 0}
    # a crash after writing a clip but before the index flush still counts the clip as done
    (out / "index.json").unlink()
    assert build_feature_cache(ds, out, featurizer, shard_size=1, progress=False)["skipped"] == 2
    again = CachedDataset(out)
    for i, item in enumerate(first):
        back = again[i]
        assert back["clip_id"] == item["clip_id"] == ds.clip_id(i)
        assert torch.equal(back["features"]["tiny"], item["features"]["tiny"])
        assert torch.equal(back["latents"], item["latents"])
    item = first[0]
    assert item["features"]["tiny"].shape == (8, 32) and item["features_fps"] == {"tiny": 8.0}
    assert item["latents"].shape[0] == 2 and item["audio_format"] == "binaural"
    # the same featurizer computes the same tensors on the fly (the raw path)
    again_featurizer = Featurizer(**FEATS)
    fresh = again_featurizer({k: v.load(0) for k, v in again_featurizer.views(ds).items()})
    assert torch.allclose(fresh["features"]["tiny"], item["features"]["tiny"], atol=1e-6)
    with pytest.raises(DatasetError, match="other settings"):
        build_feature_cache(
            ds, out, Featurizer(encoders=["tiny"], codec=None, pretrained=False), progress=False
        )


def test_cache_records_failures(synth: Path, tmp_path: Path) -> None:
    ds = create_dataset("synthetic", synth, "train", ClipOptions(clip_seconds=None))
    (tmp_path / "bad").mkdir()
    broken = create_dataset(
        "synthetic", synth, "train", ClipOptions(clip_seconds=3.0)
    )  # every clip too short
    with pytest.raises(DatasetError, match="every clip failed"):
        build_feature_cache(broken, tmp_path / "bad", Featurizer(**FEATS), progress=False)
    assert len(ds) == 2


def test_datamodule_raw_and_cache_same_batches(synth: Path, tmp_path: Path) -> None:
    common = {
        "dataset": "synthetic",
        "root": str(synth),
        "val_split": None,
        "test_split": None,
        "clip_seconds": None,
        "format": "foa",
        "batch_size": 2,
        "num_workers": 0,
    }
    raw = SpatialDataModule(**common, **FEATS)
    raw.setup("fit")
    cache = tmp_path / "cache"
    build_feature_cache(raw.datasets["train"].dataset, cache / "train", Featurizer(**FEATS), progress=False)
    cached = SpatialDataModule(**common, source="cache", cache_dir=str(cache))
    cached.setup("fit")
    b_raw, b_cache = next(iter(raw.train_dataloader())), next(iter(cached.train_dataloader()))
    assert set(b_raw) == set(b_cache)
    for key in b_raw:
        if isinstance(b_raw[key], torch.Tensor):
            assert b_raw[key].shape == b_cache[key].shape, key
    assert b_raw["latents"].shape[:2] == (2, 4) and b_raw["features"]["tiny"].shape == (2, 8, 32)
    media = SpatialDataModule(**{**common, "clip_seconds": 0.5}, rotate_prob=1.0)
    media.setup("fit")
    batch = next(iter(media.train_dataloader()))
    assert batch["video"].shape[:2] == (2, 4) and batch["audio"].shape == (2, 4, 8000)
    assert batch["video_mask"].all() and batch["camera_direction"].abs().sum() > 0  # rotated labels
    with pytest.raises(ValueError, match="raw media"):
        SpatialDataModule(**common, source="cache", cache_dir=str(cache), rotate_prob=0.5)


def test_datamodule_predict_arbitrary_videos(synth: Path) -> None:
    videos = sorted(str(p) for p in synth.rglob("video.mp4"))
    dm = SpatialDataModule(root=str(synth), predict_files=videos, fps=4.0, batch_size=2)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["video"].shape == (2, 4, 3, 112, 112) and batch["video_mask"].all()
    assert batch["clip_id"] == ["video", "video"]


def test_streaming_split_disjoint_across_ranks_and_workers(synth: Path, tmp_path: Path) -> None:
    items = [
        {"clip_id": f"clip{i:02d}", "audio": torch.full((1, 4), float(i)), "labels": [str(i)]}
        for i in range(16)
    ]
    shards = write_shards(items, tmp_path / "shards", clips_per_shard=2, progress=False)
    assert len(shards) == 8
    seen = []
    for rank in range(2):
        stream = ShardStream(tmp_path / "shards", rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        got = [item["clip_id"] for item in loader]
        assert len(got) == 8
        seen += got
    assert sorted(seen) == [f"clip{i:02d}" for i in range(16)]  # no duplicates, no drops
    one = next(iter(ShardStream(shards[:1])))
    assert one["labels"] == ["0"] and torch.equal(one["audio"], items[0]["audio"])
    with pytest.raises(DatasetError, match="no tar shards"):
        ShardStream(tmp_path / "nothing")


def test_features_cli_uses_a_weights_file(synth: Path, tmp_path: Path) -> None:
    """`spatialgen data features --weights tiny=FILE` caches that encoder's features, not the seeded random one's."""
    from safetensors.torch import save_file

    from spatialgen.cli import main
    from spatialgen.encoders import create_encoder

    torch.manual_seed(123)  # weights that differ from the featurizer's seed-0 random init
    trained = create_encoder("tiny", pretrained=False).eval()
    save_file(trained.state_dict(), str(tmp_path / "tiny.safetensors"))
    common = ["data", "features", "--dataset", "synthetic", "--root", str(synth), "--splits", "train"]
    common += ["--encoders", "tiny", "--random-weights", "--quiet"]
    assert (
        main([*common, "--out", str(tmp_path / "w"), "--weights", f"tiny={tmp_path / 'tiny.safetensors'}"])
        == 0
    )
    assert main([*common, "--out", str(tmp_path / "r")]) == 0
    with_file, seeded = CachedDataset(tmp_path / "w" / "train")[0], CachedDataset(tmp_path / "r" / "train")[0]
    clip = create_dataset("synthetic", synth, "train", ClipOptions(clip_seconds=None))
    item = next(clip[i] for i in range(len(clip)) if clip[i]["clip_id"] == with_file["clip_id"])
    with torch.no_grad():
        expected = trained(item["video"][None]).global_features[0]
    torch.testing.assert_close(with_file["features"]["tiny"], expected, rtol=0, atol=1e-6)
    assert not torch.allclose(seeded["features"]["tiny"], expected, atol=1e-3)
    assert main([*common, "--out", str(tmp_path / "x"), "--weights", "clip_vit_b32=x.safetensors"]) == 2
    assert main([*common, "--out", str(tmp_path / "x"), "--weights", "tiny"]) == 2
