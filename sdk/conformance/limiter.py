"""The Limiter conformance suite: every guarantee of ``atp.core.ports.Limiter``.

Subclass it under a ``Test`` name and provide a ``limiter`` fixture, and ``other`` (a
second Limiter on the same backend, as another server process would hold) where the
backend is shared::

    class TestMyLimiter(LimiterConformance):
        @pytest.fixture
        async def limiter(self, clock):
            limiter = MyLimiter(url, clock=clock)
            yield limiter
            await limiter.close()

Each test uses bucket keys from ``unique()``, so a shared server needs no cleaning.

Time: buckets refill in the limiter's time. With the default ``ManualClock`` the suite
advances it and the answers are exact. A limiter timed by its server (Redis ``TIME``)
overrides ``clock`` to return a ``SystemClock``: the suite then really waits (about 3 s
in all), and a wait it is told may be up to ``time_tolerance`` seconds shorter than
the exact one, for the time that passed between two calls.
"""

from __future__ import annotations

import asyncio
import math
from typing import ClassVar

import pytest

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Limiter
from atp.sdk.conformance._support import PortSuite, is_manual, missing_fixture, pass_time, unique

__all__ = ["LimiterConformance"]

SLOW = 0.01
"""A rate so slow that the real time a test takes refills next to nothing."""
BAD_LIMITS = [
    (0.0, 1, 1),
    (-1.0, 1, 1),
    (math.nan, 1, 1),
    (math.inf, 1, 1),
    (1.0, 0, 1),
    (1.0, 1, 0),
    (1.0, 1, -2),
]


class LimiterConformance(PortSuite):
    """Checks a Limiter against the contract in ``atp.core.ports``."""

    time_tolerance: ClassVar[float] = 0.5
    """Seconds a wait may fall short of the exact one with a real clock."""

    @pytest.fixture
    def limiter(self, clock: Clock) -> Limiter:
        """Override: a Limiter built with ``clock``."""
        missing_fixture(self, "limiter")

    @pytest.fixture
    def other(self, limiter: Limiter) -> Limiter:
        """Override where buckets are shared: another Limiter on the same backend."""
        return limiter

    @pytest.fixture
    def key(self) -> str:
        """A bucket key no other test uses."""
        return unique("bucket")

    async def test_implements_the_protocol(self, limiter: Limiter) -> None:
        assert isinstance(limiter, Limiter)

    async def test_a_new_bucket_holds_burst_tokens(
        self, limiter: Limiter, clock: Clock, key: str
    ) -> None:
        waits = [await limiter.acquire(key, rate=SLOW, burst=3) for _ in range(3)]
        assert waits == [0.0, 0.0, 0.0]
        self.assert_wait(await limiter.acquire(key, rate=SLOW, burst=3), 1 / SLOW, clock)

    async def test_a_refused_call_takes_nothing(
        self, limiter: Limiter, clock: Clock, key: str
    ) -> None:
        assert await limiter.acquire(key, rate=SLOW, burst=5, cost=3) == 0.0
        self.assert_wait(await limiter.acquire(key, rate=SLOW, burst=5, cost=3), 1 / SLOW, clock)
        assert await limiter.acquire(key, rate=SLOW, burst=5, cost=2) == 0.0
        assert await limiter.acquire(key, rate=SLOW, burst=5) > 0

    async def test_cost_over_burst_never_fits_and_takes_nothing(
        self, limiter: Limiter, key: str
    ) -> None:
        assert await limiter.acquire(key, rate=SLOW, burst=3, cost=4) == math.inf
        assert await limiter.acquire(key, rate=SLOW, burst=3, cost=3) == 0.0

    async def test_tokens_come_back_at_the_rate(
        self, limiter: Limiter, clock: Clock, key: str
    ) -> None:
        assert [await limiter.acquire(key, rate=2.0, burst=2) for _ in range(2)] == [0.0, 0.0]
        await pass_time(clock, 0.75)  # 1.5 tokens
        assert await limiter.acquire(key, rate=2.0, burst=2) == 0.0
        self.assert_wait(await limiter.acquire(key, rate=2.0, burst=2), 0.25, clock)

    async def test_a_bucket_holds_at_most_burst(
        self, limiter: Limiter, clock: Clock, key: str
    ) -> None:
        assert await limiter.acquire(key, rate=10.0, burst=2) == 0.0
        await pass_time(clock, 100.0 if is_manual(clock) else 1.0)
        assert [await limiter.acquire(key, rate=10.0, burst=2) for _ in range(2)] == [0.0, 0.0]
        assert await limiter.acquire(key, rate=10.0, burst=2) > 0

    async def test_the_wait_is_when_the_tokens_are_there(
        self, limiter: Limiter, clock: Clock, key: str
    ) -> None:
        assert await limiter.acquire(key, rate=4.0, burst=1) == 0.0
        wait = await limiter.acquire(key, rate=4.0, burst=1)
        self.assert_wait(wait, 0.25, clock)
        await pass_time(clock, wait / 2)
        assert await limiter.acquire(key, rate=4.0, burst=1) > 0
        await pass_time(clock, wait / 2 + (0.001 if is_manual(clock) else 0.05))
        assert await limiter.acquire(key, rate=4.0, burst=1) == 0.0

    async def test_keys_are_independent(self, limiter: Limiter, key: str) -> None:
        assert await limiter.acquire(key, rate=SLOW, burst=1) == 0.0
        assert await limiter.acquire(key, rate=SLOW, burst=1) > 0
        assert await limiter.acquire(unique("bucket"), rate=SLOW, burst=1) == 0.0

    async def test_concurrent_callers_never_overspend(
        self, limiter: Limiter, other: Limiter, key: str
    ) -> None:
        calls = [lim.acquire(key, rate=SLOW, burst=5) for lim in (limiter, other) * 8]
        waits = await asyncio.gather(*calls)
        assert sorted(waits)[:5] == [0.0] * 5
        assert all(wait > 0 for wait in sorted(waits)[5:]), waits

    async def test_a_second_limiter_shares_the_buckets(
        self, limiter: Limiter, other: Limiter, key: str
    ) -> None:
        assert await limiter.acquire(key, rate=SLOW, burst=2) == 0.0
        assert await other.acquire(key, rate=SLOW, burst=2) == 0.0
        assert await limiter.acquire(key, rate=SLOW, burst=2) > 0
        assert await other.acquire(key, rate=SLOW, burst=2) > 0

    @pytest.mark.parametrize(("rate", "burst", "cost"), BAD_LIMITS)
    async def test_bad_limits_are_refused_and_change_nothing(
        self, limiter: Limiter, key: str, rate: float, burst: int, cost: int
    ) -> None:
        with pytest.raises(InvalidInput):
            await limiter.acquire(key, rate=rate, burst=burst, cost=cost)
        assert await limiter.acquire(key, rate=SLOW, burst=1) == 0.0
        assert await limiter.acquire(key, rate=SLOW, burst=1) > 0

    def assert_wait(self, wait: float, exact: float, clock: Clock) -> None:
        """``wait`` is ``exact``, or up to ``time_tolerance`` less with a real clock."""
        slack = 1e-6 if is_manual(clock) else self.time_tolerance
        assert exact - slack <= wait <= exact + 1e-6, f"waited {wait}, expected {exact}"
