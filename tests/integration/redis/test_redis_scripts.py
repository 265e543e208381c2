"""The stream and fused scripts, called directly on a real Redis: what each one writes,
and its answers for what it cannot do (duplicates, unknown ids, lost leases, lost groups).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from atp.core.codec import encode_task
from atp.core.ids import new_id
from atp.core.model import State, Task
from atp.core.ports import Outcome
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._records import num, pack_outcome, pack_task, rank
from atp.plugins.redis.keys import StoreKeys, TransportKeys
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0
GROUP = "atp:g"


class Shard:
    """One test's shard: its keys, a raw client, and the scripts' argument shapes."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = StoreKeys(prefix)
        self.streams = TransportKeys(prefix)
        self.subject = f"{unique('s')}.x"

    def task(self, n: int, *, delay: float = 0.0, key: str | None = None) -> Task:
        return Task(
            new_id(NOW),
            self.subject,
            payload={"n": n},
            run_at=NOW + delay,
            created_at=NOW,
            idempotency_key=key,
        )

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await Scripts.run(self.client, script, keys, args)

    async def create_publish(self, tasks: list[Task], nonce: str = "n1") -> list[Any]:
        keys = [*self.keys.indexes(), self.streams.subjects, self.streams.stream(self.subject)]
        keys += [self.keys.task(t.id) for t in tasks]
        for t in tasks:
            if t.idempotency_key:
                keys += [
                    self.keys.idempotency(t.subject, t.idempotency_key),
                    self.keys.unscoped_idempotency(t.idempotency_key),
                ]
        args = [num(NOW), "60.0", num(NOW + 30), 60_000, nonce, 1, self.subject]
        args += [pack_task(t) for t in tasks]
        reply: list[Any] = await self.run("create_publish", keys, args)
        return reply

    async def group(self) -> None:
        await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    @property
    def stream(self) -> str:
        return self.streams.stream(self.subject)

    async def fetch_claim(self, want: int, idle_ms: int = 0, owner: str = "w1") -> list[Any]:
        keys = [
            *self.keys.indexes(),
            self.keys.task_prefix,
            self.stream,
            self.streams.dead(self.subject),
        ]
        args = [GROUP, owner, owner, num(NOW + 1), num(NOW + 31), want, idle_ms, 1]
        reply: list[Any] = await self.run("fetch_claim", keys, args)
        return reply

    async def pending(self) -> int:
        info = await self.client.xpending(self.stream, GROUP)
        return int(info["pending"])

    async def state(self, task: Task) -> bytes | None:
        found: bytes | None = await self.client.hget(self.keys.task(task.id), "s")
        return found

    async def dead_letters(self) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in await self.client.xrange(self.streams.dead(self.subject))]


@pytest.fixture
async def shard(url: str, prefix: str) -> AsyncIterator[Shard]:
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield Shard(client, prefix)
    await client.aclose()


async def test_stream_publish_adds_only_ids_and_registers_the_subjects(shard: Shard) -> None:
    other = f"{unique('o')}.y"
    keys = [shard.streams.subjects, shard.stream, shard.streams.stream(other)]
    args = [shard.subject, other, 1, "a1", 2, "b1", 1, "a2"]
    added = await shard.run("stream_publish", keys, args)
    assert added == 3
    entries = [fields for _, fields in await shard.client.xrange(shard.stream)]
    assert entries == [{b"i": b"a1"}, {b"i": b"a2"}]
    assert await shard.client.smembers(shard.streams.subjects) == {
        shard.subject.encode(),
        other.encode(),
    }


async def test_create_publish_streams_ready_tasks_once(shard: Shard) -> None:
    now, later = shard.task(1), shard.task(2, delay=60)
    keyed, dup = shard.task(3, key="k"), shard.task(4, key="k")
    reply = await shard.create_publish([now, later, keyed, dup])
    assert reply == [
        now.id.encode(),
        1,
        num(now.run_at).encode(),
        later.id.encode(),
        1,
        num(later.run_at).encode(),
        keyed.id.encode(),
        1,
        num(keyed.run_at).encode(),
        keyed.id.encode(),
        0,
        num(keyed.run_at).encode(),
    ]
    again = await shard.create_publish([now, later, keyed, dup])
    assert again[1::3] == [1, 1, 1, 0], "a retried call reports its own tasks created"
    ids = [fields[b"i"].decode() for _, fields in await shard.client.xrange(shard.stream)]
    assert ids == [now.id, keyed.id], "only READY tasks are streamed, and only once"
    assert (await shard.state(now), await shard.state(later)) == (b"READY", b"SCHEDULED")
    counts = await shard.client.hgetall(shard.keys.index("counts"))
    assert counts == {
        f"{shard.subject} READY".encode(): b"2",
        f"{shard.subject} SCHEDULED".encode(): b"1",
    }
    assert await shard.client.sismember(shard.streams.subjects, shard.subject)


