"""Circuit breakers in the Redis store (the BreakerLedger port, ADR 0040): one hash per
breaker and an index of them, in the store shard's slot, each call one Lua script for
the whole batch (``_breaker.lua`` holds the schema and ``atp.core.flow.breaker``'s
arithmetic, line for line).

A closed breaker that counted nothing in its last two windows is at rest and reads as
new, by the rule every ledger shares (``atp.core.flow.breaker.rest_at``): the scripts
forget it when they meet it, and every call forgets up to ``REST_STEP`` of the others,
so the keys do not grow with subjects that went quiet. Open and half-open ones are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.flow.breaker import (
    Breaker,
    BreakerState,
    Circuit,
    check_keys,
    check_probes,
    check_samples,
)
from atp.core.ports import Probe, Sample
from atp.plugins.redis._connection import Link, Scripts
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import FlowKeys, StoreKeys

__all__ = ["BreakerMethods"]

REST_STEP = 1000
"""Breakers at rest one call may forget, besides those it names: every write forgets them
all, unless more than this many came to rest since the last one (a long quiet spell),
and no call holds the server for long (a millisecond or so)."""
_HASH_FIELDS = ("c", "ws", "ok", "f", "pok", "pf", "ou", "pr", "pu", "at", "cb")
"""A breaker's hash fields, and the values per state in a script's reply, in this order
(``FIELDS`` in ``_breaker.lua``)."""
_FIELDS = len(_HASH_FIELDS)


class BreakerMethods:
    """The BreakerLedger methods of RedisStore, on the store's shard."""

    _link: Link
    _keys: StoreKeys

    @property
    def _breaker_keys(self) -> FlowKeys:
        return FlowKeys(self._keys.prefix, self._keys.shard)

    async def observe(self, samples: Sequence[Sample], *, now: float) -> list[BreakerState]:
        """Apply each sample, in order, in one script; InvalidInput, applying none, for a
        bad sample."""
        _check_time(now, "now")
        check_samples(samples)
        _check_policies(samples)
        if not samples:
            return []
        args: list[Any] = []
        for s in samples:
            policy = s.policy
            args += [s.key, s.ok, s.failed, num(policy.ratio), num(policy.window)]
            args += [policy.min_volume, num(policy.open_for), s.by]
        keys = [sample.key for sample in samples]
        return _states(keys, await self._breaker_script("breaker_observe", keys, now, args))

    async def probe(self, probes: Sequence[Probe], *, now: float) -> list[BreakerState]:
        """Apply each request to run, in order, in one script; InvalidInput, applying
        none, for a bad request."""
        _check_time(now, "now")
        check_probes(probes)
        _check_policies(probes)
        for request in probes:
            _check_time(request.until, "probe's until")
        if not probes:
            return []
        args: list[Any] = []
        for p in probes:
            args += [p.key, num(p.policy.window), p.task_id, num(p.until), p.by]
        keys = [request.key for request in probes]
        return _states(keys, await self._breaker_script("breaker_probe", keys, now, args))

    async def breakers(self) -> list[BreakerState]:
        """Every breaker kept, sorted by key: those not closed, and closed ones not yet
        forgotten (all that counted something in their last two windows)."""
        flow = self._breaker_keys
        async with self._link.guard("reading the breakers"):
            names = sorted(
                n.decode() for n in await self._link.call("ZRANGE", flow.key("breakers"), 0, -1)
            )
            if not names:
                return []
            async with self._link.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(flow.breaker(name), *_HASH_FIELDS)
                rows = await pipe.execute()
        # A breaker forgotten between the two reads is gone from the hash too.
        return [_state(name, row) for name, row in zip(names, rows, strict=True) if row[0]]

    async def reset_breakers(self, keys: Sequence[str], *, now: float) -> list[bool]:
        """Close and forget each breaker, in one script; per key, whether it was not
        closed. InvalidInput, resetting none, for a bad key."""
        _check_time(now, "now")
        check_keys(keys)
        if not keys:
            return []
        reply = await self._breaker_script("breaker_reset", list(keys), now, list(keys))
        return [flag == 1 for flag in reply]

    async def _breaker_script(
        self, script: str, names: list[str], now: float, args: list[Any]
    ) -> Any:
        flow = self._breaker_keys
        keys = [flow.key("breakers"), flow.base, *map(flow.breaker, names)]
        async with self._link.guard(script):
            return await Scripts.run(self._link, script, keys, [num(now), REST_STEP, *args])


def _states(keys: list[str], reply: list[bytes]) -> list[BreakerState]:
    return [_state(key, reply[i * _FIELDS : (i + 1) * _FIELDS]) for i, key in enumerate(keys)]


def _state(key: str, raw: Sequence[bytes]) -> BreakerState:
    c, ws, ok, failed, pok, pf, ou, pr, pu, at, cb = (value.decode() for value in raw)
    return BreakerState(
        key,
        Circuit(c),
        window_start=float(ws),
        ok=int(ok),
        failed=int(failed),
        prev_ok=int(pok),
        prev_failed=int(pf),
        open_until=float(ou),
        probe=pr,
        probe_until=float(pu),
        changed_at=float(at),
        changed_by=cb,
    )


def _check_time(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"breaker {what} must be a finite number, got {value!r}")


def _check_policies(items: Sequence[Sample] | Sequence[Probe]) -> None:
    """What the Lua takes on trust, beside the shared checks: a policy and a name."""
    for item in items:
        if not isinstance(item.policy, Breaker):
            raise InvalidInput(
                f"breaker {item.key!r}: the policy must be a Breaker, got {item.policy!r}"
            )
        if not isinstance(item.by, str):
            raise InvalidInput(f"breaker {item.key!r}: by must be a string, got {item.by!r}")
