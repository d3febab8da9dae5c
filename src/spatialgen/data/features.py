"""Feature cache: visual features at each encoder's frame rate and audio codes/latents per channel.

Layout of a cache folder (one dataset split)::

    index.json                {"schema_version", "spec": {...}, "clips": {clip_id: file}, "failures": {clip_id: reason}}
    shard_00000/<clip_id>.safetensors    clips 0..shard_size-1 of the split, one file each
    shard_00001/...

Each file holds the tensors ``features.<encoder>`` ``[T_e, D]`` (and ``patch_tokens.<encoder>``),
``codes`` ``[C, Q, F]`` (discrete codec) or ``latents`` ``[C, D, F]``, ``camera_direction``,
``camera_pose``; its safetensors metadata holds the clip id, labels, start and rates. The build is
resumable (clips with a file are skipped), decodes in ``workers`` DataLoader processes while the
encoders run in the main process, shows a progress bar, and records per-clip failures in the index
(skipped on the next run unless ``retry_failed``). :class:`CachedDataset` reads a cache back as items
of :mod:`spatialgen.data.clips`; :class:`FeatureDataset` computes the same items on the fly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from spatialgen.data.clips import ClipDataset, DatasetError
from spatialgen.errors import MediaError
from spatialgen.io.audio import atomic_output

__all__ = [
    "CACHE_VERSION",
    "CachedDataset",
    "FeatureDataset",
    "Featurizer",
    "build_feature_cache",
    "read_cache_index",
    "unflatten_tensors",
]

log = logging.getLogger("spatialgen.data")
CACHE_VERSION = 1
INDEX = "index.json"
_META_KEYS = ("clip_id", "start", "labels", "sample_rate", "audio_format", "features_fps", "codec_frame_rate")


class Featurizer:
    """Frozen encoders + codec that turn decoded media into cached-item tensors.

    Args:
        encoders: encoder names (built with :func:`spatialgen.encoders.create_encoder`) or modules.
        codec: codec name (:func:`spatialgen.codecs.create_codec`), a codec module, or None.
        pretrained: load the published weights for names (False: random init, seeded by ``seed``).
        patch_tokens: also keep each encoder's patch tokens.
        device: where the models run.
        seed: torch seed used while building randomly initialised models (same weights every run).
    """

    def __init__(
        self,
        encoders: Sequence[Any],
        codec: Any = None,
        *,
        pretrained: bool = True,
        patch_tokens: bool = False,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        from spatialgen.codecs import create_codec
        from spatialgen.encoders import create_encoder

        self.device = torch.device(device)
        self.patch_tokens = bool(patch_tokens)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.encoders = {}
            for enc in encoders:
                module = create_encoder(enc, pretrained=pretrained) if isinstance(enc, str) else enc
                self.encoders[enc if isinstance(enc, str) else module.name] = module.to(self.device).eval()
            self.codec = create_codec(codec, pretrained=pretrained) if isinstance(codec, str) else codec
            if self.codec is not None:
                self.codec = self.codec.to(self.device).eval()
        finally:
            torch.random.set_rng_state(state)
        if not self.encoders and self.codec is None:
            raise ValueError("Featurizer needs at least one encoder or a codec")

    def spec(self) -> dict[str, Any]:
        """What a cache built with this featurizer contains (checked when a cache is resumed)."""
        return {
            "encoders": {
                n: {"fps": float(e.output_fps), "dim": int(e.embed_dim)} for n, e in self.encoders.items()
            },
            "patch_tokens": self.patch_tokens,
            "codec": None
            if self.codec is None
            else {
                "name": getattr(self.codec, "name", type(self.codec).__name__),
                "frame_rate": float(self.codec.frame_rate),
                "discrete": self.codec.num_codebooks is not None,
            },
        }

    def views(self, dataset: ClipDataset) -> dict[str, ClipDataset]:
        """Dataset views that decode what the models need: video at each encoder's fps, audio at the codec rate."""
        out: dict[str, ClipDataset] = {}
        fixed = {"random_crop": False}
        for enc in self.encoders.values():
            out.setdefault(
                f"video@{enc.fps:g}",
                dataset.with_options(fps=float(enc.fps), video_size=None, load_audio=False, **fixed),
            )
        if self.codec is not None:
            out["audio"] = dataset.with_options(
                sample_rate=int(self.codec.sample_rate), load_video=False, **fixed
            )
        elif not out:
            out["meta"] = dataset.with_options(load_video=False, load_audio=False, **fixed)
        return out

    @torch.no_grad()
    def __call__(self, media: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Item with ``features``/``codes``/``latents`` from the decoded views (see :meth:`views`)."""
        base = next(iter(media.values()))
        item: dict[str, Any] = {
            k: base[k] for k in ("clip_id", "start", "labels", "camera_direction") if k in base
        }
        if self.encoders:
            item["features"], item["features_fps"] = {}, {}
            if self.patch_tokens:
                item["patch_tokens"] = {}
            for name, enc in self.encoders.items():
                view = media[f"video@{enc.fps:g}"]
                out = enc(view["video"][None].to(self.device), patch_tokens=self.patch_tokens)
                item["features"][name] = out.global_features[0].float().cpu()
                item["features_fps"][name] = float(out.fps)
                if self.patch_tokens:
                    item["patch_tokens"][name] = out.patch_tokens[0].float().cpu()
            item["camera_pose"] = media[f"video@{next(iter(self.encoders.values())).fps:g}"]["camera_pose"]
        else:
            item["camera_pose"] = base["camera_pose"]
        if self.codec is not None:
            audio = media["audio"]
            x = audio["audio"][None].to(self.device)
            if self.codec.num_codebooks is not None:
                item["codes"] = self.codec.encode(x, audio["sample_rate"])[0].long().cpu()
            elif hasattr(self.codec, "encode_posterior"):  # a VAE: cache the posterior mean, never a sample
                mean, _ = self.codec.encode_posterior(x, audio["sample_rate"])
                item["latents"] = mean[0].float().cpu()
            else:
                item["latents"] = self.codec.encode_latents(x, audio["sample_rate"])[0].float().cpu()
            item["codec_frame_rate"] = float(self.codec.frame_rate)
            item["sample_rate"] = int(audio["sample_rate"])
            item["audio_format"] = audio["audio_format"]
        return item


class _MediaViews(Dataset):
    """Decodes clip ``i`` in every view without substitution: ``(index, clip_id, media or None, reason)``."""

    def __init__(self, views: dict[str, ClipDataset], indices: Sequence[int]) -> None:
        self.views = views
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, str, dict[str, Any] | None, str | None]:
        i = self.indices[k]
        first = next(iter(self.views.values()))
        media = {}
        for key, view in self.views.items():
            item, reason = view.try_load(i)
            if item is None:
                return i, first.clip_id(i), None, reason
            media[key] = item
        return i, first.clip_id(i), media, None


def _write_index(root: Path, index: dict[str, Any]) -> None:
    with atomic_output(root / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=1))


def read_cache_index(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``index.json`` of a cache folder; a missing or invalid one raises :class:`DatasetError`."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise DatasetError(f"{path}: no feature cache here (build it with `spatialgen data features`)")
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable cache index ({str(e).splitlines()[0]})") from None
    if index.get("schema_version", 0) > CACHE_VERSION:
        raise DatasetError(
            f"{path}: cache schema {index.get('schema_version')} is newer than this spatialgen reads"
        )
    return index


def _save_item(path: Path, item: dict[str, Any]) -> None:
    tensors = {
        f"{group}.{name}": t.contiguous()
        for group in ("features", "patch_tokens")
        for name, t in item.get(group, {}).items()
    }
    for key in ("codes", "latents", "camera_direction", "camera_pose"):
        if key in item:
            tensors[key] = item[key].contiguous()
    metadata = {k: json.dumps(item[k]) for k in _META_KEYS if k in item}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_cached_item(path: Path) -> dict[str, Any]:
    """One cached clip as an item; a missing or corrupt file raises :class:`MediaError`."""
    if not path.is_file():
        raise MediaError(path, "cached clip file not found")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise MediaError(path, f"corrupt cache file ({str(e).splitlines()[0]})") from None
    return unflatten_tensors({k: json.loads(v) for k, v in metadata.items()}, tensors)


def unflatten_tensors(item: dict[str, Any], tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    """``item`` with the flat tensors added: ``"group.name"`` keys (``features``, ``patch_tokens``) go to
    ``item[group][name]``, the others to ``item[key]`` (the inverse of the flat safetensors layout shared
    by the feature cache and the stream shards)."""
    for key, value in tensors.items():
        group, _, name = key.partition(".")
        if name:
            item.setdefault(group, {})[name] = value
        else:
            item[key] = value
    return item


def build_feature_cache(
    dataset: ClipDataset,
    out: str | os.PathLike[str],
    featurizer: Featurizer,
    *,
    shard_size: int = 1000,
    workers: int = 0,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Cache the features of every clip of ``dataset`` in ``out``; returns counts ``done/skipped/failed``.

    Resumable: clips that already have a file are skipped; a cache built with another featurizer
    spec (encoders, codec) is refused. Failed clips are recorded in ``index.json`` and skipped.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    spec = featurizer.spec()
    if (root / INDEX).is_file():
        index = read_cache_index(root)
        if index.get("spec") != spec:
            raise DatasetError(
                f"{root}: holds a cache built with other settings ({index.get('spec')}); use a new folder"
            )
    else:
        index = {"schema_version": CACHE_VERSION, "spec": spec, "clips": {}, "failures": {}}
    ids = [dataset.clip_id(i) for i in range(len(dataset))]
    files = {c: f"shard_{i // shard_size:05d}/{c}.safetensors" for i, c in enumerate(ids)}
    for clip, file in files.items():  # files written after the last index flush still count as done
        if (root / file).is_file():
            index["clips"][clip] = file
    if retry_failed:
        index["failures"] = {}
    todo = [i for i, c in enumerate(ids) if c not in index["clips"] and c not in index["failures"]]
    counts = {"done": 0, "skipped": len(ids) - len(todo), "failed": 0}
    loader = DataLoader(
        _MediaViews(featurizer.views(dataset), todo),
        batch_size=None,
        num_workers=int(workers),
        collate_fn=lambda x: x,
    )
    with tqdm(total=len(todo), desc="features", unit="clip", disable=not progress) as bar:
        for n, (_, clip, media, reason) in enumerate(loader):
            if media is None:
                index["failures"][clip] = reason or "unknown"
                counts["failed"] += 1
                log.warning("features: clip %s failed (%s)", clip, reason)
            else:
                path = root / files[clip]
                path.parent.mkdir(exist_ok=True)
                _save_item(path, featurizer(media))
                index["clips"][clip] = files[clip]
                counts["done"] += 1
            bar.update()
            if n % 50 == 49:
                _write_index(root, index)
    _write_index(root, index)
    if not index["clips"]:
        raise DatasetError(f"{root}: every clip failed (e.g. {next(iter(index['failures'].items()), None)})")
    return counts


class CachedDataset(ClipDataset):
    """Items read back from a feature cache folder (one split), in the order they were built."""

    name = "cache"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        from spatialgen.data.clips import ClipOptions

        super().__init__(ClipOptions(clip_seconds=None, load_video=False, load_audio=False))
        self.root = Path(root)
        self.index = read_cache_index(self.root)
        self.clips = sorted(self.index["clips"].items(), key=lambda kv: kv[1])
        if not self.clips:
            raise DatasetError(f"{self.root}: the feature cache holds no clips")

    def __len__(self) -> int:
        return len(self.clips)

    def clip_id(self, index: int) -> str:
        return self.clips[index][0]

    def load(self, index: int) -> dict[str, Any]:
        return load_cached_item(self.root / self.clips[index][1])


class FeatureDataset(ClipDataset):
    """Computes cached-item features on the fly from a raw dataset (same items as :class:`CachedDataset`).

    The featurizer is built lazily in each worker process from ``featurizer_kwargs``.
    """

    name = "features"

    def __init__(
        self, dataset: ClipDataset, featurizer_kwargs: dict[str, Any], keep_media: bool = False
    ) -> None:
        super().__init__(dataset.options)
        self.dataset = dataset
        self.featurizer_kwargs = dict(featurizer_kwargs)
        self.keep_media = keep_media
        self._featurizer: Featurizer | None = None
        self._views: dict[str, ClipDataset] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def clip_id(self, index: int) -> str:
        return self.dataset.clip_id(index)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def load(self, index: int) -> dict[str, Any]:
        if self._featurizer is None:
            self._featurizer = Featurizer(**self.featurizer_kwargs)
            self._views = self._featurizer.views(self.dataset)
        media = {key: view.load(index) for key, view in self._views.items()}
        item = self._featurizer(media)
        if self.keep_media:
            item.update({k: v for k, v in self.dataset.load(index).items() if k not in item})
        return item
