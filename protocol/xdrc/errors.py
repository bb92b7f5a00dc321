"""The one exception the compiler raises for bad input."""

from __future__ import annotations

from .ast import Location


class XdrcError(Exception):
    """A problem in a specification, reported as `file:line:col: message`."""

    def __init__(self, loc: Location, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.message = message
