"""An in-process token-bucket Limiter: the limits hold within one process only."""

from __future__ import annotations

import math

from atp.core.errors import InvalidInput
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Limiter
from atp.core.settings import Settings

__all__ = ["MemoryLimiter", "atp_make_limiter", "check_limit", "refill"]


def refill(
    tokens: float, updated: float, now: float, *, rate: float, burst: int, cost: int
) -> tuple[float, float]:
    """Return ``(tokens left, wait)`` after asking for ``cost`` tokens at ``now``.

    ``wait`` is 0.0 when the tokens were taken, else the seconds until they will be there
    (and ``tokens left`` is the refilled count, nothing taken). Shared by every Limiter.
    """
    check_limit(rate, burst, cost)
    level = min(float(burst), tokens + max(now - updated, 0.0) * rate)
    if level >= cost:
        return level - cost, 0.0
    if cost > burst:
        return level, math.inf
    return level, (cost - level) / rate


def check_limit(rate: float, burst: int, cost: int) -> None:
    """Raise InvalidInput unless ``rate`` is a finite number > 0 and ``burst`` and ``cost``
    are whole numbers >= 1: what every Limiter refuses before it touches a bucket."""
    whole = all(isinstance(n, int) and not isinstance(n, bool) for n in (burst, cost))
    number = isinstance(rate, int | float) and not isinstance(rate, bool)
    if not (number and whole and math.isfinite(rate) and rate > 0 and burst >= 1 and cost >= 1):
        raise InvalidInput(
            "rate limit needs a finite rate > 0 and whole burst >= 1 and cost >= 1; "
            f"got {rate!r}, {burst!r}, {cost!r}"
        )


class MemoryLimiter:
    """Token buckets in a dict; atomic because every call runs on one event loop."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> float:
        now = self._clock.now()
        tokens, updated = self._buckets.get(key, (float(burst), now))
        left, wait = refill(tokens, updated, now, rate=rate, burst=burst, cost=cost)
        self._buckets[key] = (left, now)
        return wait

    async def close(self) -> None:
        self._buckets.clear()


_: type[Limiter] = MemoryLimiter


@hookimpl
def atp_make_limiter(url: str, settings: Settings, clock: Clock) -> Limiter | None:
    """A MemoryLimiter for ``memory://``; None for any other scheme."""
    return MemoryLimiter(clock) if url.partition("://")[0].lower() == "memory" else None
