"""Resolve a weights spec to a local file, in one place for the whole project.

A spec is one of:

- a local path (``str`` or :class:`~pathlib.Path`);
- ``hf://<owner>/<repo>/<filename>[@<revision>]``: a file in a Hugging Face Hub repository, fetched with
  :func:`huggingface_hub.hf_hub_download` into the Hub cache (respects ``HF_HUB_OFFLINE``);
- ``http(s)://...``: an official URL, cached at a fixed location (``cache_path``; by default
  ``~/.cache/spatialgen/weights/<basename>``) and downloaded with :func:`torch.hub.download_url_to_file`
  only when that file is missing and we are not offline.

Anything that cannot be found raises :class:`WeightsNotFoundError` with one line that names what to
download and where to put it, so a machine without internet can be prepared by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spatialgen.errors import SpatialgenError

__all__ = [
    "HfSpec",
    "WeightsNotFoundError",
    "default_cache_dir",
    "is_offline",
    "parse_hf_spec",
    "resolve_weights",
    "sibling_spec",
]

_TRUE = {"1", "true", "yes", "on"}


class WeightsNotFoundError(SpatialgenError, FileNotFoundError):
    """Weights that are neither on disk nor downloadable now; the message says what to fetch and where."""


@dataclass(frozen=True)
class HfSpec:
    """A parsed ``hf://owner/repo/filename[@revision]`` spec."""

    repo_id: str
    filename: str
    revision: str | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}/{self.filename}{rev}"


def parse_hf_spec(spec: str) -> HfSpec:
    """Parse ``hf://owner/repo/path/to/file[@revision]``; raises ValueError on a malformed spec."""
    if not spec.startswith("hf://"):
        raise ValueError(f"weights spec {spec!r}: an hf spec must start with 'hf://'")
    body, _, revision = spec[len("hf://") :].partition("@")
    parts = [p for p in body.split("/") if p]
    if len(parts) < 3:
        raise ValueError(f"weights spec {spec!r}: expected 'hf://owner/repo/filename[@revision]'")
    return HfSpec("/".join(parts[:2]), "/".join(parts[2:]), revision or None)


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now or was set when huggingface_hub was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a hard dependency
        return False
    return bool(constants.HF_HUB_OFFLINE)


def default_cache_dir() -> Path:
    """Where URL weights without an explicit ``cache_path`` are cached (``$SPATIALGEN_CACHE`` overrides)."""
    env = os.environ.get("SPATIALGEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spatialgen" / "weights"


def sibling_spec(spec: str | os.PathLike, filename: str) -> str | Path:
    """The spec of ``filename`` next to ``spec`` (same folder, repo and revision): config beside weights."""
    text = os.fspath(spec)
    if text.startswith("hf://"):
        hf = parse_hf_spec(text)
        folder = hf.filename.rpartition("/")[0]
        return str(HfSpec(hf.repo_id, f"{folder}/{filename}" if folder else filename, hf.revision))
    if text.startswith(("http://", "https://")):
        return text.rpartition("/")[0] + "/" + filename
    return Path(text).expanduser().parent / filename


def resolve_weights(
    spec: str | os.PathLike,
    *,
    cache_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    what: str = "weights",
) -> Path:
    """Return a local file for ``spec`` (local path, ``hf://`` spec or URL), downloading if allowed.

    Args:
        spec: a local path, ``hf://owner/repo/filename[@revision]`` or an ``http(s)://`` URL.
        cache_path: for URLs, the exact file to use/download to (e.g. the DAC package's own cache file).
        cache_dir: for ``hf://`` specs, a Hub cache directory other than the default one.
        what: a short description used in error messages ("DAC 44khz weights").

    Raises:
        WeightsNotFoundError: the file is missing and cannot be downloaded now (offline, no network,
            unknown repo); the message names the source and the place to put the file.
    """
    text = os.fspath(spec)
    if text.startswith("hf://"):
        return _resolve_hf(parse_hf_spec(text), cache_dir=cache_dir, what=what)
    if text.startswith(("http://", "https://")):
        target = Path(cache_path).expanduser() if cache_path else default_cache_dir() / text.rsplit("/", 1)[1]
        return _resolve_url(text, target, what=what)
    path = Path(text).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"{what} not found at {path}: check the path or download the file there")
    return path


def _resolve_hf(spec: HfSpec, *, cache_dir: str | os.PathLike | None, what: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(spec.repo_id, spec.filename, revision=spec.revision, cache_dir=cache_dir))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        offline = " (HF_HUB_OFFLINE is set)" if is_offline() else ""
        rev = f" --revision {spec.revision}" if spec.revision else ""
        raise WeightsNotFoundError(
            f"{what} {spec} not available{offline}: run `hf download {spec.repo_id} {spec.filename}{rev}` "
            f"on a machine with internet and copy the Hub cache, or pass a local path "
            f"({type(exc).__name__})"
        ) from exc


def _resolve_url(url: str, target: Path, *, what: str) -> Path:
    if target.exists():
        return target
    hint = f"download {url} and save it as {target}"
    if is_offline():
        raise WeightsNotFoundError(f"{what} not found at {target} and HF_HUB_OFFLINE is set: {hint}")
    import torch.hub

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temporary file and renames it, so an interrupted download leaves nothing behind.
        torch.hub.download_url_to_file(url, str(target), progress=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsNotFoundError(
            f"{what} not found at {target} and the download failed ({exc}): {hint}"
        ) from exc
    return target
