"""The Transport conformance suite: every guarantee of ``atp.core.ports.Transport``.

Subclass it under a ``Test`` name and provide a ``transport`` fixture::

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        async def transport(self, clock):
            transport = MyTransport(url, lease=2.0, clock=clock)
            yield transport
            await transport.close()

Each test uses its own subject prefix and groups from ``unique()`` and always subscribes
before it publishes, so a shared server needs no cleaning. Tests that need a capability
the transport does not declare (``lease_recovery``, ``lease_extension``, ``delay``) are
skipped with that reason.

Time: with the default ``ManualClock`` the suite advances the clock while a ``fetch``
waits, so the transport's lease, nack delays and fetch timeouts pass instantly; the
transport must then take all of its time from the clock. A transport whose server keeps
its own time (JetStream's ack wait, a Redis Streams idle time) overrides ``clock`` to
return a ``SystemClock``: the suite then waits for real, so build the transport with a
short lease (a second or two). A test whose real wait would exceed ``max_real_wait`` is
skipped, and "not before" checks allow ``timing_slack`` of a real clock's imprecision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import ClassVar

import pytest
import pytest_asyncio

from atp.core.errors import InvalidInput
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.ports import Capabilities, Clock, Consumer, Delivery, Transport
from atp.sdk.conformance._support import (
    PAYLOADS,
    PortSuite,
    deep_payload,
    full_task,
    is_manual,
    make_task,
    missing_fixture,
    pass_time,
    unique,
)

__all__ = ["TransportConformance"]

FLAGS = (
    "delay",
    "deduplication",
    "lease_extension",
    "dead_letters",
    "durable",
    "lease_recovery",
    "shared",
)
BAD_SUBJECTS = ["", "has space", "a..b", ".a", "a.", "orders.*", "orders.>", "ü.x", "a" * 256]


class Consumers:
    """The consumers one test opened; the fixture closes those still open."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._open: list[Consumer] = []

    async def open(self, pattern: str, group: str) -> Consumer:
        consumer = await self._transport.consume(pattern, group)
        self._open.append(consumer)
        return consumer

    async def close(self, consumer: Consumer) -> None:
        self._open.remove(consumer)
        await consumer.close()

    async def close_all(self) -> None:
        while self._open:
            await self.close(self._open[-1])


