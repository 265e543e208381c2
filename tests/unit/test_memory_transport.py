"""What only the in-process transport does; the generic contract is the conformance suite's."""

from __future__ import annotations

import asyncio

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.ports import Delivery
from atp.core.settings import Settings
from atp.plugins.memory import MemoryTransport

LEASE = 30.0


@pytest.fixture
def transport(clock: ManualClock) -> MemoryTransport:
    return MemoryTransport(clock, lease=LEASE)


def task(n: int, subject: str = "orders.close", priority: int = 0) -> Task:
    return Task(id=f"t{n:04d}", subject=subject, payload={"n": n}, priority=priority)


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.task_id for d in deliveries]


async def test_tasks_published_before_any_subscription_reach_the_first_match(transport):
    await transport.publish([task(1), task(2, "sms.send"), task(3)])
    sms = await transport.consume("sms.*", "workers")
    orders = await transport.consume("orders.>", "workers")
    late = await transport.consume(">", "late")

    assert ids(await sms.fetch(10, 0)) == ["t0002"]
    assert ids(await orders.fetch(10, 0)) == ["t0001", "t0003"]
    assert await late.fetch(10, 0) == []  # the backlog was handed to the first match only


async def test_a_task_published_again_while_unrouted_waits_once(transport):
    await transport.publish([task(1), task(2)])
    await transport.publish([task(1)])  # the reaper publishes an unclaimed task again
    assert transport.pending() == 2
    orders = await transport.consume("orders.*", "workers")
    assert ids(await orders.fetch(10, 0)) == ["t0001", "t0002"]


async def test_subjects_created_after_the_subscription_are_delivered(transport):
    consumer = await transport.consume("orders.*", "workers")
    await transport.publish([task(1, "orders.refund"), task(2, "orders.close"), task(3, "sms.x")])
    assert ids(await consumer.fetch(10, 0)) == ["t0001", "t0002"]


async def test_higher_priority_first_then_publish_order(transport):
    consumer = await transport.consume(">", "workers")
    await transport.publish([task(1), task(2, priority=5), task(3), task(4, priority=5)])
    await transport.publish([task(5, priority=-1), task(6, priority=9)])
    assert ids(await consumer.fetch(10, 0)) == [
        "t0006",
        "t0002",
        "t0004",
        "t0001",
        "t0003",
        "t0005",
    ]


async def test_every_group_gets_its_own_copy(transport):
    billing = await transport.consume("orders.*", "billing")
    audit = await transport.consume(">", "audit")
    await transport.publish([task(1), task(2)])
    first, second = await billing.fetch(10, 0), await audit.fetch(10, 0)
    assert ids(first) == ids(second) == ["t0001", "t0002"]
    await billing.ack(first)
    assert ids(await audit.fetch(10, 0)) == []  # acking one copy leaves the other leased
    assert transport.pending() == 2


async def test_consumers_of_one_subscription_share_its_queue(transport):
    one = await transport.consume("orders.*", "workers")
    two = await transport.consume("orders.*", "workers")
    await transport.publish([task(n) for n in range(4)])
    got_one, got_two = await one.fetch(3, 0), await two.fetch(3, 0)
    assert ids(got_one) == ["t0000", "t0001", "t0002"]
    assert ids(got_two) == ["t0003"]
    assert {d.token for d in got_one}.isdisjoint(d.token for d in got_two)


async def test_same_group_with_another_pattern_is_another_subscription(transport):
    narrow = await transport.consume("orders.close", "workers")
    wide = await transport.consume("orders.*", "workers")
    await transport.publish([task(1)])
    assert ids(await narrow.fetch(1, 0)) == ids(await wide.fetch(1, 0)) == ["t0001"]


async def test_an_expired_lease_is_delivered_again(transport, clock):
    consumer = await transport.consume(">", "workers")
    await transport.publish([task(1)])
    (first,) = await consumer.fetch(1, 0)
    await clock.advance(LEASE - 1)
    assert await consumer.fetch(1, 0) == []
    await clock.advance(1)
    (again,) = await consumer.fetch(1, 0)
    assert (again.task_id, again.deliveries, first.deliveries) == ("t0001", 2, 1)
    assert again.token != first.token
    await consumer.ack([first])  # the stale token changes nothing
    await clock.advance(LEASE)
    (third,) = await consumer.fetch(1, 0)
    assert third.deliveries == 3


async def test_a_waiting_fetch_wakes_when_a_lease_expires(transport, clock):
    holder = await transport.consume(">", "workers")
    waiter = await transport.consume(">", "workers")
    await transport.publish([task(1)])
    await holder.fetch(1, 0)
    pending = asyncio.ensure_future(waiter.fetch(1, timeout=3 * LEASE))
    await clock.advance(LEASE)
    assert pending.done()
    assert [(d.task_id, d.deliveries) for d in pending.result()] == [("t0001", 2)]


async def test_keep_alive_restarts_the_lease(transport, clock):
    consumer = await transport.consume(">", "workers")
    await transport.publish([task(1), task(2)])
    first, _ = await consumer.fetch(2, 0)
    await clock.advance(LEASE - 5)
    await consumer.keep_alive([first])
    await clock.advance(5)
    assert ids(await consumer.fetch(5, 0)) == ["t0002"]  # only the one not kept alive
    await clock.advance(LEASE - 5)
    assert ids(await consumer.fetch(5, 0)) == ["t0001"]


