"""Flow control in the Redis store (the FlowLedger port, ADR 0038): slots, token buckets,
sliding windows, waiter lists and the rules, each operation one Lua script over keys of
the store shard's slot (``_flow.lua`` holds the schema, the meter's arithmetic and the
wake order of ADR 0039: stride scheduling over a list's groups, rank order within one).

The core matches rules to tasks; this side only names keys and packs arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atp.core.codec import dumps, loads
from atp.core.flow.rules import Limit, Rules, limit_from_dict, limit_to_dict
from atp.core.ports import Admission, Held, Verdict, Wait
from atp.plugins.redis._connection import Link, Scripts
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import FlowKeys, StoreKeys

__all__ = ["FlowLedgerMethods"]

_ADMITTED, _WAIT = 1, 0
GC_STEP = 256
"""Slots each ``wake_ready`` looks at in its walk over the slot limits (``flow:slots``):
the sweep runs every second, so a limit left behind by a dead holder goes within
seconds, and no one call holds the server for long."""


class FlowLedgerMethods:
    """The FlowLedger methods of RedisStore, on the store's shard."""

    _link: Link
    _keys: StoreKeys
    _indexes: list[str]

    @property
    def _flow(self) -> FlowKeys:
        return FlowKeys(self._keys.prefix, self._keys.shard)

    async def admit(self, requests: Sequence[Admission], *, now: float) -> list[Verdict]:
        """Admit or refuse each task, in order, in one script."""
        if not requests:
            return []
        flow = self._flow
        keys, args = [flow.key("slots")], [num(now)]
        for request in requests:
            _pack_admission(flow, request, keys, args)
        reply = await self._flow_script("flow_admit", keys, args)
        return [_verdict(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]

    async def extend(self, held: Sequence[Held], *, until: float) -> None:
        """Move the ``until`` of each slot each task holds."""
        flow = self._flow
        pairs = [(flow.slot(slot), h.task_id) for h in held for slot in h.slots]
        if pairs:
            keys, ids = zip(*pairs, strict=True)
            await self._flow_script("flow_extend", list(keys), [num(until), *ids])

    async def release_slots(self, held: Sequence[Held], *, now: float, reserve: float) -> list[str]:
        """Give the slots back and take out the waiters that now have room, each a
        holder of its slot until ``now + reserve``."""
        names = list(dict.fromkeys(slot for h in held for slot in h.slots))
        if not names:
            return []
        flow = self._flow
        number = {name: i for i, name in enumerate(names, 1)}
        keys = [flow.key("slots"), flow.key("waiting"), flow.base, *map(flow.slot, names)]
        args: list[Any] = [num(now), num(now + reserve), len(names), *names]
        for h in held:
            for slot in h.slots:
                args += [number[slot], h.task_id]
        return _ids(await self._flow_script("flow_release", keys, args))

    async def park(self, waits: Sequence[Wait], *, now: float, reserve: float) -> list[str]:
        """Add each task to its waiter list, then wake what has room, in wake order,
        each a holder of its slot until ``now + reserve``."""
        names = list(dict.fromkeys(wait.name for wait in waits))
        if not names:
            return []
        flow = self._flow
        number = {name: i for i, name in enumerate(names, 1)}
        keys = [flow.key("slots"), flow.key("waiting"), flow.base, *map(flow.slot, names)]
        args: list[Any] = [num(now), num(now + reserve), len(names), *names]
        for wait in waits:
            args += [number[wait.name], wait.task_id, wait.group, wait.weight, num(wait.rank)]
        return _ids(await self._flow_script("flow_park", keys, args))

    async def wake_ready(self, *, now: float, limit: int, reserve: float) -> list[str]:
        """Take out the waiters of every slot with room, at most ``limit`` in all, each a
        holder of its slot until ``now + reserve``."""
        if limit < 1:
            return []
        flow = self._flow
        keys = [flow.key("slots"), flow.key("waiting"), flow.base, flow.key("gc")]
        args = [num(now), limit, GC_STEP, num(now + reserve)]
        return _ids(await self._flow_script("flow_wake_ready", keys, args))

    async def unpark(self, names: Sequence[str], *, limit: int) -> list[str]:
        """Take up to ``limit`` waiters out of the named lists, each in wake order."""
        names = list(dict.fromkeys(names))
        if not names or limit < 1:
            return []
        flow = self._flow
        keys = [flow.key("waiting"), flow.key("slots"), flow.base, *map(flow.slot, names)]
        return _ids(await self._flow_script("flow_unpark", keys, [limit, *names]))

    async def waiters(self) -> dict[str, int]:
        """How many tasks wait in each non-empty waiter list."""
        flow = self._flow
        async with self._link.guard("reading the waiter lists"):
            names = sorted(
                n.decode() for n in await self._link.call("SMEMBERS", flow.key("waiting"))
            )
            if not names:
                return {}
            async with self._link.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hlen(flow.waiters(name))
                sizes = await pipe.execute()
        return {name: size for name, size in zip(names, sizes, strict=True) if size}

    async def wake(self, ids: Sequence[str], *, now: float) -> int:
        """Make SCHEDULED tasks due later due ``now``; how many changed."""
        if not ids:
            return 0
        keys = [*self._indexes, *map(self._keys.task, ids)]
        changed: int = await self._flow_script("flow_wake", keys, [num(now), *ids])
        return changed

    async def put_limits(self, limits: Sequence[Limit]) -> None:
        """Create or replace limits by name."""
        if not limits:
            return
        args: list[Any] = ["put"]
        for limit in limits:
            args += [limit.name, dumps(limit_to_dict(limit))]
        await self._rules_script(args)

    async def remove_limits(self, names: Sequence[str]) -> list[bool]:
        """Remove limits by name; per name, whether it existed."""
        if not names:
            return []
        return [flag == 1 for flag in await self._rules_script(["remove", *names])]

    async def set_paused(self, patterns: Sequence[str], paused: bool) -> list[bool]:
        """Pause or resume subject patterns; per pattern, whether it changed anything."""
        if not patterns:
            return []
        op = "pause" if paused else "resume"
        return [flag == 1 for flag in await self._rules_script([op, *patterns])]

    async def rules(self) -> Rules:
        """Every limit and paused pattern, with the version, read in one script."""
        reply = await self._rules_script(["get"])
        version, count = int(reply[0]), int(reply[1])
        limits = sorted(
            (limit_from_dict(loads(raw)) for raw in reply[2 : 2 + count]),
            key=lambda limit: limit.name,
        )
        pauses = sorted(p.decode() for p in reply[2 + count :])
        return Rules(tuple(limits), tuple(pauses), version)

    async def rules_version(self) -> int:
        """The rules' version: 0 until the first rule is written."""
        async with self._link.guard("reading the flow rules' version"):
            version = await self._link.call("GET", self._flow.key("version"))
        return int(version) if version else 0

    async def _rules_script(self, args: list[Any]) -> Any:
        flow = self._flow
        keys = [flow.key("rules"), flow.key("pauses"), flow.key("version")]
        return await self._flow_script("flow_rules", keys, args)

    async def _flow_script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        async with self._link.guard(script):
            return await Scripts.run(self._link, script, keys, args)


def _pack_admission(flow: FlowKeys, request: Admission, keys: list[str], args: list[Any]) -> None:
    """Append one request's KEYS and ARGV, in flow_admit.lua's order."""
    gates = request.gates
    args += [request.task_id, num(request.lease_until)]
    args += [len(gates.slots), len(gates.buckets), len(gates.windows)]
    for slot in gates.slots:
        keys.append(flow.slot(slot.name))
        args += [slot.name, slot.limit]
    for bucket in gates.buckets:
        keys.append(flow.bucket(bucket.name))
        args += [num(bucket.rate), bucket.burst]
    for window in gates.windows:
        keys += [flow.window(window.name), flow.window_queue(window.name)]
        args += [window.count, num(window.period)]


def _verdict(code: int, value: bytes) -> Verdict:
    if code == _ADMITTED:
        return Verdict(True)
    if code == _WAIT:
        return Verdict(False, wait_for=value.decode())
    return Verdict(False, retry_at=float(value))


def _ids(reply: list[bytes]) -> list[str]:
    return [item.decode() for item in reply]
