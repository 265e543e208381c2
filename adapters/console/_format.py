"""How the console writes times, durations and JSON: the template filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

__all__ = ["FILTERS", "ago", "iso", "pretty", "seconds", "when"]


def when(ts: float | None) -> str:
    """``2026-12-08 01:05:35Z``: a moment in UTC, to the second; ``—`` for None."""
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(ts: float | None) -> str:
    """RFC 3339 with milliseconds, for ``<time datetime>`` and form values."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def seconds(value: float | None) -> str:
    """A duration as people read it: ``350 ms``, ``4.2 s``, ``3 m 20 s``, ``2 h 5 m``."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    whole = int(value)
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if whole >= size:
            rest = (whole % size) // small_size
            return f"{whole // size} {unit} {rest} {smaller}" if rest else f"{whole // size} {unit}"
    return f"{whole // 60} m {whole % 60} s" if whole % 60 else f"{whole // 60} m"


def ago(ts: float | None, now: float) -> str:
    """``5 s ago`` or ``in 3 m``, relative to ``now``; ``—`` for None."""
    if ts is None:
        return "—"
    delta = now - ts
    if abs(delta) < 1:
        return "now"
    return f"{seconds(delta)} ago" if delta > 0 else f"in {seconds(-delta)}"


def pretty(value: Any) -> str:
    """JSON indented two spaces, keys in their order; text that is not JSON as it is."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return str(value)


FILTERS = {"when": when, "iso": iso, "seconds": seconds, "ago": ago, "pretty": pretty}
