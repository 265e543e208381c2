"""The consumer of a Redis transport fused with the Redis store (``RedisStore.fuse``).

Its streams live in the store's shard slot, so one script takes entries and claims their
tasks (``fetch_claim``: expired entries taken over, then new ones read without blocking),
and one finishes attempts and acks their entries (``finish_ack``). Only when nothing is
there does it block on ``XREADGROUP`` and claim what came with a second script
(``claim_entries``): two round trips, and only when idle. Everything else (keep_alive,
nack, terminate, trimming, hand-off at close) is the plain consumer's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from atp.core.codec import DECODE_ERRORS, error_from_dict, loads
from atp.core.errors import AtpError, BackendUnavailable, InvalidInput
from atp.core.model import State, TaskRecord
from atp.core.ports import Claim, ClaimingConsumer, Delivery, Outcome
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._quarantine import quarantine
from atp.plugins.redis._records import decode_task, num, pack_outcome
from atp.plugins.redis.keys import StoreKeys
from atp.plugins.redis.transport import (
    BLOCK_SLICE,
    RedisConsumer,
    RedisTransport,
    _group_raws,
    _Raw,
    _task_id,
)

__all__ = ["ClaimingRedisConsumer"]

log = logging.getLogger("atp.plugins.redis")

Claimed = list[tuple[Delivery, Claim]]
_STEP = 12  # stream index, entry id, deliveries, task id, then t, p, a, ra, sub, rk, e, c


class ClaimingRedisConsumer(RedisConsumer):
    """A RedisConsumer that claims as it fetches and acks as it finishes."""

    def __init__(
        self, transport: RedisTransport, pattern: str, group: str, store_keys: StoreKeys
    ) -> None:
        super().__init__(transport, pattern, group)
        self._store = store_keys
        self._indexes = store_keys.indexes()
        self._turn = 0

    async def fetch_claimed(
        self, max_items: int, timeout: float, *, owner: str, lease: float
    ) -> Claimed:
        """Take up to ``max_items`` entries and claim their tasks for ``owner`` until
        ``lease`` seconds from now, waiting up to ``timeout`` for the first. Entries of
        tasks not claimable are acked and those naming no stored task terminated."""
        self._check_fetch(max_items)
        deadline = self._clock.now() + timeout
        while True:
            now = self._clock.now()
            if now >= self._discover_at:
                await self.discover()
            taken, found = await self._fetch_claim(max_items, owner, lease, now >= self._reclaim_at)
            if not taken and not self.closed:
                wait = min(max(deadline - self._clock.now(), 0.0), BLOCK_SLICE)
                found = await self._block_claim(max_items, wait, owner, lease)
            if found or self.closed or self._clock.now() >= deadline:
                return found

    async def finish_and_ack(
        self, outcomes: Sequence[Outcome], deliveries: Sequence[Delivery]
    ) -> list[bool]:
        """Apply the outcomes as ``RedisStore.finish`` does and ack the entry of each one
        applied, in one script; ``deliveries[i]`` carries ``outcomes[i]``."""
        if len(outcomes) != len(deliveries):
            raise InvalidInput(f"{len(outcomes)} outcomes for {len(deliveries)} deliveries")
        if not outcomes:
            return []
        index: dict[str, int] = {}
        args: list[Any] = []
        for outcome, delivery in zip(outcomes, deliveries, strict=True):
            subject, _, entry_id = delivery.token.partition(" ")
            j = index.setdefault(subject, len(index) + 1)
            args += (j, entry_id, pack_outcome(outcome))
        keys = [*self._indexes, *map(self._keys.stream, index)]
        keys += [self._store.task(outcome.task_id) for outcome in outcomes]
        async with self._guard("finish and ack"):
            reply = await Scripts.run(
                self._link, "finish_ack", keys, [self._group, len(index), *args]
            )
        try:
            await self._trim(list(index))
        except AtpError as exc:  # the outcomes are recorded; trimming comes again later
            log.warning("redis consumer %s: trimming failed: %s", self._name, exc)
        return [flag == 1 for flag in reply]

    async def _fetch_claim(
        self, max_items: int, owner: str, lease: float, reclaim: bool
    ) -> tuple[int, Claimed]:
        """One ``fetch_claim`` call: (entries taken, what was claimed)."""
        streams = list(self._streams.items())
        if not streams:
            return 0, []
        now = self._clock.now()
        if reclaim:
            self._reclaim_at = now + min(self._transport.lease / 4, 1.0)
        self._turn = self._turn % len(streams) + 1
        keys: list[str | bytes] = [*self._indexes, self._store.task_prefix]
        for stream, subject in streams:
            keys += (stream, self._keys.dead(subject))
        args = [
            self._group,
            self._name,
            owner,
            num(now),
            num(now + lease),
            max_items,
            self._lease_ms if reclaim else 0,
            self._turn,
        ]
        async with self._guard("fetch and claim"):
            reply = await Scripts.run(self._link, "fetch_claim", keys, args)
        lease_of = _Lease(owner, now, now + lease)
        return await self._claimed(reply, [subject for _, subject in streams], lease_of)

    async def _block_claim(self, max_items: int, wait: float, owner: str, lease: float) -> Claimed:
        """Block up to ``wait`` for new entries, then claim them with ``claim_entries``."""
        if not self._streams:
            if wait > 0:
                await self._clock.sleep(wait)
            return []
        raws = await self._read_raw(max_items, wait) if wait > 0 else []
        return await self._claim_entries(raws, owner, lease) if raws else []

    async def _claim_entries(self, raws: list[_Raw], owner: str, lease: float) -> Claimed:
        index: dict[str, int] = {}
        keys: list[str] = [*self._indexes]
        task_keys: list[str] = []
        args: list[Any] = []
        for raw in raws:
            j = index.get(raw.subject)
            if j is None:
                j = index[raw.subject] = len(index) + 1
                keys += (self._keys.stream(raw.subject), self._keys.dead(raw.subject))
            task_id = _task_id(raw.task_id) or ""
            args += (j, raw.entry_id, task_id)
            if task_id:
                task_keys.append(self._store.task(task_id))
        now = self._clock.now()
        head = [self._group, owner, num(now), num(now + lease), len(index)]
        lease_of = _Lease(owner, now, now + lease)
        try:
            async with self._guard("claiming fetched entries"):
                reply = await Scripts.run(
                    self._link, "claim_entries", keys + task_keys, head + args
                )
        except BackendUnavailable:
            with contextlib.suppress(AtpError):  # else they come back after their lease
                await self._settle(_group_raws(raws), max(self._lease_ms - 1000, 0))
            raise
        return (await self._claimed(reply, list(index), lease_of))[1]

    async def _claimed(
        self, reply: list[Any], subjects: list[str], lease: _Lease
    ) -> tuple[int, Claimed]:
        taken, gone, flat = reply
        if gone:
            self._lose_groups()
        found: Claimed = []
        corrupt: dict[str, str] = {}
        for i in range(0, len(flat), _STEP):
            subject, entry_id = subjects[int(flat[i]) - 1], flat[i + 1].decode()
            try:
                record = lease.record(*flat[i + 3 : i + _STEP])
            except DECODE_ERRORS as exc:  # its entry stays pending: acked once it is DEAD
                corrupt[flat[i + 3].decode()] = repr(exc)
                continue
            delivery = Delivery(record.task.id, subject, f"{subject} {entry_id}", int(flat[i + 2]))
            found.append((delivery, Claim(record, True)))
        await quarantine(self._link, self._store, corrupt, lease.now)
        return int(taken), found


class _Lease:
    """What a claim set: the record of a task it claimed is its stored fields plus these."""

    __slots__ = ("now", "owner", "until")

    def __init__(self, owner: str, now: float, until: float) -> None:
        self.owner, self.now, self.until = owner, now, until

    def record(
        self,
        i: bytes,
        t: bytes,
        p: bytes,
        a: bytes,
        ra: bytes,
        sub: bytes,
        rk: bytes,
        e: Any,
        c: Any,
    ) -> TaskRecord:
        errors = tuple(error_from_dict(item) for item in loads(e)) if e and e != b"[]" else ()
        return TaskRecord(
            task=decode_task(i, t, p, a, ra, sub, rk),
            state=State.RUNNING,
            updated_at=self.now,
            lease_owner=self.owner,
            lease_until=self.until,
            errors=errors,
            cancel_requested=c is not None,
        )


_CLAIMING: type[ClaimingConsumer] = ClaimingRedisConsumer
