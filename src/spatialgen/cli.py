"""The ``spatialgen`` command line.

``spatialgen fit|validate|test|predict --config recipe.yaml`` runs Lightning's LightningCLI (the same
entry point the ``lightning`` console script routes to); the other subcommands are spatialgen tools.
User errors (:class:`~spatialgen.errors.SpatialgenError`) print one line, without a traceback, and exit 2;
for the trainer commands that line is dug out of jsonargparse's wrapping (:func:`user_error`). ``--debug``
anywhere on the command line (or ``SPATIALGEN_DEBUG=1``) shows the traceback instead. This module imports
nothing heavy: every subcommand imports its code when it runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from spatialgen.errors import SpatialgenError, debug_enabled

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
PROG = "spatialgen"


def lightning_cli(args: Sequence[str] | None = None, prog: str = PROG) -> None:
    """Run LightningCLI with any LightningModule / LightningDataModule picked by ``class_path``."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from spatialgen.training import AtomicCheckpointIO, PreemptionCheckpoint

    LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        # Every run writes checkpoints atomically and saves last.ckpt on SIGTERM/SIGUSR1 (pre-emption).
        trainer_defaults={"plugins": [AtomicCheckpointIO()], "callbacks": [PreemptionCheckpoint()]},
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": prog,
            "description": "spatialgen training: fit/validate/test/predict from a YAML recipe "
            "(e.g. --config recipes/visage_synthetic.yaml).",
            # Parse errors raise instead of printing ~50 lines of usage; main() prints the one line.
            "exit_on_error": False,
            **{command: {"exit_on_error": False} for command in TRAINER_COMMANDS},
        },
        args=list(args) if args is not None else None,
        auto_configure_optimizers=True,
    )


def _demo(argv: Sequence[str]) -> int:
    from spatialgen.demo import main as demo_main

    return demo_main(list(argv))


def _synth(argv: Sequence[str]) -> int:
    from spatialgen.data.synthetic.cli import main as synth_main

    return synth_main(list(argv))


def _biaudio(argv: Sequence[str]) -> int:
    from spatialgen.data.cli import main_biaudio

    return main_biaudio(list(argv))


def _fit_codec(argv: Sequence[str]) -> int:
    from spatialgen.data.codec_fit import main as fit_codec_main

    return fit_codec_main(list(argv))


def _features(argv: Sequence[str]) -> int:
    from spatialgen.data.cli import main_features

    return main_features(list(argv))


# `spatialgen data <name> ...`: dataset tools.
DATA_TOOLS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "synth": ("generate the synthetic 360° dataset (video, FOA, binaural, ground truth)", _synth),
    "biaudio": ("render perspective clips + rotated FOA + binaural from 360° videos with FOA", _biaudio),
    "fit-codec": ("fit the stft_vq codec's k-means codebooks on a dataset's FOA (seconds)", _fit_codec),
    "features": ("precompute visual features and audio codes/latents into a sharded cache", _features),
}


