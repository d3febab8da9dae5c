"""Weights made by a recipe on first use: the ``recipe:NAME`` weight spec.

A weight argument (e.g. either module's ``encoder_pretrained``) may name
the recipe that makes the file instead of the file: ``recipe:visual_direction_synthetic`` means "the
weights that ``recipes/visual_direction_synthetic.yaml`` exports (its ``model.init_args.export_path``)".
When that file is missing, :func:`ensure_recipe_weights` runs exactly the command a user would,
``spatialgen fit --config <recipe>``, in a child process in the current folder, announced in one line,
with that run's own progress output; then the file is loaded like any weight path. The spec is written in
the recipe, so nothing happens that the recipe does not say; a plain path that is missing stays a one-line
error (:func:`spatialgen.encoders.loading.load_state_file`), never a silent training run.

Why a child process: the chained run must be the very run ``spatialgen fit`` does (its seed, its
threads, its data synthesis and logs) and must leave the calling run's random state untouched, so a run
that made the file on first use trains the same as a run that found it. The file lands where the recipe
says, written atomically by :meth:`VisualDirectionModule.export_encoder`; delete it to have it made again.
A lock next to the file keeps concurrent processes (several ranks, two runs) from training it twice.
Frozen encoders are not saved in Lightning checkpoints, so a module rebuilt from one in another folder
resolves the spec again (and makes the file there); exported pipelines carry the encoder's weights.

``NAME`` is a recipe of the spatialgen checkout (``<repository>/recipes/NAME.yaml``); a value ending in
``.yaml``/``.yml`` is a recipe path (relative to the current folder).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

import spatialgen
from spatialgen.encoders.loading import RECIPE_PREFIX, EncoderWeightsError

__all__ = ["RECIPE_PREFIX", "ensure_recipe_weights", "recipe_output", "recipes_dir", "resolve_recipe"]

#: recipes being run by a chain in this process tree (a recipe needing its own output is a cycle)
_ACTIVE_ENV = "SPATIALGEN_CHAIN_ACTIVE"

Runner = Callable[[Sequence[str], dict[str, str]], int]


def recipes_dir() -> Path:
    """The ``recipes/`` folder of the checkout that holds the running spatialgen (``src/`` layout)."""
    return Path(spatialgen.__file__).resolve().parents[2] / "recipes"


def resolve_recipe(ref: str) -> Path:
    """``NAME`` -> ``<checkout>/recipes/NAME.yaml``; a ``.yaml``/``.yml`` value is a path. One-line errors."""
    if not ref:
        raise EncoderWeightsError(
            f"{RECIPE_PREFIX!r} needs a recipe name, e.g. recipe:visual_direction_synthetic"
        )
    if ref.endswith((".yaml", ".yml")):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise EncoderWeightsError(f"{RECIPE_PREFIX}{ref}: recipe file not found")
        return path
    folder = recipes_dir()
    path = folder / f"{ref}.yaml"
    if path.is_file():
        return path
    if not folder.is_dir():
        raise EncoderWeightsError(
            f"{RECIPE_PREFIX}{ref}: no recipes/ folder next to this spatialgen ({folder}); run from a clone "
            "of the repository or give the recipe's path (recipe:path/to/recipe.yaml)"
        )
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
    raise EncoderWeightsError(f"{RECIPE_PREFIX}{ref}: no recipe {path}; {hint}")


def recipe_output(recipe: Path) -> Path:
    """The weight file a recipe exports: its ``model.init_args.export_path`` (relative to the current folder)."""
    try:
        config = yaml.safe_load(recipe.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EncoderWeightsError(f"{recipe}: cannot read the recipe ({type(exc).__name__}: {exc})") from exc
    model = config.get("model") if isinstance(config, dict) else None
    args = model.get("init_args") if isinstance(model, dict) else None
    export = args.get("export_path") if isinstance(args, dict) else None
    if not isinstance(export, str) or not export:
        raise EncoderWeightsError(
            f"{recipe}: sets no model.init_args.export_path, so it makes no weight file a recipe: spec can load"
        )
    return Path(export).expanduser()


def _shown(recipe: Path) -> str:
    """The recipe as the user would type it here: relative to the current folder when inside it."""
    try:
        return recipe.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(recipe.resolve())


def _run_child(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run the chained fit with this process's stdout/stderr, so its progress shows as it happens."""
    return subprocess.run(list(cmd), env=env, check=False).returncode


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` (released by the OS if this process dies)."""
    lock = target.with_name(target.name + ".lock")
    with open(lock, "a") as handle:
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): concurrent first uses are not guarded
            fcntl = None
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
    lock.unlink(missing_ok=True)


def ensure_recipe_weights(ref: str, *, what: str = "weights", runner: Runner | None = None) -> Path:
    """Path of the weight file recipe ``ref`` exports, made by ``spatialgen fit`` on first use.

    Args:
        ref: the part after ``recipe:`` (a recipe name of the checkout, or a ``.yaml`` path).
        what: what the weights are for, named in the announcement.
        runner: ``runner(cmd, env) -> exit code``; default: a child process sharing this one's output.

    Raises :class:`EncoderWeightsError` (one line) for an unknown recipe, a recipe that exports nothing,
    a recipe that needs its own output, and a chained run that fails or writes no file.
    """
    recipe = resolve_recipe(ref)
    target = recipe_output(recipe)
    if target.is_file():
        return target
    key = str(recipe.resolve())
    active = [p for p in os.environ.get(_ACTIVE_ENV, "").split(os.pathsep) if p]
    shown = f"spatialgen fit --config {_shown(recipe)}"
    if key in active:
        raise EncoderWeightsError(f"{RECIPE_PREFIX}{ref}: `{shown}` needs its own output {target} (a cycle)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        if target.is_file():  # made by a concurrent process while this one waited for the lock
            return target
        print(
            f"spatialgen: {target} ({what}) not found; making it now with `{shown}` (first use only, "
            "exactly that command's run; delete the file to have it made again)",
            file=sys.stderr,
            flush=True,
        )
        src = str(Path(spatialgen.__file__).resolve().parents[1])  # the child imports this same spatialgen
        path = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
        env = {**os.environ, "PYTHONPATH": path, _ACTIVE_ENV: os.pathsep.join([*active, key])}
        cmd = [sys.executable, "-m", "spatialgen", "fit", "--config", str(recipe)]
        code = (runner or _run_child)(cmd, env)
        if code != 0:
            raise EncoderWeightsError(f"{target}: `{shown}` failed (exit {code}; its output is above)")
        if not target.is_file():
            raise EncoderWeightsError(
                f"{target}: `{shown}` finished without writing it; check that recipe's "
                "model.init_args.export_path and trainer settings"
            )
    print(f"spatialgen: made {target}; continuing", file=sys.stderr, flush=True)
    return target
