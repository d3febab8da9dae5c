"""Error types for problems a user can fix (bad input, missing files/weights).

They carry a one-line message naming the file or argument and the fix; the CLI prints them without
a traceback.
"""

from __future__ import annotations


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