async def test_fetch_claim_claims_acks_duplicates_and_terminates_unknown_ids(
    shard: Shard,
) -> None:
    await shard.group()
    good, done = shard.task(1), shard.task(2)
    await shard.create_publish([good, done])
    await shard.client.hset(shard.keys.task(done.id), "s", "SUCCEEDED")
    await shard.client.xadd(shard.stream, {"i": "no-such-task"})
    await shard.client.xadd(shard.stream, {"junk": "x"})
    taken, gone, claimed = await shard.fetch_claim(10)
    assert (taken, gone) == (4, [])
    assert len(claimed) == 12, "one claimed entry: stream, entry, deliveries, id, 8 fields"
    assert claimed[0] == 1
    assert claimed[2] == 1
    assert claimed[3] == good.id.encode()
    assert claimed[6:10] == [b"1", num(NOW).encode(), shard.subject.encode(), rank(0).encode()]
    assert claimed[4] == b'{"created_at":1750000000.0}', "the envelope without its fields"
    assert await shard.state(good) == b"RUNNING"
    assert await shard.pending() == 1, "only the claimed entry stays pending"
    reasons = [(d[b"i"], d[b"reason"]) for d in await shard.dead_letters()]
    assert reasons == [
        (b"no-such-task", b"unknown task id: not in the task store"),
        (b"", b"not a task id"),
    ]
    counts = await shard.client.hgetall(shard.keys.index("counts"))
    assert counts[f"{shard.subject} RUNNING".encode()] == b"1"
    assert f"{shard.subject} READY".encode() in counts  # the SUCCEEDED one, set by hand


async def test_fetch_claim_reads_the_id_of_an_envelope_written_before_ids(shard: Shard) -> None:
    await shard.group()
    task = shard.task(1)
    await shard.create_publish([task])
    await shard.client.delete(shard.stream)
    await shard.group()
    await shard.client.xadd(shard.stream, {"t": encode_task(task)})
    await shard.client.xadd(shard.stream, {"t": b"{not json"})
    taken, _, claimed = await shard.fetch_claim(5)
    assert (taken, len(claimed)) == (2, 12)
    assert await shard.state(task) == b"RUNNING"
    assert [d[b"reason"] for d in await shard.dead_letters()] == [b"not a task id"]


async def test_fetch_claim_takes_over_expired_entries_only_when_asked(shard: Shard) -> None:
    await shard.group()
    task = shard.task(1)
    await shard.create_publish([task])
    await shard.fetch_claim(1, owner="w1")
    await shard.client.hset(shard.keys.task(task.id), "lu", num(NOW))  # the lease ran out
    [(entry, _)] = await shard.client.xrange(shard.stream)
    await shard.client.xclaim(shard.stream, GROUP, "w1", 0, [entry], idle=60_000, justid=True)
    assert (await shard.fetch_claim(1, idle_ms=0, owner="w2"))[0] == 0
    taken, _, claimed = await shard.fetch_claim(1, idle_ms=30_000, owner="w2")
    assert (taken, claimed[2], claimed[6]) == (1, 2, b"2"), "delivered twice, attempt 2"
    assert await shard.client.hget(shard.keys.task(task.id), "lo") == b"w2"


async def test_fetch_claim_reports_a_lost_group_and_reads_nothing_from_it(shard: Shard) -> None:
    await shard.create_publish([shard.task(1)])  # the stream exists, the group does not
    assert await shard.fetch_claim(5, idle_ms=1000) == [0, [1], []]


async def test_fetch_claim_takes_at_most_the_count_over_all_streams(shard: Shard) -> None:
    other = Shard(shard.client, shard.keys.prefix)
    for one in (shard, other):
        await one.group()
        await one.create_publish([one.task(n) for n in range(3)])
    keys = [*shard.keys.indexes(), shard.keys.task_prefix]
    for one in (shard, other):
        keys += [one.stream, one.streams.dead(one.subject)]
    args = [GROUP, "c", "w", num(NOW + 1), num(NOW + 31), 4, 0, 2]
    taken, _, claimed = await shard.run("fetch_claim", keys, args)
    assert taken == 4
    assert [claimed[i] for i in range(0, len(claimed), 12)] == [2, 2, 2, 1], "from stream 2 on"


async def test_claim_entries_settles_what_a_blocking_read_took(shard: Shard) -> None:
    await shard.group()
    task, finished = shard.task(1), shard.task(2)
    await shard.create_publish([task, finished])
    await shard.client.hset(shard.keys.task(finished.id), "s", "CANCELLED")
    await shard.client.xadd(shard.stream, {"i": "ghost"})
    reply = await shard.client.xreadgroup(GROUP, "c", {shard.stream: ">"}, count=10)
    entries = [(e.decode(), f[b"i"].decode()) for e, f in reply[0][1]]
    keys = [*shard.keys.indexes(), shard.stream, shard.streams.dead(shard.subject)]
    keys += [shard.keys.task(task_id) for _, task_id in entries]
    args: list[Any] = [GROUP, "w", num(NOW + 1), num(NOW + 31), 1]
    for entry_id, task_id in entries:
        args += [1, entry_id, task_id]
    taken, gone, claimed = await shard.run("claim_entries", keys, args)
    assert (taken, gone, len(claimed)) == (3, [], 12)
    assert claimed[1].decode() == entries[0][0]
    assert await shard.pending() == 1
    assert [d[b"i"] for d in await shard.dead_letters()] == [b"ghost"]


