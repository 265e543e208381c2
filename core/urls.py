"""Reading backend URLs: the one way every plugin parses its query options."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from urllib.parse import parse_qsl

from atp.core.errors import InvalidInput

__all__ = ["query_options"]


def query_options(what: str, query: str, known: Collection[str]) -> dict[str, str]:
    """Parse a URL's query into options, refusing what a backend cannot mean.

    ``what`` names the URL in errors (``"etcd URL 'etcd://…'"``). Raises InvalidInput for
    a malformed query, an option given twice, or one not in ``known`` (with a hint).
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidInput(f"{what}: malformed query string: {exc}") from exc
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in known:
            raise InvalidInput(f"{what}: unknown option {key!r}{_hint(key, known)}")
        if key in options:
            raise InvalidInput(f"{what}: option {key!r} is given twice")
        options[key] = value
    return options


def _hint(key: str, known: Collection[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    listed = ", ".join(names)
    return f" (did you mean {close[0]!r}? known: {listed})" if close else f" (known: {listed})"
