"""The ``spatialgen`` command line.

``spatialgen fit|validate|test|predict --config recipe.yaml`` runs Lightning's LightningCLI (the same
entry point the ``lightning`` console script routes to); the other subcommands are spatialgen tools.
User errors (:class:`~spatialgen.errors.SpatialgenError`) print one line, without a traceback, and exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from spatialgen.errors import SpatialgenError

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


def _usage() -> str:
    lines = [f"usage: {PROG} <command> [options]", "", "training (LightningCLI):"]
    lines += [f"  {c:<10} {c} a model from a YAML recipe (--config FILE)" for c in TRAINER_COMMANDS]
    lines += ["", "tools:"]
    lines += [f"  {name:<10} {help_}" for name, (help_, _) in TOOLS.items()]
    lines += ["", f"Run '{PROG} <command> --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spatialgen`` console script and ``python -m spatialgen``."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in TRAINER_COMMANDS or command.startswith("--print_config"):
            # LightningCLI warns when given args equal to sys.argv; let it read sys.argv itself then.
            lightning_cli(None if from_sys else argv)
            return 0
        if command in TOOLS:
            return TOOLS[command][1](rest)
    except SpatialgenError as err:
        print(f"{PROG} {command}: error: {err}", file=sys.stderr)
        return 2
    print(f"{PROG}: unknown command {command!r}.\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