class TransportConformance(PortSuite):
    """Checks a Transport and its Consumers against the contract in ``atp.core.ports``."""

    quiet_period: ClassVar[float] = 0.5
    """Seconds a test watches for a message that must not come."""
    delivery_timeout: ClassVar[float] = 5.0
    """Seconds a test waits for messages that must come."""
    poll: ClassVar[float] = 1.0
    """Longest single ``fetch`` while waiting for a message."""
    nack_delay: ClassVar[float] = 1.0
    """The ``delay`` of the delayed-nack test."""
    timing_slack: ClassVar[float] = 0.2
    """Fraction of a real-clock duration a "not before" check forgives."""

    @pytest.fixture
    def transport(self, clock: Clock) -> Transport:
        """Override: a Transport built with ``clock``."""
        missing_fixture(self, "transport")

    @pytest.fixture
    def prefix(self) -> str:
        """A subject prefix no other test uses."""
        return unique("conf")

    @pytest.fixture
    def group(self) -> str:
        """A consumer group no other test uses."""
        return unique("group")

    @pytest_asyncio.fixture
    async def consumers(self, transport: Transport) -> AsyncIterator[Consumers]:
        pool = Consumers(transport)
        yield pool
        await pool.close_all()

    # -- capabilities and shape --------------------------------------------------------------

    async def test_capabilities_are_declared_consistently(self, transport: Transport) -> None:
        caps = transport.capabilities
        assert isinstance(caps, Capabilities)
        assert {flag: type(getattr(caps, flag)) for flag in FLAGS} == dict.fromkeys(FLAGS, bool)
        needs_lease = caps.lease_extension or caps.lease_recovery
        assert (caps.lease is not None) == needs_lease, (
            f"lease={caps.lease!r} must be set exactly when lease_extension or lease_recovery is"
        )
        assert caps.lease is None or caps.lease > 0

    async def test_implements_the_protocols(
        self, transport: Transport, consumers: Consumers, prefix: str, group: str
    ) -> None:
        assert isinstance(transport, Transport)
        assert isinstance(await consumers.open(f"{prefix}.>", group), Consumer)

    # -- publish -----------------------------------------------------------------------------

    async def test_each_delivery_names_its_task_and_subject(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        now = clock.now()
        tasks = [full_task(f"{prefix}.full", now), Task(new_id(now), f"{prefix}.bare")]
        tasks += [make_task(f"{prefix}.p", now, payload=p) for p in [*PAYLOADS, deep_payload(40)]]
        await transport.publish(tasks)
        got = await self.collect(consumer, clock, len(tasks))
        assert named(got) == names(tasks)
        assert {(type(d.token), d.deliveries) for d in got} == {(str, 1)}
        await consumer.ack(got)

    async def test_publish_of_an_empty_batch_does_nothing(self, transport: Transport) -> None:
        await transport.publish([])

    @pytest.mark.parametrize("subject", BAD_SUBJECTS, ids=lambda s: repr(s)[:20])
    async def test_publish_to_a_bad_subject_raises_invalid_input(
        self, transport: Transport, clock: Clock, subject: str
    ) -> None:
        with pytest.raises(InvalidInput):
            await transport.publish([Task(new_id(clock.now()), subject)])

    async def test_publishing_the_same_task_twice_is_safe(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        task = make_task(f"{prefix}.twice", clock.now(), payload={"n": 1})
        await transport.publish([task])
        await transport.publish([task])
        got = await self.collect(consumer, clock, 1)
        got += await self.collect(consumer, clock, 1, self.quiet(transport), exact=False)
        assert all(named([d]) == names([task]) for d in got)
        if transport.capabilities.deduplication:
            assert len(got) == 1, "a deduplicating transport delivered a duplicate"
        await consumer.ack(got)

    # -- subjects and groups -----------------------------------------------------------------

    async def test_star_matches_exactly_one_token(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.*.end", group)
        matching = [f"{prefix}.a.end", f"{prefix}.b.end"]
        others = [f"{prefix}.a", f"{prefix}.a.b.end", f"{prefix}.a.other", f"{unique('x')}.a.end"]
        await self.expect_routing(transport, consumer, clock, matching, others)

    async def test_greater_than_matches_one_or_more_tokens(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        matching = [f"{prefix}.a", f"{prefix}.a.b", f"{prefix}.a.b.c"]
        others = [prefix, f"{unique('x')}.a", f"{prefix}x.a"]
        await self.expect_routing(transport, consumer, clock, matching, others)

    async def test_exact_pattern_matches_only_its_subject(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.exact", group)
        others = [f"{prefix}.exact.more", f"{prefix}.other", prefix]
        await self.expect_routing(transport, consumer, clock, [f"{prefix}.exact"], others)

    async def test_subjects_created_after_subscribing_are_delivered(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        assert await self.fetch(consumer, clock, 10, self.quiet(transport)) == []
        task = make_task(f"{prefix}.brand.new", clock.now())
        await transport.publish([task])
        got = await self.collect(consumer, clock, 1)
        assert named(got) == names([task])
        await consumer.ack(got)

    async def test_every_group_gets_every_message(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str
    ) -> None:
        first = await consumers.open(f"{prefix}.>", unique("group"))
        second = await consumers.open(f"{prefix}.>", unique("group"))
        third = await consumers.open(f"{prefix}.*", unique("group"))
        tasks = [make_task(f"{prefix}.s{i}", clock.now()) for i in range(5)]
        await transport.publish(tasks)
        for consumer in (first, second, third):
            got = await self.collect(consumer, clock, len(tasks))
            assert named(got) == names(tasks)
            await consumer.ack(got)

    async def test_consumers_of_one_group_share_the_messages(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        pair = [await consumers.open(f"{prefix}.>", group) for _ in range(2)]
        tasks = [make_task(f"{prefix}.shared", clock.now(), payload=i) for i in range(10)]
        await transport.publish(tasks)
        got: list[Delivery] = []
        deadline = clock.now() + self.delivery_timeout
        while len(got) < len(tasks) and clock.now() < deadline:
            for consumer in pair:
                batch = await self.fetch(consumer, clock, 3, min(self.poll, self.quiet(transport)))
                await consumer.ack(batch)
                got += batch
        assert sorted(d.task_id for d in got) == sorted(t.id for t in tasks), "lost or doubled"
        for consumer in pair:
            assert await self.fetch(consumer, clock, 10, self.quiet(transport)) == []

    # -- fetch -------------------------------------------------------------------------------

    async def test_fetch_returns_an_empty_list_on_timeout(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        timeout = self.quiet(transport)
        started = clock.now()
        assert await fetch_once(consumer, clock, 10, timeout) == []
        waited = clock.now() - started
        assert waited >= timeout * (1 - self.slack(clock)), f"returned after {waited:.3f} s"

    async def test_fetch_returns_as_soon_as_a_message_arrives(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        timeout = self.real_wait(clock, 2 * self.delivery_timeout, "a long fetch")
        started = clock.now()
        pending = asyncio.ensure_future(consumer.fetch(10, timeout))
        await pass_time(clock, 0.0 if is_manual(clock) else 0.05)
        task = make_task(f"{prefix}.wake", clock.now())
        await transport.publish([task])
        got = await bounded(pending, timeout, "fetch")
        assert named(got) == names([task])
        assert clock.now() - started < timeout / 2, "fetch waited although a message came"
        await consumer.ack(got)

    async def test_fetch_returns_at_most_max_items(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        tasks = [make_task(f"{prefix}.many", clock.now(), payload=i) for i in range(5)]
        await transport.publish(tasks)
        got: list[Delivery] = []
        deadline = clock.now() + self.delivery_timeout
        while len(got) < len(tasks) and clock.now() < deadline:
            batch = await self.fetch(consumer, clock, 2, min(self.poll, deadline - clock.now()))
            assert len(batch) <= 2, f"fetch(max_items=2) returned {len(batch)}"
            got += batch
        assert named(got) == names(tasks)
        await consumer.ack(got)

    # -- settling deliveries -----------------------------------------------------------------

    async def test_ack_removes_the_message_for_good(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        await transport.publish([make_task(f"{prefix}.ack", clock.now())])
        got = await self.collect(consumer, clock, 1)
        await consumer.ack(got)
        await consumer.ack(got)
        await self.wait_past_lease(transport, clock)
        other = await consumers.open(f"{prefix}.>", group)
        for each in (consumer, other):
            assert await self.fetch(each, clock, 10, self.quiet(transport)) == []

    async def test_nack_redelivers_and_counts_the_delivery(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        task = make_task(f"{prefix}.nack", clock.now(), payload={"again": True})
        await transport.publish([task])
        [first] = await self.collect(consumer, clock, 1)
        await consumer.nack([first])
        [second] = await self.collect(consumer, clock, 1)
        assert (second.task_id, second.deliveries) == (task.id, 2)
        await consumer.ack([second])

    async def test_nack_with_a_delay_redelivers_not_before_it(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        task = make_task(f"{prefix}.later", clock.now())
        await transport.publish([task])
        [first] = await self.collect(consumer, clock, 1)
        nacked = clock.now()
        await consumer.nack([first], delay=self.nack_delay)
        if transport.capabilities.delay:
            early = await self.fetch(consumer, clock, 10, self.nack_delay / 2)
            assert early == [], "a delayed nack was redelivered before its delay"
        [second] = await self.collect(consumer, clock, 1, self.nack_delay + self.delivery_timeout)
        assert named([second]) == names([task])
        if transport.capabilities.delay:
            waited = clock.now() - nacked
            assert waited >= self.nack_delay * (1 - self.slack(clock)), f"after {waited:.3f} s"
        await consumer.ack([second])

    async def test_terminate_never_redelivers(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        consumer = await consumers.open(f"{prefix}.>", group)
        await transport.publish([make_task(f"{prefix}.poison", clock.now())])
        got = await self.collect(consumer, clock, 1)
        await consumer.terminate(got, "poison message")
        await self.wait_past_lease(transport, clock)
        other = await consumers.open(f"{prefix}.>", group)
        for each in (consumer, other):
            assert await self.fetch(each, clock, 10, self.quiet(transport)) == []

    # -- leases ------------------------------------------------------------------------------

    async def test_keep_alive_prevents_redelivery_past_the_lease(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        lease = self.require_lease(transport, clock, "lease_extension", "lease_recovery")
        holder = await consumers.open(f"{prefix}.>", group)
        rival = await consumers.open(f"{prefix}.>", group)
        await transport.publish([make_task(f"{prefix}.long", clock.now())])
        got = await self.collect(holder, clock, 1)
        for _ in range(3):
            await pass_time(clock, 0.5 * lease)
            await holder.keep_alive(got)
        assert await self.fetch(rival, clock, 10, min(self.quiet_period, 0.25 * lease)) == [], (
            "a delivery kept alive was redelivered after its first lease"
        )
        await holder.ack(got)

    async def test_unsettled_delivery_is_redelivered_after_the_lease(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        lease = self.require_lease(transport, clock, "lease_recovery")
        silent = await consumers.open(f"{prefix}.>", group)
        rival = await consumers.open(f"{prefix}.>", group)
        task = make_task(f"{prefix}.abandoned", clock.now())
        await transport.publish([task])
        await self.collect(silent, clock, 1)
        await self.expect_redelivery(rival, clock, task, lease)

    async def test_deliveries_of_a_closed_consumer_go_to_another(
        self, transport: Transport, consumers: Consumers, clock: Clock, prefix: str, group: str
    ) -> None:
        lease = self.require_lease(transport, clock, "lease_recovery")
        leaving = await consumers.open(f"{prefix}.>", group)
        staying = await consumers.open(f"{prefix}.>", group)
        task = make_task(f"{prefix}.orphan", clock.now())
        await transport.publish([task])
        await self.collect(leaving, clock, 1)
        await consumers.close(leaving)
        await self.expect_redelivery(staying, clock, task, lease, early_check=False)

    # -- helpers -----------------------------------------------------------------------------

    async def expect_routing(
        self,
        transport: Transport,
        consumer: Consumer,
        clock: Clock,
        matching: Sequence[str],
        others: Sequence[str],
    ) -> None:
        """Publish to every subject; only those in ``matching`` may reach ``consumer``."""
        wanted = [make_task(subject, clock.now()) for subject in matching]
        await transport.publish([make_task(s, clock.now()) for s in others] + wanted)
        got = await self.collect(consumer, clock, len(wanted))
        got += await self.collect(consumer, clock, 1, self.quiet(transport), exact=False)
        assert sorted(d.subject for d in got) == sorted(matching)
        await consumer.ack(got)

    async def expect_redelivery(
        self, consumer: Consumer, clock: Clock, task: Task, lease: float, early_check: bool = True
    ) -> None:
        """``task``, leased just now, must reach ``consumer`` after about one lease."""
        started = clock.now()
        if early_check:
            early = await self.fetch(consumer, clock, 10, 0.5 * lease)
            assert early == [], "redelivered long before the lease ran out"
        [again] = await self.collect(consumer, clock, 1, 1.5 * lease + self.delivery_timeout)
        waited = clock.now() - started
        assert (again.task_id, again.subject, again.deliveries) == (task.id, task.subject, 2)
        assert waited <= 1.5 * lease + self.poll, f"redelivered only after {waited:.2f} s"
        await consumer.ack([again])

    async def fetch(
        self, consumer: Consumer, clock: Clock, max_items: int, timeout: float
    ) -> list[Delivery]:
        """``consumer.fetch`` that lets its whole ``timeout`` pass when it returns nothing."""
        started = clock.now()
        got = await fetch_once(consumer, clock, max_items, timeout)
        early = timeout - (clock.now() - started)
        if not got and early > 0 and is_manual(clock):  # keep a waiting loop's time moving
            await pass_time(clock, early)
        return got

    async def collect(
        self,
        consumer: Consumer,
        clock: Clock,
        count: int,
        timeout: float | None = None,
        exact: bool = True,
    ) -> list[Delivery]:
        """Fetch until ``count`` deliveries came or ``timeout`` (delivery_timeout) passed.

        Fails the test if fewer came, unless ``exact`` is false (a watch for strays).
        """
        wait = self.delivery_timeout if timeout is None else timeout
        deadline = clock.now() + wait
        got: list[Delivery] = []
        while len(got) < count and (remaining := deadline - clock.now()) > 0:
            got += await self.fetch(consumer, clock, count - len(got), min(remaining, self.poll))
        assert len(got) == count or not exact, f"{len(got)} of {count} deliveries in {wait} s"
        return got

    async def wait_past_lease(self, transport: Transport, clock: Clock) -> None:
        lease = transport.capabilities.lease
        if lease is not None:
            await pass_time(clock, self.real_wait(clock, 1.2 * lease, "waiting out the lease"))

    def require_lease(self, transport: Transport, clock: Clock, *needed: str) -> float:
        caps = transport.capabilities
        missing = [flag for flag in needed if not getattr(caps, flag)]
        if missing or caps.lease is None:
            pytest.skip(f"the transport does not declare {' and '.join(missing or ['a lease'])}")
        self.real_wait(clock, 1.5 * caps.lease + self.delivery_timeout, "a lease expiry")
        return caps.lease

    def quiet(self, transport: Transport) -> float:
        lease = transport.capabilities.lease
        return self.quiet_period if lease is None else min(self.quiet_period, lease / 4)

    def slack(self, clock: Clock) -> float:
        return 0.0 if is_manual(clock) else self.timing_slack


async def fetch_once(
    consumer: Consumer, clock: Clock, max_items: int, timeout: float
) -> list[Delivery]:
    """``consumer.fetch``, advancing a ManualClock while it waits."""
    pending = asyncio.ensure_future(consumer.fetch(max_items, timeout))
    if is_manual(clock):
        await drive(clock, pending, timeout)
    return await bounded(pending, timeout, "fetch")


async def drive(clock: Clock, pending: asyncio.Future[list[Delivery]], seconds: float) -> None:
    """Advance a ManualClock by up to ``seconds``, in steps, until ``pending`` is done."""
    await pass_time(clock, 0)
    moved, step = 0.0, seconds / 10
    while not pending.done() and moved < seconds:
        advance = min(step, seconds - moved)
        await pass_time(clock, advance)
        moved += advance
    if not pending.done():  # the fetch's own deadline may differ from ours by a rounding
        await pass_time(clock, max(seconds * 1e-3, 1e-6))


async def bounded(
    pending: asyncio.Future[list[Delivery]], timeout: float, what: str
) -> list[Delivery]:
    """Await ``pending`` a little longer than its own timeout, then fail the test."""
    try:
        return await asyncio.wait_for(pending, timeout + 5.0)
    except TimeoutError:
        raise AssertionError(f"{what}(timeout={timeout}) did not return in time") from None


def named(deliveries: Iterable[Delivery]) -> dict[str, str]:
    """The task id -> subject of each delivery (a transport carries nothing else)."""
    return {delivery.task_id: delivery.subject for delivery in deliveries}


def names(tasks: Iterable[Task]) -> dict[str, str]:
    return {task.id: task.subject for task in tasks}
