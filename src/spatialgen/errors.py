"""Error types for problems a user can fix (bad input, missing files/weights).

They carry a one-line message naming the file or argument and the fix; the CLI prints them without
a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: environment variable that, set to anything but "" or "0", shows tracebacks of user errors
DEBUG_ENV = "SPATIALGEN_DEBUG"


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """Whether to show tracebacks: ``--debug`` in ``argv`` or ``SPATIALGEN_DEBUG=1`` in the environment."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class SpatialgenError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class MediaError(SpatialgenError, ValueError):
    """A media file is missing, unreadable, corrupt, or has the wrong layout (channels, rate, length)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InvalidAudioError(SpatialgenError, ValueError):
    """An audio tensor has the wrong shape, channel count, length or non-finite values."""