async def test_finish_ack_acks_only_the_outcomes_applied(shard: Shard) -> None:
    await shard.group()
    ours, lost = shard.task(1), shard.task(2)
    await shard.create_publish([ours, lost])
    _, _, claimed = await shard.fetch_claim(2)
    entries = [claimed[i + 1] for i in range(0, len(claimed), 12)]
    outcomes = [
        Outcome(ours.id, "w1", State.SUCCEEDED, NOW + 2, result={"ok": True}),
        Outcome(lost.id, "someone-else", State.SUCCEEDED, NOW + 2),
    ]
    keys = [*shard.keys.indexes(), shard.stream, *(shard.keys.task(o.task_id) for o in outcomes)]
    args: list[Any] = [GROUP, 1]
    for entry, outcome in zip(entries, outcomes, strict=True):
        args += [1, entry, pack_outcome(outcome)]
    assert await shard.run("finish_ack", keys, args) == [1, 0]
    assert (await shard.state(ours), await shard.state(lost)) == (b"SUCCEEDED", b"RUNNING")
    pending = await shard.client.xpending_range(shard.stream, GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [entries[1]]
    counts = await shard.client.hgetall(shard.keys.index("counts"))
    assert counts == {
        f"{shard.subject} SUCCEEDED".encode(): b"1",
        f"{shard.subject} RUNNING".encode(): b"1",
    }


async def test_finish_batches_counts_and_indexes_and_refuses_a_lost_lease(shard: Shard) -> None:
    await shard.group()
    tasks = [shard.task(n) for n in range(5)]
    await shard.create_publish(tasks)
    await shard.fetch_claim(5)
    outcomes = [Outcome(t.id, "w1", State.SUCCEEDED, NOW + 2) for t in tasks[:3]]
    outcomes += [
        Outcome(tasks[3].id, "w1", State.SCHEDULED, NOW + 2, run_at=NOW + 9),
        Outcome(tasks[4].id, "w2", State.DEAD, NOW + 2),
    ]
    keys = [*shard.keys.indexes(), *(shard.keys.task(o.task_id) for o in outcomes)]
    assert await shard.run("finish", keys, [pack_outcome(o) for o in outcomes]) == [1, 1, 1, 1, 0]
    assert await shard.client.zcard(shard.keys.index("finished")) == 3
    assert await shard.client.zrange(shard.keys.index("running"), 0, -1) == [tasks[4].id.encode()]
    [(member, score)] = await shard.client.zrange(shard.keys.index("due"), 0, -1, withscores=True)
    assert (member.decode().split(":")[1], score) == (tasks[3].id, NOW + 9)
    counts = await shard.client.hgetall(shard.keys.index("counts"))
    assert counts == {
        f"{shard.subject} SUCCEEDED".encode(): b"3",
        f"{shard.subject} SCHEDULED".encode(): b"1",
        f"{shard.subject} RUNNING".encode(): b"1",
    }


async def test_claim_answers_unknown_not_claimable_and_claimed(shard: Shard) -> None:
    ready, waiting = shard.task(1), shard.task(2, delay=60)
    await shard.create_publish([ready, waiting])
    ids = [ready.id, waiting.id, "missing"]
    keys = [*shard.keys.indexes(), *map(shard.keys.task, ids)]
    reply = await shard.run("claim", keys, ["w", num(NOW + 1), num(NOW + 31), *ids])
    flags = [reply[i] for i in range(0, len(reply), 16)]
    assert flags == [1, 0, -1]
    claimed = reply[1:16]
    assert (claimed[0], claimed[3], claimed[4], claimed[5], claimed[11]) == (
        ready.id.encode(),
        b"RUNNING",
        num(NOW + 1).encode(),
        b"w",
        b"1",
    ), "id, state, updated_at, owner and attempt as after the claim"
    assert reply[33] == b"missing"
    assert reply[34:48] == [None] * 14, "an unknown id: no fields"


async def test_stream_terminate_keeps_one_copy_per_entry(shard: Shard) -> None:
    await shard.group()
    await shard.client.xadd(shard.stream, {"i": "t1"})
    [[_, [(entry, _)]]] = await shard.client.xreadgroup(GROUP, "c", {shard.stream: ">"})
    keys = [shard.stream, shard.streams.dead(shard.subject)]
    args = [GROUP, "poison", num(NOW), entry, "t1"]
    assert await shard.run("stream_terminate", keys, args) == 1
    assert await shard.run("stream_terminate", keys, args) == 0
    [copy] = await shard.dead_letters()
    assert (copy[b"i"], copy[b"reason"], copy[b"id"]) == (b"t1", b"poison", entry)
