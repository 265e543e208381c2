"""The worker's fused path: a ClaimingConsumer's fetch_claimed and finish_and_ack are used
in place of fetch + claim and finish + ack, with the same outcomes (ADR 0023)."""

from collections.abc import Sequence

from atp.core.model import State
from atp.core.ports import Claim, Consumer, Delivery, Outcome, TaskStore
from atp.core.settings import Settings
from atp.sdk import App
from atp.sdk.testing import TestPlatform


class Calls:
    def __init__(self) -> None:
        self.fetch_claimed = 0
        self.finish_and_ack = 0


class FusedTransport:
    """The memory transport, its consumers fused with the store by emulation."""

    def __init__(self, transport, store: TaskStore, clock, calls: Calls) -> None:
        self._transport = transport
        self._clock = clock
        self._store = store
        self._calls = calls
        self.capabilities = transport.capabilities

    def __getattr__(self, name):
        return getattr(self._transport, name)

    async def consume(self, pattern: str, group: str) -> Consumer:
        inner = await self._transport.consume(pattern, group)
        return FusedConsumer(inner, self._store, self._clock, self._calls)


class FusedConsumer:
    def __init__(self, inner: Consumer, store: TaskStore, clock, calls: Calls) -> None:
        self._inner = inner
        self._store = store
        self._clock = clock
        self._calls = calls

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def fetch_claimed(
        self, max_items: int, timeout: float, *, owner: str, lease: float
    ) -> list[tuple[Delivery, Claim]]:
        self._calls.fetch_claimed += 1
        deliveries = await self._inner.fetch(max_items, timeout)
        now = self._clock.now()
        claims = await self._store.claim(
            [d.task_id for d in deliveries], owner=owner, now=now, lease_until=now + lease
        )
        pairs = list(zip(deliveries, claims, strict=True))
        await self._inner.ack([d for d, c in pairs if c.record is not None and not c.claimed])
        await self._inner.terminate([d for d, c in pairs if c.record is None], "unknown")
        return [(d, c) for d, c in pairs if c.claimed]

    async def finish_and_ack(
        self, outcomes: Sequence[Outcome], deliveries: Sequence[Delivery]
    ) -> list[bool]:
        self._calls.finish_and_ack += 1
        applied = await self._store.finish(outcomes)
        await self._inner.ack([d for d, ok in zip(deliveries, applied, strict=True) if ok])
        return applied


def fused(tp: TestPlatform) -> Calls:
    calls = Calls()
    platform = tp.platform
    platform.transport = FusedTransport(platform.transport, platform.store, tp.clock, calls)
    return calls


async def test_a_busy_worker_fetches_claimed_and_finishes_with_acks_in_one_call_each():
    app = App()
    seen: list[int] = []

    @app.task("jobs.run", max_attempts=2)
    async def run(n: int) -> int:
        seen.append(n)
        if n == 3 and seen.count(3) == 1:
            raise RuntimeError("first attempt of 3 fails")
        return n * 2

    async with TestPlatform(app, Settings(concurrency=8), workers=0) as tp:
        calls = fused(tp)
        await tp.start_worker()
        published = [await tp.client.publish("jobs.run", {"n": n}) for n in range(20)]
        await tp.run_until_idle()
        records = [await tp.get(p.id) for p in published]
    assert [r.state for r in records] == [State.SUCCEEDED] * 20
    assert [r.result for r in records] == [n * 2 for n in range(20)]
    assert records[3].task.attempt == 2
    assert sorted(seen) == sorted([*range(20), 3])
    assert calls.fetch_claimed >= 1
    assert calls.finish_and_ack >= 1
