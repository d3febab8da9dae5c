"""Error types for problems a user can fix (bad input, missing files/weights).

They carry a one-line message naming the file or argument and the fix; the CLI prints them without
a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

#: environment variable that, set to anything but "" or "0", shows tracebacks of user errors
DEBUG_ENV = "SPATIALGEN_DEBUG"


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """Whether to show tracebacks: ``--debug`` in ``argv`` or ``SPATIALGEN_DEBUG=1`` in the environment."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class SpatialgenError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


def run_cli(
    prog: str,
    body: Callable[[], int | None],
    *,
    catch: tuple[type[Exception], ...] = (SpatialgenError,),
    first_line: bool = False,
    debug: bool = False,
) -> int:
    """Run a command's ``body`` and return its exit code (``None`` counts as 0).

    A ``catch`` error prints ``{prog}: error: {message}`` (its first line with ``first_line``) on stderr,
    no traceback, and returns 2; with ``debug`` (:func:`debug_enabled`) it propagates instead.
    """
    try:
        code = body()
    except catch as err:
        if debug:
            raise
        message = str(err).splitlines()[0] if first_line else str(err)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0 if code is None else code


class MediaError(SpatialgenError, ValueError):
    """A media file is missing, unreadable, corrupt, or has the wrong layout (channels, rate, length)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InvalidAudioError(SpatialgenError, ValueError):
    """An audio tensor has the wrong shape, channel count, length or non-finite values."""
