"""The etcd Limiter: one token bucket per key, shared by every ``atp server`` on the cluster.

A bucket is the key ``<prefix>/limits/<key>``, its value ``"<tokens> <stamp>"``.
``acquire`` refills and takes with ``refill`` (the arithmetic every Limiter shares) from
the bucket as this process saw it last, and writes it back in a transaction that
compares the key's mod revision. If another process changed it meanwhile, the
transaction answers with the key as it is now and the round is repeated, at most
``ROUNDS`` times; calls for one key within a process take turns, so only other
processes conflict. A call that finds too few tokens writes nothing: an older reading
of a bucket holds at least as many tokens as the bucket now does, so its refusal is
right, though its wait may be short. Past ``ROUNDS`` conflicts the call answers "wait
``cost / rate``": a contended bucket refuses rather than overspends (ADR 0042).

Time is the caller's clock: etcd has no clock a client can read. A stamp never goes
back (the later of the stored one and ours), so a host whose clock is behind grants no
extra tokens; one whose clock is ahead by d lets a bucket refill d x rate tokens early,
once. Idle buckets vanish: each key is attached to an etcd lease that outlives the time
its bucket takes to fill again; the buckets of one such time share a lease, and a
process takes a new one when half of the old one's time has passed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from atp.core.errors import BackendUnavailable
from atp.core.ports import Clock, Limiter
from atp.plugins.etcd._cluster import Cluster, Revision, lease_gone
from atp.plugins.etcd._url import EtcdTarget
from atp.plugins.memory.limiter import check_limit, refill

__all__ = ["EtcdLimiter"]

ROUNDS = 8
"""Transactions one ``acquire`` tries before it refuses a bucket that keeps changing."""
_ABSENT = Revision(b"", 0)
_REMEMBERED = 10_000
"""Buckets whose last reading a process keeps; past this it forgets them all."""
_MIN_LEASE = 2
"""Seconds: etcd's smallest lease with its default election timeout."""


class EtcdLimiter:
    """Token buckets in etcd keys, written by compare-and-swap on their mod revision."""

    def __init__(self, target: EtcdTarget, clock: Clock) -> None:
        self._cluster = Cluster(target)
        self._clock = clock
        self._prefix = f"{target.prefix}/limits/"
        self._seen: dict[str, Revision] = {}
        self._turns = _Turns()
        self._leases = _Leases(self._cluster)

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> float:
        """Take ``cost`` tokens from bucket ``key``; 0.0 if taken, else the seconds to wait."""
        check_limit(rate, burst, cost)
        async with self._turns.of(key):
            for _ in range(ROUNDS):
                seen = self._seen.get(key, _ABSENT)
                now = self._clock.now()
                tokens, stamp = _decode(seen.value, burst, now)
                left, wait = refill(tokens, stamp, now, rate=rate, burst=burst, cost=cost)
                if wait > 0:
                    return wait
                value = f"{left!r} {max(now, stamp)!r}".encode()
                done, seen = await self._swap(key, value, seen, (burst - left) / rate)
                self._remember(key, seen)
                if done:
                    return 0.0
        return cost / rate

    async def close(self) -> None:
        """Close the connections; buckets vanish with their leases."""
        self._seen.clear()
        await self._cluster.close()

    async def _swap(
        self, key: str, value: bytes, seen: Revision, idle: float
    ) -> tuple[bool, Revision]:
        name = (self._prefix + key).encode()
        lease = await self._leases.lasting(idle)
        try:
            return await self._cluster.swap(name, value, seen.mod_revision, lease)
        except BackendUnavailable as exc:
            if not lease_gone(exc):  # a lease ended early (etcd restored): take another
                raise
        self._leases.forget()
        lease = await self._leases.lasting(idle)
        return await self._cluster.swap(name, value, seen.mod_revision, lease)

    def _remember(self, key: str, seen: Revision) -> None:
        if len(self._seen) >= _REMEMBERED:
            self._seen.clear()
        self._seen[key] = seen


def _decode(value: bytes, burst: int, now: float) -> tuple[float, float]:
    """A bucket's tokens and stamp; a full one for an absent key (or one not ours)."""
    try:
        tokens, stamp = (float(part) for part in value.split())
    except ValueError:
        return float(burst), now
    return tokens, stamp


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class _Turns:
    """One lock per key while a call of this process holds or awaits it."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def of(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.setdefault(key, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[key]


class _Leases:
    """etcd leases shared by the buckets that must outlive about the same time.

    Their age is measured on the event loop's monotonic clock, not the limiter's: etcd
    ends a lease in real time, whatever clock the buckets are counted in.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._held: dict[int, tuple[int, float]] = {}

    async def lasting(self, seconds: float) -> int:
        """A lease with at least ``seconds`` (plus a second) left."""
        span = max(_MIN_LEASE, math.ceil(seconds) + 1)
        now = asyncio.get_running_loop().time()
        held = self._held.get(span)
        if held is None or held[1] + span <= now:
            held = self._held[span] = (await self._cluster.grant(2 * span), now)
        return held[0]

    def forget(self) -> None:
        self._held.clear()


_: type[Limiter] = EtcdLimiter
