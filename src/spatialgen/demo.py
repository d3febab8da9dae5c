"""``spatialgen demo``: run the end-to-end demo of a source checkout (``examples/demo``).

The demo trains from the repository's ``recipes/`` and lives next to them, outside the installed
library; this command finds the checkout from the current folder (or one above it) and runs it, the
same as ``make demo`` or ``python -m examples.demo``. Elsewhere it says so in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_checkout", "main"]


def find_checkout(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current one) holding the demo and recipes."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "examples" / "demo" / "__init__.py").is_file() and (folder / "recipes").is_dir():
            return folder
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``examples.demo`` of the checkout with ``argv``; 2 with one line when there is none."""
    root = find_checkout()
    if root is None:
        print(
            "spatialgen demo: no spatialgen source checkout here (the demo runs examples/demo/ with the "
            "repository's recipes/); clone the repository, cd into it and run `make demo`",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from examples.demo import main as demo_main

    return demo_main(argv)
