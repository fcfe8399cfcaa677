"""One way to say what a pydantic ``ValidationError`` found: one ``place: message`` line per error.

Used for the characters file, the prompt data files (``catalog/data``) and both services'
settings, so a configuration problem reads the same wherever it is reported.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

Location = tuple[int | str, ...]


class CatalogError(ValueError):
    """The characters file or the prompt data is unusable; the message lists every problem."""


def dotted(loc: Location) -> str:
    """``("en", 0, "a")`` → ``en.0.a``; the whole document is ``<root>``."""
    return ".".join(str(part) for part in loc) or "<root>"


def validation_problems(
    exc: ValidationError, where: Callable[[Location], str] = dotted
) -> list[str]:
    """``place: message`` for each error; ``where`` names the place (default: dotted path)."""
    return [
        f"{where(tuple(err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    ]
