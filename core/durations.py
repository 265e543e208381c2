"""Durations as people write them: ``90``, ``1.5``, ``250ms``, ``30s``, ``5m``, ``2h``, ``1d``."""

from __future__ import annotations

import math
import re

from atp.core.errors import InvalidInput
from atp.core.quoting import quote

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*\Z")


def parse_duration(value: object, what: str = "duration") -> float:
    """Return ``value`` in seconds; numbers are seconds. Raise InvalidInput naming ``what``."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what}: expected a duration, got {quote(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise InvalidInput(
            f"{what}: {quote(value)} is not a duration (examples: 30, 250ms, 30s, 5m, 2h, 1d)"
        )
    if not math.isfinite(seconds):
        raise InvalidInput(f"{what}: {quote(value)} is not a finite duration")
    return seconds
