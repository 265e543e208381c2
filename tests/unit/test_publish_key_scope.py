"""A publish's idempotency key is scoped by its subject (ADR 0028), and a publish the key
deduplicates answers the existing task's run_at, not the one it asked for."""

from __future__ import annotations

from atp.core.clock import ManualClock
from atp.sdk import App
from atp.sdk.testing import TestPlatform

NOW = 1_750_000_000.0


async def test_a_duplicate_publish_answers_the_existing_tasks_run_at():
    async with TestPlatform(App(), clock=ManualClock(start=NOW), workers=0) as tp:
        first = await tp.client.publish("orders.close", 1, idempotency_key="k", delay=60)
        again = await tp.client.publish("orders.close", 1, idempotency_key="k", delay=5)
    assert (first.created, first.run_at) == (True, NOW + 60)
    assert (again.id, again.created, again.run_at) == (first.id, False, NOW + 60)


async def test_the_same_key_on_two_subjects_makes_two_tasks():
    async with TestPlatform(App(), clock=ManualClock(start=NOW), workers=0) as tp:
        orders = await tp.client.publish("orders.close", 1, idempotency_key="k")
        billing = await tp.client.publish("billing.charge", 2, idempotency_key="k")
        again = await tp.client.publish("billing.charge", 2, idempotency_key="k")
        charge = await tp.get(billing.id)
    assert billing.created
    assert billing.id != orders.id
    assert (again.id, again.created) == (billing.id, False)
    assert (charge.subject, charge.task.payload) == ("billing.charge", 2)
