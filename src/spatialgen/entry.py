"""The ``lightning`` console script.

The name ``lightning`` is contested (see each package's ``entry_points.txt``): lightning 2.6 itself declares
no such script, but lightning ≤ 2.5 and lightning-sdk (the Lightning AI Studios CLI) do. So this shim routes
the trainer subcommands to spatialgen's LightningCLI and hands every other call on to lightning-sdk when it is
installed, or explains what happened. ``spatialgen`` and ``python -m spatialgen`` never clash.
"""

from __future__ import annotations

import difflib
import importlib.util
import subprocess
import sys
from collections.abc import Sequence

from spatialgen.cli import TRAINER_COMMANDS

_OURS = {*TRAINER_COMMANDS, "-h", "--help"}
SDK_MODULE = "lightning_sdk.cli.entrypoint"


def _is_ours(argv: Sequence[str]) -> bool:
    return not argv or argv[0] in _OURS or argv[0].startswith("--print_config")


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``lightning ...``: trainer subcommands to LightningCLI, the rest to lightning-sdk."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_ours(argv):
        from spatialgen.cli import main

        return main(None if from_sys else argv)
    if importlib.util.find_spec("lightning_sdk") is not None:
        return subprocess.call([sys.executable, "-m", SDK_MODULE, *argv])
    close = difflib.get_close_matches(argv[0], TRAINER_COMMANDS, n=1, cutoff=0.6)
    if close:
        print(f"lightning: unknown command {argv[0]!r} (did you mean {close[0]!r}?)", file=sys.stderr)
        return 2
    print(
        f"lightning: unknown command {argv[0]!r}. This `lightning` script is spatialgen's: it runs "
        f"{'|'.join(TRAINER_COMMANDS)} through LightningCLI. For Lightning AI's CLI install lightning-sdk "
        "(`pip install lightning-sdk`; note it replaces this script — `spatialgen fit ...` keeps working).",
        file=sys.stderr,
    )
    return 2