def _data(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in DATA_TOOLS:
        lines = [f"usage: {PROG} data <tool> [options]", "", "tools:"]
        lines += [f"  {name:<10} {help_}" for name, (help_, _) in DATA_TOOLS.items()]
        known = not argv or argv[0] in ("-h", "--help")
        if not known:
            close = difflib.get_close_matches(argv[0], list(DATA_TOOLS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.insert(0, f"{PROG}: unknown data tool {argv[0]!r}{hint}")
        print("\n".join(lines), file=sys.stdout if known else sys.stderr)
        return 0 if known else 2
    return DATA_TOOLS[argv[0]][1](argv[1:])


def _evaluate(argv: Sequence[str]) -> int:
    from spatialgen.evaluate import main as evaluate_main

    return evaluate_main(list(argv))


def _export(argv: Sequence[str]) -> int:
    from spatialgen.hub.export import main as export_main

    return export_main(list(argv))


def _generate(argv: Sequence[str]) -> int:
    from spatialgen.generate_cli import collect_videos, parse_args

    # --help and bad options or inputs are answered before torch and the model zoo are imported.
    args = parse_args(argv)
    collect_videos(args.videos, args.out)
    from spatialgen.generate import main as generate_main
    from zoo import load_pretrained  # the only place below src/ that resolves zoo names

    return generate_main(argv, load_model=load_pretrained)


# name -> (one-line help, handler taking the remaining argv and returning an exit code)
TOOLS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "data": ("dataset tools: synth, biaudio, features, fit-codec", _data),
    "demo": ("run the end-to-end demo on synthetic data", _demo),
    "generate": ("spatial audio (FOA/binaural WAV + .mp4) for video files with a zoo model", _generate),
    "evaluate": ("score generated audio against ground truth (spatial, binaural, FD/KL/IS)", _evaluate),
    "export": ("Lightning checkpoint -> Hub export (safetensors + config + model card) [--push-to]", _export),
}


_EXAMPLES = (
    "fit --config recipes/visage_synthetic.yaml",
    "data synth --out data/synthetic",
    "generate clip.mp4 --model visage-debug --out out/",
    "evaluate --help",
)


def _usage() -> str:
    lines = [f"usage: {PROG} <command> [options]", "", "training (LightningCLI):"]
    lines += [f"  {c:<10} {c} a model from a YAML recipe (--config FILE)" for c in TRAINER_COMMANDS]
    lines += ["", "tools:"]
    lines += [f"  {name:<10} {help_}" for name, (help_, _) in TOOLS.items()]
    lines += ["", "examples:"]
    lines += [f"  {PROG} {example}" for example in _EXAMPLES]
    lines += ["", f"Run '{PROG} <command> --help' for the options of a command; --debug shows tracebacks."]
    return "\n".join(lines)


_PROJECT_DIRS = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[2] / "zoo")


def _frame_files(err: BaseException) -> list[Path]:
    """Source files of the frames ``err`` passed through, outermost first."""
    files, tb = [], err.__traceback__
    while tb is not None:
        files.append(Path(tb.tb_frame.f_code.co_filename).resolve())
        tb = tb.tb_next
    return files


def _raised_here(err: BaseException) -> bool:
    """Whether ``err`` was raised by spatialgen's own code (a check of a user's value), not a library."""
    files = _frame_files(err)
    return bool(files) and any(files[-1].is_relative_to(d) for d in _PROJECT_DIRS)


def _while_configuring(err: BaseException) -> bool:
    """Whether ``err`` came out of jsonargparse building the classes of the config (not out of training)."""
    return any("jsonargparse" in f.parts for f in _frame_files(err))


def user_error(err: BaseException) -> BaseException | None:
    """The one-line user error inside ``err``, or None for a bug (which keeps its traceback).

    jsonargparse wraps a failing ``__init__`` of a model or data module in "Does not validate against any
    of the Union subtypes" with the real error as its cause. Walks the cause/context chain outside-in and
    returns the first :class:`SpatialgenError` (its message names the value and the fix), else the
    innermost ``FileNotFoundError`` raised by spatialgen's code, or ``ValueError`` raised by its argument
    checks while the config's classes are built. A ``ValueError`` raised during training may be a bug:
    it keeps its traceback.
    """
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)
    for e in chain:
        if isinstance(e, SpatialgenError):
            return e
    for e in reversed(chain):
        if isinstance(e, FileNotFoundError) and _raised_here(e):
            return e
        if isinstance(e, ValueError) and _raised_here(e) and _while_configuring(e):
            return e
    return None


def _one_line(message: str) -> str:
    """jsonargparse's multi-line parse error as one line: the key, what it accepts, the value given."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    expected = [line[2:] for line in lines if line.startswith("- ")]
    given = next((line for line in lines if line.startswith("Given value:")), None)
    text = lines[0]
    if expected:
        text = f"{text.rstrip(':')}: {' or '.join(expected)}"
    if given:
        text += f" (g{given[1:]})"
    return text


def _unknown_command(command: str) -> str:
    known = [*TRAINER_COMMANDS, *TOOLS]
    close = difflib.get_close_matches(command, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; commands: {', '.join(known)}"
    return f"{PROG}: unknown command {command!r}{hint}. Run '{PROG} --help' for what each does."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spatialgen`` console script and ``python -m spatialgen``."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command != "generate" and "--debug" in argv:  # `generate` has its own --debug option
        argv = [a for a in argv if a != "--debug"]
        rest, from_sys = argv[1:], False
    try:
        if command in TRAINER_COMMANDS or command.startswith("--print_config"):
            # LightningCLI warns when given args equal to sys.argv; let it read sys.argv itself then.
            lightning_cli(None if from_sys else argv)
            return 0
        if command in TOOLS:
            return TOOLS[command][1](rest)
    except SpatialgenError as err:
        if debug:
            raise
        print(f"{PROG} {command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if debug or command not in TRAINER_COMMANDS:
            raise
        found = user_error(err)
        if found is not None:
            message = str(found).strip().splitlines()[0] if str(found).strip() else type(found).__name__
        elif isinstance(err, argparse.ArgumentError):  # a bad option or config value (jsonargparse)
            message = f"{_one_line(str(err))}; see '{PROG} {command} --help'"
        else:
            raise
        print(f"{PROG} {command}: error: {message}", file=sys.stderr)
        return 2
    print(_unknown_command(command), file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
