"""Quoting input in error messages, bounded: a 1 MB id must not come back as a 1 MB error."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

__all__ = ["MAX_QUOTE", "cut", "hint", "quote"]

MAX_QUOTE = 80
"""Characters of a quoted string kept at most (the head and tail, around ``...``)."""

_MARKER_ROOM = 48
"""Characters ``cut`` leaves for its marker, so a cut text is never cut again."""

_REPR = reprlib.Repr()
_REPR.maxstring = MAX_QUOTE
_REPR.maxother = MAX_QUOTE
_REPR.maxlong = MAX_QUOTE
_REPR.maxlevel = 3


def quote(value: object) -> str:
    """``repr(value)``, shortened where long: strings past ``MAX_QUOTE`` characters and
    containers past a few items keep their ends around ``...``."""
    if type(value) is str and len(value) <= MAX_QUOTE:  # the common case, exact
        return repr(value)
    return _REPR.repr(value)


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around a
    marker naming how many characters were cut (shorter than ``limit``, so a cut text is
    never cut again): a stored error or a status detail stays bounded and readable."""
    if len(text) <= limit:
        return text
    half = max((limit - _MARKER_ROOM) // 2, 1)
    return f"{text[:half]} … [cut {len(text) - 2 * half:,} characters] … {text[-half:]}"


def hint(name: str, known: Iterable[str], *, listed: bool = True) -> str:
    """`` (did you mean 'x'? known: a, b)`` for a ``name`` that is not one of ``known``:
    the closest known name if any is close, and (with ``listed``) all of them."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    guess = f"did you mean {close[0]!r}?" if close else ""
    if not listed:
        return f" ({guess})" if guess else ""
    known_text = f"known: {', '.join(names)}"
    return f" ({guess} {known_text})" if guess else f" ({known_text})"