async def test_nack_with_delay_holds_the_message_until_due(transport, clock):
    consumer = await transport.consume(">", "workers")
    await transport.publish([task(1)])
    delivered = await consumer.fetch(1, 0)
    await consumer.nack(delivered, delay=10)
    pending = asyncio.ensure_future(consumer.fetch(1, timeout=60))
    await clock.advance(9.5)
    assert not pending.done()
    await clock.advance(0.5)
    assert [(d.task_id, d.deliveries) for d in pending.result()] == [("t0001", 2)]


async def test_a_waiting_fetch_wakes_for_a_delay_set_while_it_waits(transport, clock):
    holder = await transport.consume(">", "workers")
    waiter = await transport.consume(">", "workers")
    await transport.publish([task(1)])
    delivered = await holder.fetch(1, 0)
    pending = asyncio.ensure_future(waiter.fetch(1, timeout=3 * LEASE))
    await clock.settle()
    await holder.nack(delivered, delay=5)
    await clock.advance(5)
    assert ids(pending.result()) == ["t0001"]


async def test_nack_without_delay_is_fetchable_at_once_in_priority_order(transport):
    consumer = await transport.consume(">", "workers")
    await transport.publish([task(1), task(2)])
    first, _ = await consumer.fetch(2, 0)
    await transport.publish([task(3)])
    await consumer.nack([first])
    assert ids(await consumer.fetch(5, 0)) == ["t0001", "t0003"]


async def test_close_returns_in_flight_deliveries_at_once(transport):
    leaving = await transport.consume(">", "workers")
    staying = await transport.consume(">", "workers")
    await transport.publish([task(1), task(2)])
    held = await leaving.fetch(2, 0)
    await leaving.close()
    assert [(d.task_id, d.deliveries) for d in await staying.fetch(5, 0)] == [
        ("t0001", 2),
        ("t0002", 2),
    ]
    await leaving.ack(held)  # nobody's tokens any more
    with pytest.raises(BackendUnavailable):
        await leaving.fetch(1, 0)


async def test_a_group_without_consumers_keeps_receiving(transport):
    first = await transport.consume(">", "workers")
    await first.close()
    await transport.publish([task(1)])
    second = await transport.consume(">", "workers")
    assert ids(await second.fetch(1, 0)) == ["t0001"]


async def test_fetch_times_out_on_clock_time(transport, clock):
    consumer = await transport.consume(">", "workers")
    pending = asyncio.ensure_future(consumer.fetch(5, timeout=2))
    await clock.advance(1.9)
    assert not pending.done()
    await clock.advance(0.1)
    assert pending.result() == []


async def test_a_waiting_fetch_returns_what_is_published(transport, clock):
    consumer = await transport.consume("orders.*", "workers")
    pending = asyncio.ensure_future(consumer.fetch(5, timeout=60))
    await clock.settle()
    await transport.publish([task(1, "sms.send"), task(2)])
    await clock.settle()
    assert ids(pending.result()) == ["t0002"]


async def test_terminated_messages_are_kept_as_dead_letters(transport, clock):
    consumer = await transport.consume("orders.*", "workers")
    await transport.publish([task(1), task(2)])
    first, _ = await consumer.fetch(2, 0)
    await consumer.terminate([first], reason="poison")
    await consumer.terminate([first], reason="twice")  # stale: ignored
    (dead,) = transport.dead_letters()
    assert (dead.task.id, dead.reason, dead.group, dead.pattern) == (
        "t0001",
        "poison",
        "workers",
        "orders.*",
    )
    assert dead.at == clock.now()
    await clock.advance(LEASE)
    assert ids(await consumer.fetch(5, 0)) == ["t0002"]


async def test_a_bad_subject_publishes_none_of_the_batch(transport):
    consumer = await transport.consume(">", "workers")
    with pytest.raises(InvalidInput):
        await transport.publish([task(1), task(2, "orders.*")])
    assert await consumer.fetch(5, 0) == []
    assert transport.pending() == 0


async def test_bad_pattern_group_and_batch_size_are_refused(transport):
    with pytest.raises(InvalidInput):
        await transport.consume("orders.>.x", "workers")
    with pytest.raises(InvalidInput):
        await transport.consume(">", "")
    consumer = await transport.consume(">", "workers")
    with pytest.raises(InvalidInput):
        await consumer.fetch(0, 0)


async def test_transport_close_ends_waiting_fetches_and_refuses_more(transport, clock):
    consumer = await transport.consume(">", "workers")
    pending = asyncio.ensure_future(consumer.fetch(1, timeout=60))
    await clock.settle()
    await transport.close()
    await clock.settle()
    assert pending.result() == []
    with pytest.raises(BackendUnavailable):
        await consumer.fetch(1, 0)
    with pytest.raises(BackendUnavailable):
        await transport.publish([task(1)])
    with pytest.raises(BackendUnavailable):
        await transport.consume(">", "workers")


async def test_capabilities_declare_an_in_process_transport(clock):
    caps = MemoryTransport(clock, lease=12).capabilities
    assert (caps.delay, caps.lease_extension, caps.dead_letters, caps.lease_recovery) == (True,) * 4
    assert (caps.deduplication, caps.durable, caps.shared) == (False,) * 3
    assert caps.lease == 12


async def test_plugin_builds_a_new_transport_per_url(plugin_manager, clock):
    settings = Settings(lease=20, heartbeat=5)
    first = plugin_manager.make_transport("memory://", settings, clock)
    second = plugin_manager.make_transport("memory://dev", settings, clock)
    assert isinstance(first, MemoryTransport)
    assert first is not second
    assert first.capabilities.lease == 20
    assert "memory" in plugin_manager.schemes("transport")
    with pytest.raises(InvalidInput, match="memory://x/y"):
        plugin_manager.make_transport("memory://x/y", settings, clock)
