"""A remote consumer's stream never leases a task past its max_attempts: one whose holders
died on every attempt (their leases ran out) is recorded DEAD, unrun, at the next claim."""

from __future__ import annotations

import asyncio

from atp.adapters._api.leases import RemoteLeases
from atp.adapters._auth import Principal, parse_scopes
from atp.core.clock import ManualClock
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.sdk.client import Client

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")


async def test_a_task_claimed_past_its_attempts_is_dead_not_leased() -> None:
    clock = ManualClock(1_800_000_000.0)
    async with Platform.build(MEMORY, clock=clock, local=True) as platform:
        published = await Client(platform).publish("orders.ship", max_attempts=1)
        now = clock.now()
        # its only attempt's holder died: the lease runs out with the task RUNNING
        await platform.store.claim([published.id], owner="gone", now=now, lease_until=now + 1)
        await clock.advance(2)
        stream = RemoteLeases(platform).retrieve(
            Principal("t", parse_scopes(["consume:orders.>"])), "orders.*", "g", 10, None
        )
        leased = asyncio.ensure_future(anext(stream))
        await clock.settle()
        record = await platform.store.get([published.id])
        assert not leased.done(), "the spent task was leased"
        leased.cancel()
        await asyncio.gather(leased, return_exceptions=True)
        await stream.aclose()
    [dead] = record
    assert dead is not None
    assert (dead.state, dead.task.attempt) == (State.DEAD, 1)
    assert [(e.attempt, e.kind) for e in dead.errors] == [(1, "lease")]
