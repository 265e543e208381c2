"""The Redis Limiter: one token bucket per key, shared by every ``atp server`` on the server.

Each ``acquire`` is one call of ``limiter_acquire.lua``, which refills, takes and writes the
bucket atomically, timed by the Redis server's ``TIME``: the hosts' clocks do not matter,
and two servers can never both spend the last token. A bucket expires once it would be
full again, so idle tokens leave nothing behind. A server that does not answer within the
URL's ``socket_timeout`` raises BackendUnavailable: the request is refused (ADR 0042).
A script that fails does so for every call of its round trip, so a pipeline of them may
be sent again after NOSCRIPT.
"""

from __future__ import annotations

from atp.core.batching import GroupCommit
from atp.core.ports import Limiter
from atp.plugins.memory.limiter import check_limit
from atp.plugins.redis._connection import Link, RedisUrl, Scripts
from atp.plugins.redis.keys import LimiterKeys

__all__ = ["RedisLimiter"]

_Ask = tuple[str, str, int, int]
"""One acquire as the script takes it: bucket key, rate, burst, cost."""


class RedisLimiter:
    """Token buckets in Redis hashes, timed by the Redis server.

    Calls that arrive while one is in flight go together in the next round trip (one
    pipeline), so a burst of requests holds one connection, not one each.
    """

    def __init__(self, url: RedisUrl) -> None:
        self._link = Link(url)
        self._keys = LimiterKeys(url.prefix)
        self._commit: GroupCommit[_Ask, float] = GroupCommit(self._send)

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> float:
        """Take ``cost`` tokens from bucket ``key``; 0.0 if taken, else the seconds to wait."""
        check_limit(rate, burst, cost)
        [wait] = await self._commit.run([(self._keys.bucket(key), repr(rate), burst, cost)])
        return wait

    async def close(self) -> None:
        """Give the shared pool back; buckets expire on their own."""
        await self._link.close()

    async def _send(self, asks: list[_Ask]) -> list[float]:
        async with self._link.guard("rate limit"):
            if len(asks) == 1:
                name, *args = asks[0]
                return [float(await Scripts.run(self._link, "limiter_acquire", [name], args))]
            calls = [("limiter_acquire", [name], args) for name, *args in asks]
            replies = await Scripts.run_many(self._link.client, calls)
        return [float(reply) for reply in replies]


_: type[Limiter] = RedisLimiter
