"""The fused-operations conformance suite: ``FusingStore`` and ``ClaimingConsumer``.

For a store and a transport on one server that fuse (ADR 0023). Subclass it under a
``Test`` name and provide ``store`` and ``transport`` fixtures built on the same server;
the suite calls ``store.fuse(transport)`` itself, as ``Platform.build`` does::

    class TestMyFused(FusedConformance):
        @pytest.fixture
        def clock(self):
            return SystemClock()

        @pytest.fixture
        async def store(self, clock): ...

        @pytest.fixture
        async def transport(self, clock): ...  # with a short lease, a second or two

Each fused call must keep the guarantees of the separate calls it replaces: the
TaskStore and Transport suites state them; this suite checks that they still hold when
store and transport work is one atomic call. Time: like the Transport suite, a
transport whose server keeps its own time needs a ``SystemClock`` and a short lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import pytest_asyncio

from atp.core.model import State, Task
from atp.core.ports import (
    Claim,
    ClaimingConsumer,
    Clock,
    Created,
    Delivery,
    FusingStore,
    Outcome,
    TaskStore,
    Transport,
)
from atp.sdk.conformance._support import PAYLOADS, PortSuite, make_task, missing_fixture, unique

__all__ = ["FusedConformance"]

WINDOW = 3600.0
OWNER = "conformance-worker"


class FusedConformance(PortSuite):
    """Checks a fused store and transport against ``FusingStore`` and ``ClaimingConsumer``."""

    delivery_timeout: ClassVar[float] = 5.0
    """Seconds a test waits for deliveries that must come."""
    quiet_period: ClassVar[float] = 0.5
    """Seconds a test watches for a delivery that must not come."""

    @pytest.fixture
    def store(self, clock: Clock) -> TaskStore:
        """Override: a store that can fuse with ``transport``."""
        missing_fixture(self, "store")

    @pytest.fixture
    def transport(self, clock: Clock) -> Transport:
        """Override: a transport on the same server as ``store``."""
        missing_fixture(self, "transport")

    @pytest_asyncio.fixture
    async def fused(self, store: TaskStore, transport: Transport) -> FusingStore:
        assert isinstance(store, FusingStore), "the store does not implement FusingStore"
        assert store.fuse(transport), "the store refused to fuse with this transport"
        return store

    @pytest_asyncio.fixture
    async def consumer(
        self, fused: FusingStore, transport: Transport, subject: str
    ) -> AsyncIterator[ClaimingConsumer]:
        consumer = await transport.consume(subject, unique("group"))
        assert isinstance(consumer, ClaimingConsumer), "a fused transport made a plain consumer"
        yield consumer
        await consumer.close()

    @pytest.fixture
    def subject(self) -> str:
        return f"{unique('fused')}.jobs"

    # -- create and publish ------------------------------------------------------------------

    async def test_created_tasks_are_claimed_with_their_envelope(
        self, fused: FusingStore, consumer: ClaimingConsumer, clock: Clock, subject: str
    ) -> None:
        tasks = [make_task(subject, clock.now(), payload=p) for p in PAYLOADS]
        created = await self.create(fused, clock, tasks)
        assert [c.created for c in created] == [True] * len(tasks)
        got = await self.claimed(consumer, len(tasks))
        by_id = {task.id: task for task in tasks}
        for delivery, claim in got:
            assert claim.claimed
            assert claim.record is not None
            assert claim.record.state is State.RUNNING
            assert claim.record.lease_owner == OWNER
            assert claim.record.task.attempt == 1
            assert claim.record.task.payload == by_id[delivery.task_id].payload
            assert delivery.subject == subject
        assert sorted(d.task_id for d, _ in got) == sorted(by_id)

    async def test_a_matched_idempotency_key_is_neither_created_nor_published(
        self, fused: FusingStore, consumer: ClaimingConsumer, clock: Clock, subject: str
    ) -> None:
        key = unique("key")
        first, again = (make_task(subject, clock.now(), idempotency_key=key) for _ in "ab")
        await self.create(fused, clock, [first])
        (dup,) = await self.create(fused, clock, [again])
        assert dup == Created(first.id, False, first.run_at)
        await self.claims_only(consumer, first)

    async def test_a_key_used_on_another_subject_is_created_and_published(
        self, fused: FusingStore, consumer: ClaimingConsumer, clock: Clock, subject: str
    ) -> None:
        key, now = unique("key"), clock.now()
        elsewhere = make_task(f"{unique('other')}.x", now, idempotency_key=key)
        first = make_task(subject, now, idempotency_key=key)
        created = await self.create(fused, clock, [elsewhere, first])
        assert [c.created for c in created] == [True, True], "keys are scoped by subject"
        await self.claims_only(consumer, first)

    async def test_a_task_due_later_is_stored_scheduled_and_not_published(
        self,
        store: TaskStore,
        fused: FusingStore,
        consumer: ClaimingConsumer,
        clock: Clock,
        subject: str,
    ) -> None:
        later = make_task(subject, clock.now(), run_at=clock.now() + 3600)
        await self.create(fused, clock, [later])
        (record,) = await store.get([later.id])
        assert record is not None
        assert record.state is State.SCHEDULED
        assert await self.quiet(consumer) == []

    # -- fetch and claim ---------------------------------------------------------------------

    async def test_a_cancelled_task_is_acked_and_never_returned(
        self,
        store: TaskStore,
        fused: FusingStore,
        consumer: ClaimingConsumer,
        clock: Clock,
        subject: str,
    ) -> None:
        gone, kept = (make_task(subject, clock.now()) for _ in "ab")
        await self.create(fused, clock, [gone, kept])
        await store.cancel([gone.id], now=clock.now())
        await self.claims_only(consumer, kept)

    async def test_an_unknown_id_is_terminated_and_never_returned(
        self,
        fused: FusingStore,
        transport: Transport,
        consumer: ClaimingConsumer,
        clock: Clock,
        subject: str,
    ) -> None:
        await transport.publish([make_task(subject, clock.now())])  # never stored
        known = make_task(subject, clock.now())
        await self.create(fused, clock, [known])
        await self.claims_only(consumer, known)

    # -- finish and ack ----------------------------------------------------------------------

    async def test_finish_and_ack_records_and_acks_only_what_applied(
        self,
        store: TaskStore,
        fused: FusingStore,
        consumer: ClaimingConsumer,
        clock: Clock,
        subject: str,
    ) -> None:
        tasks = [make_task(subject, clock.now(), payload=i) for i in range(2)]
        await self.create(fused, clock, tasks)
        got = {d.task_id: d for d, _ in await self.claimed(consumer, 2)}
        done, lost = (got[task.id] for task in tasks)
        outcomes = [
            Outcome(done.task_id, OWNER, State.SUCCEEDED, clock.now(), result={"ok": 1}),
            Outcome(lost.task_id, "someone-else", State.SUCCEEDED, clock.now()),
        ]
        assert await consumer.finish_and_ack(outcomes, [done, lost]) == [True, False]
        first, second = await store.get([done.task_id, lost.task_id])
        assert first is not None
        assert second is not None
        assert (first.state, first.result, second.state) == (
            State.SUCCEEDED,
            {"ok": 1},
            State.RUNNING,
        )

    async def test_an_empty_fetch_waits_for_its_timeout_and_returns_nothing(
        self, consumer: ClaimingConsumer, clock: Clock
    ) -> None:
        assert await self.quiet(consumer) == []

    # -- helpers -----------------------------------------------------------------------------

    async def create(self, fused: FusingStore, clock: Clock, tasks: list[Task]) -> list[Created]:
        now = clock.now()
        return await fused.create_and_publish(
            tasks, now=now, idempotency_window=WINDOW, ready_until=now + 30
        )

    async def claimed(self, consumer: ClaimingConsumer, count: int) -> list[tuple[Delivery, Claim]]:
        """Fetch and claim until ``count`` came or ``delivery_timeout`` passed."""
        got: list[tuple[Delivery, Claim]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delivery_timeout
        while len(got) < count and loop.time() < deadline:
            got += await consumer.fetch_claimed(count - len(got), 0.5, owner=OWNER, lease=30.0)
        assert len(got) == count, f"{len(got)} of {count} claimed in {self.delivery_timeout} s"
        return got

    async def claims_only(self, consumer: ClaimingConsumer, task: Task) -> None:
        """``task`` is claimed, and nothing else comes."""
        got = await self.claimed(consumer, 1)
        assert [d.task_id for d, _ in got] == [task.id]
        assert await self.quiet(consumer) == []

    async def quiet(self, consumer: ClaimingConsumer) -> list[tuple[Delivery, Claim]]:
        """What a fetch returns over ``quiet_period``: nothing, where nothing must come."""
        return await consumer.fetch_claimed(10, self.quiet_period, owner=OWNER, lease=30.0)
