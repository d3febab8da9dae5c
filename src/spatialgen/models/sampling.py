"""Declared sampling options of a generation pipeline (what ``spatialgen generate --sample`` may set).

Each pipeline lists the keyword options of its ``generate`` as ``{name: SamplingOption}``; the command
line parses text values with :meth:`SamplingOption.parse` and rejects names the model does not take,
so a wrong option is one clear line instead of a ``TypeError`` deep inside generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spatialgen.errors import SpatialgenError

__all__ = ["SamplingOption"]

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass(frozen=True)
class SamplingOption:
    """One keyword option of a pipeline's ``generate``.

    Attributes:
        type: ``int``, ``float``, ``str`` or ``bool``.
        default: the value used when the option is not given.
        help: one line for ``--sample help``.
        choices: allowed values of a ``str`` option.
        minimum: smallest allowed value of a number (inclusive).
        optional: ``none`` is accepted and passes ``None`` (e.g. to switch top-k off).
    """

    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    optional: bool = False

    def describe(self) -> str:
        """``type, default X`` text for listings."""
        kind = "|".join(self.choices) if self.choices else self.type.__name__
        if self.optional:
            kind += "|none"
        return f"{kind}, default {self.default}"

    def parse(self, name: str, text: str) -> Any:
        """The value of ``--sample name=text``; a bad value raises one-line :class:`SpatialgenError`."""
        value = text.strip()
        where = f"--sample {name}={text}"
        if self.optional and value.lower() == "none":
            return None
        if self.type is bool:
            if value.lower() not in _TRUE + _FALSE:
                raise SpatialgenError(f"{where}: expected true or false")
            return value.lower() in _TRUE
        if self.type in (int, float):
            try:
                number = self.type(value)
            except ValueError:
                raise SpatialgenError(f"{where}: expected {self.describe().split(',')[0]}") from None
            if not math.isfinite(number):
                raise SpatialgenError(f"{where}: must be a finite number")
            if self.minimum is not None and number < self.minimum:
                raise SpatialgenError(f"{where}: must be >= {self.minimum:g}")
            return number
        if self.choices is not None and value not in self.choices:
            raise SpatialgenError(f"{where}: expected one of {', '.join(self.choices)}")
        return value
