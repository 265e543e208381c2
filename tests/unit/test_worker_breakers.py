"""Circuit breakers in the worker, on a TestPlatform (memory ledger, ManualClock): a failing
subject trips its breaker, its tasks wait unspent, one probe runs per open time, success
closes it and the held tasks run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import Fail
from atp.core.model import RetryPolicy, State
from atp.core.plugins import hookimpl
from atp.sdk import App, Breaker
from atp.sdk.testing import TestPlatform

START = 1_750_000_000.0
POLICY = Breaker(ratio=0.5, window=60, min_volume=5, open_for=30)
FAST_RETRY = RetryPolicy(base=0.5, factor=1.0, cap=0.5, jitter=False)


@dataclass
class Downstream:
    """The handler's dependency: down until told otherwise; every call it saw."""

    up: bool = False
    calls: list[float] = field(default_factory=list)


@dataclass
class Changes:
    """Every ``atp_breaker_changed`` the worker fired."""

    seen: list[tuple[str, str, str, str]] = field(default_factory=list)

    @hookimpl
    def atp_breaker_changed(
        self, group: str, subject: str, circuit: str, previous: str, at: float
    ) -> None:
        self.seen.append((group, subject, previous, circuit))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def downstream() -> Downstream:
    return Downstream()


def failing_app(downstream: Downstream, clock: ManualClock) -> App:
    app = App()

    @app.task("mail.send", breaker=POLICY, max_attempts=50, retry=FAST_RETRY)
    async def send() -> str:
        downstream.calls.append(clock.now())
        if not downstream.up:
            raise ConnectionError("smtp down")
        return "sent"

    @app.task("mail.reject", breaker=POLICY, max_attempts=50, retry=FAST_RETRY)
    async def reject() -> None:
        raise Fail("bad address")  # says nothing of the downstream: never counted

    return app


async def test_a_failing_subject_opens_spends_nothing_probes_once_and_closes(
    downstream: Downstream, clock: ManualClock
) -> None:
    changes = Changes()
    app = failing_app(downstream, clock)
    async with TestPlatform(app, clock=clock, plugins=[changes]) as tp:
        ids = [(await tp.client.publish("mail.send")).id for _ in range(10)]
        await tp.advance(5)
        assert changes.seen == [("default", "mail.send", "closed", "open")]
        opened = len(downstream.calls)
        attempts = sum([(await tp.get(i)).task.attempt for i in ids])
        await tp.advance(POLICY.open_for - 6)  # still open: nothing runs, nothing is spent
        assert len(downstream.calls) == opened
        assert sum([(await tp.get(i)).task.attempt for i in ids]) == attempts
        await tp.advance(3)  # time is up: exactly one probe, which fails: open again
        assert len(downstream.calls) == opened + 1
        assert changes.seen[1:] == [
            ("default", "mail.send", "open", "half-open"),
            ("default", "mail.send", "half-open", "open"),
        ]
        downstream.up = True
        await tp.advance(POLICY.open_for)  # the next probe succeeds: closed, all run
        await tp.run_until_idle(max_time=120)
        records = [await tp.get(i) for i in ids]
        breakers = await tp.platform.store.breakers()  # type: ignore[attr-defined]
    assert {r.state for r in records} == {State.SUCCEEDED}
    assert changes.seen[3:] == [
        ("default", "mail.send", "open", "half-open"),
        ("default", "mail.send", "half-open", "closed"),
    ]
    # Held tasks spent no attempt: attempts = the calls the downstream saw.
    assert sum(r.task.attempt for r in records) == len(downstream.calls)
    assert all(b.circuit == "closed" for b in breakers)


async def test_fail_outcomes_are_not_counted(downstream: Downstream, clock: ManualClock) -> None:
    changes = Changes()
    async with TestPlatform(failing_app(downstream, clock), clock=clock, plugins=[changes]) as tp:
        ids = [(await tp.client.publish("mail.reject")).id for _ in range(10)]
        await tp.run_until_idle(max_time=60)
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.DEAD}
    assert changes.seen == []


async def test_a_subject_without_a_policy_never_trips(clock: ManualClock) -> None:
    app = App()
    calls: list[float] = []

    @app.task("plain.job", max_attempts=3, retry=FAST_RETRY)
    async def job() -> None:
        calls.append(clock.now())
        raise ConnectionError("down")

    async with TestPlatform(app, clock=clock) as tp:
        ids = [(await tp.client.publish("plain.job")).id for _ in range(10)]
        await tp.run_until_idle(max_time=60)
        records = [await tp.get(i) for i in ids]
        breakers = await tp.platform.store.breakers()  # type: ignore[attr-defined]
    assert {r.state for r in records} == {State.DEAD}
    assert len(calls) == 30
    assert breakers == []


async def test_workers_of_one_group_share_a_breaker(
    downstream: Downstream, clock: ManualClock
) -> None:
    changes = Changes()
    app = failing_app(downstream, clock)
    async with TestPlatform(app, clock=clock, plugins=[changes], workers=2) as tp:
        ids = [(await tp.client.publish("mail.send")).id for _ in range(20)]
        await tp.advance(5)
        opened = len(downstream.calls)
        await tp.advance(POLICY.open_for - 6)
        assert len(downstream.calls) == opened  # neither worker runs one while open
        downstream.up = True
        await tp.advance(10)
        await tp.run_until_idle(max_time=120)
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.SUCCEEDED}
    opens = [c for c in changes.seen if c[3] == "open"]
    assert len(opens) == 1  # announced once, by the worker that changed it


async def test_a_probe_whose_worker_dies_passes_to_another_after_its_lease(
    downstream: Downstream, clock: ManualClock
) -> None:
    hang = True
    app = App()

    @app.task("mail.send", breaker=POLICY, max_attempts=50, retry=FAST_RETRY)
    async def send() -> None:
        downstream.calls.append(clock.now())
        if downstream.up:
            return
        if hang and len(downstream.calls) > 10:  # the first probe never returns
            await clock.sleep(10_000)
        raise ConnectionError("smtp down")

    async with TestPlatform(app, clock=clock, workers=2) as tp:
        ids = [(await tp.client.publish("mail.send")).id for _ in range(10)]
        await tp.advance(POLICY.open_for + 2)
        assert len(downstream.calls) == 11  # the probe runs, and hangs
        (holder,) = [w for w in tp.workers if w.worker.running]
        await holder.crash()
        hang, downstream.up = False, True
        await tp.run_until_idle(max_time=600)
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.SUCCEEDED}
