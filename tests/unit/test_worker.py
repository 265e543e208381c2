"""The worker runtime, driven on the ManualClock through atp.sdk.testing."""

import asyncio
import random
import threading
from collections.abc import Sequence

import pytest

from atp.core.clock import ManualClock
from atp.core.context import current_task
from atp.core.errors import BackendUnavailable, ConfigError, Fail, Retry
from atp.core.model import RetryPolicy, State, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.ports import Capabilities, Consumer, Delivery, LeaseStatus, Outcome
from atp.core.settings import Settings
from atp.core.worker.interceptors import CallNext, HandlerCall
from atp.core.worker.outcomes import Policy, backoff
from atp.core.worker.runtime import FINISH_RETRIES, Worker
from atp.sdk import App
from atp.sdk.testing import TestPlatform

FORWARD = Settings().forward_interval


class Failures:
    """Records atp_task_failed, to see the retry the worker decided on."""

    def __init__(self) -> None:
        self.records: list[tuple[TaskRecord, bool]] = []

    @hookimpl
    def atp_task_failed(self, record: TaskRecord, error: str, will_retry: bool, duration: float):
        self.records.append((record, will_retry))


# -- success and the handler's view -----------------------------------------------------


async def test_a_handler_result_is_recorded():
    app = App()

    @app.task("orders.close")
    async def close(order_id: int) -> dict[str, int]:
        return {"closed": order_id}

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 42})
        await tp.run_until_idle()
        record = await tp.get(published.id)
    assert record.state is State.SUCCEEDED
    assert record.result == {"closed": 42}
    assert record.task.attempt == 1
    assert record.errors == ()
    assert record.finished_at == record.task.created_at
    assert (record.lease_owner, record.lease_until) == ("test-worker-1", None)  # who ran it


async def test_a_handler_sees_its_own_task():
    app = App()
    seen: list[Task] = []

    @app.task("sms.*")
    async def send() -> None:
        seen.append(current_task())

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("sms.send", headers={"traceparent": "00-a-b-01"})
        await tp.run_until_idle()
    assert [(t.id, t.subject, t.attempt, dict(t.headers)) for t in seen] == [
        (published.id, "sms.send", 1, {"traceparent": "00-a-b-01"})
    ]


async def test_current_task_outside_a_handler_raises():
    with pytest.raises(LookupError):
        current_task()


async def test_a_sync_handler_runs_in_a_thread_and_sees_its_task():
    app = App()
    seen: list[tuple[str, str]] = []

    @app.task("reports.build")
    def build(day: str) -> str:
        seen.append((threading.current_thread().name, current_task().subject))
        return f"report {day}"

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("reports.build", {"day": "monday"})
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert record.result == "report monday"
    ((thread, subject),) = seen
    assert thread.startswith("atp-handler")
    assert thread != threading.current_thread().name
    assert subject == "reports.build"


async def test_a_sync_handler_that_raises_is_retried():
    app = App()
    calls: list[int] = []

    @app.task("flaky", max_attempts=2)
    def flaky() -> str:
        calls.append(current_task().attempt)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return "second time"

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("flaky")).id)
    assert (record.state, record.result, calls) == (State.SUCCEEDED, "second time", [1, 2])
    assert [(e.attempt, e.kind, e.message) for e in record.errors] == [
        (1, "error", "RuntimeError: first time")
    ]


# -- retries ------------------------------------------------------------------------------


async def test_failures_back_off_exponentially_with_jitter_until_dead():
    app = App()
    policy = RetryPolicy(base=1.0, factor=2.0, cap=3.0)
    starts: list[float] = []

    @app.task("always.fails", max_attempts=4, retry=policy)
    async def fails() -> None:
        starts.append(tp.clock.now())
        raise ValueError(f"boom {current_task().attempt}")

    failures = Failures()
    async with TestPlatform(app, plugins=[failures]) as tp:
        published = await tp.client.publish("always.fails")
        await tp.run_until_idle()
        record = await tp.get(published.id)

    assert record.state is State.DEAD
    assert record.task.attempt == 4
    assert len(starts) == 4
    assert [(e.attempt, e.kind, e.message) for e in record.errors] == [
        (n, "error", f"ValueError: boom {n}") for n in (1, 2, 3, 4)
    ]
    assert [will_retry for _, will_retry in failures.records] == [True, True, True, False]
    for attempt, (failed, _) in enumerate(failures.records[:3], start=1):
        error = failed.errors[-1]
        delay = failed.task.run_at - error.at
        assert 0 <= delay <= policy.ceiling(attempt) == min(3.0, 2.0 ** (attempt - 1))
        # the next attempt starts once due, within one look of the forwarder
        assert failed.task.run_at <= starts[attempt] <= failed.task.run_at + FORWARD + 1e-6


async def test_the_backoff_draws_below_each_ceiling_and_is_not_constant():
    rng = random.Random(7)
    policy = RetryPolicy(base=2.0, factor=3.0, cap=50.0)
    for attempt in range(1, 8):
        draws = [backoff(policy, attempt, rng) for _ in range(200)]
        ceiling = min(50.0, 2.0 * 3.0 ** (attempt - 1))
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) - min(draws) > ceiling / 2
    flat = RetryPolicy(base=2.0, factor=3.0, cap=50.0, jitter=False)
    assert [backoff(flat, n, rng) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 50.0]


def test_the_ceiling_is_capped_even_for_huge_attempts():
    policy = RetryPolicy(base=1.0, factor=10.0, cap=300.0)
    assert policy.ceiling(0) == policy.ceiling(1) == 1.0
    assert policy.ceiling(1000) == 300.0


def test_policy_layers_task_then_handler_then_settings():
    from atp.core.handlers import Handler

    settings = Settings(max_attempts=3, timeout=60, retry_base=2, retry_cap=20)
    policy = Policy(settings, "w", random.Random(0))
    bare, handler = Task(id="T", subject="a"), Handler("a", print, 5, 30.0, RetryPolicy(cap=9))
    assert (policy.max_attempts(bare, None), policy.timeout(bare, None)) == (3, 60)
    assert policy.retry_policy(bare, None) == RetryPolicy(base=2, cap=20)
    assert (policy.max_attempts(bare, handler), policy.timeout(bare, handler)) == (5, 30.0)
    assert policy.retry_policy(bare, handler) == RetryPolicy(cap=9)
    own = bare.replace(max_attempts=7, timeout=1.5, retry=RetryPolicy(cap=1))
    assert (policy.max_attempts(own, handler), policy.timeout(own, handler)) == (7, 1.5)
    assert policy.retry_policy(own, handler) == RetryPolicy(cap=1)


async def test_retry_with_a_delay_is_honoured_and_counts_as_an_attempt():
    app = App()
    starts: list[float] = []

    @app.task("rate.limited", max_attempts=3)
    async def limited() -> str:
        starts.append(tp.clock.now())
        if len(starts) == 1:
            raise Retry(delay=30, reason="rate limited")
        return "done"

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("rate.limited")
        await tp.advance(1)
        waiting = await tp.get(published.id)
        assert waiting.state is State.SCHEDULED
        assert waiting.task.run_at == starts[0] + 30
        await tp.advance(28)
        assert len(starts) == 1
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert record.task.attempt == 2
    assert starts[0] + 30 <= starts[1] <= starts[0] + 30 + FORWARD + 1e-6
    assert [(e.kind, e.message) for e in record.errors] == [("error", "rate limited")]


async def test_retry_requests_stop_at_max_attempts():
    app = App()

    @app.task("again", max_attempts=2)
    async def again() -> None:
        raise Retry(delay=5)

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("again")).id)
    assert record.state is State.DEAD
    assert record.task.attempt == 2
    assert [e.message for e in record.errors] == ["retry requested", "retry requested"]


async def test_retry_without_a_delay_uses_the_backoff_policy():
    app = App()

    @app.task("again", max_attempts=2, retry=RetryPolicy(base=4, jitter=False))
    async def again() -> None:
        raise Retry()

    failures = Failures()
    async with TestPlatform(app, plugins=[failures]) as tp:
        await tp.wait((await tp.client.publish("again")).id)
    first, will_retry = failures.records[0]
    assert will_retry
    assert first.task.run_at - first.errors[-1].at == 4.0


async def test_fail_sends_the_task_to_the_dead_letters_at_once():
    app = App()
    calls: list[int] = []

    @app.task("payments.charge", max_attempts=5)
    async def charge() -> None:
        calls.append(1)
        raise Fail("card declined")

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("payments.charge")
        await tp.run_until_idle()
        (dead,) = await tp.dead_letters()
    assert dead.id == published.id
    assert len(calls) == 1
    assert (dead.state, dead.task.attempt) == (State.DEAD, 1)
    assert [(e.kind, e.message) for e in dead.errors] == [("fail", "card declined")]


# -- timeouts and bad tasks ---------------------------------------------------------------


async def test_a_hanging_handler_times_out_then_goes_dead():
    app = App()
    ends: list[tuple[float, str]] = []

    @app.task("hangs", max_attempts=2, timeout="2s", retry=RetryPolicy(base=1, jitter=False))
    async def hangs() -> None:
        start = tp.clock.now()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ends.append((tp.clock.now() - start, "cancelled"))
            raise

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("hangs")).id)
    assert record.state is State.DEAD
    assert record.task.attempt == 2
    assert [(e.kind, e.message) for e in record.errors] == [
        ("timeout", "TimeoutError: attempt timed out after 2s")
    ] * 2
    assert ends == [(pytest.approx(2.0), "cancelled")] * 2


async def test_the_task_timeout_overrides_the_handler_timeout():
    app = App()

    @app.task("slow", timeout=1, max_attempts=1)
    async def slow() -> str:
        await tp.clock.sleep(5)
        return "finished"

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("slow", timeout=10)).id)
    assert (record.state, record.result) == (State.SUCCEEDED, "finished")


async def test_a_payload_that_does_not_fit_goes_dead_without_retry():
    app = App()
    calls: list[int] = []

    @app.task("orders.close", max_attempts=5)
    async def close(order_id: int, reason: str) -> None:
        calls.append(order_id)

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order": 1})
        await tp.run_until_idle()
        record = await tp.get(published.id)
    assert calls == []
    assert (record.state, record.task.attempt) == (State.DEAD, 1)
    ((kind, message),) = [(e.kind, e.message) for e in record.errors]
    assert kind == "invalid"
    assert "payload does not fit handler" in message


async def test_an_unserialisable_result_goes_dead_without_retry():
    app = App()
    calls: list[int] = []

    @app.task("weird", max_attempts=3)
    async def weird() -> object:
        calls.append(1)
        return {"when": object()}

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("weird")).id)
    assert (record.state, len(calls)) == (State.DEAD, 1)
    assert record.errors[-1].kind == "unserialisable"
    assert "unserialisable result" in record.errors[-1].message


async def test_a_result_over_the_size_limit_goes_dead():
    app = App()

    @app.task("big")
    async def big() -> str:
        return "x" * 200

    async with TestPlatform(app, Settings(max_payload=100)) as tp:
        record = await tp.wait((await tp.client.publish("big")).id)
    assert record.state is State.DEAD
    assert record.result is None
    assert record.errors[-1].kind == "unserialisable"
    assert "the limit is 100" in str(record.errors[-1].message)


async def test_a_task_without_a_handler_here_is_put_back_without_counting():
    app = App()

    @app.task("known")
    async def known() -> None: ...

    async with TestPlatform(app, workers=0) as tp:
        await tp.start_worker(patterns=[">"])
        published = await tp.client.publish("unknown.subject")
        await tp.advance(1)
        record = await tp.get(published.id)
    assert record.state is State.SCHEDULED
    assert record.task.attempt == 0
    assert record.task.run_at == record.errors[-1].at + 60
    assert record.errors[-1].kind == "no-handler"


# -- cancelling ---------------------------------------------------------------------------


async def test_a_running_task_is_cancelled_cooperatively_at_the_next_heartbeat():
    app = App()
    seen: list[str] = []

    @app.task("long")
    async def long() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("long")
        await tp.advance(1)
        asked = await tp.client.cancel(published.id)
        assert (asked.state, asked.cancel_requested) == (State.RUNNING, True)
        await tp.advance(tp.settings.heartbeat)
        record = await tp.get(published.id)
        await tp.advance(1)
        again = await tp.client.cancel(published.id)  # cancelling again changes nothing
    assert again == record
    assert record.state is State.CANCELLED
    assert seen == ["cancelled"]
    assert record.errors[-1].kind == "cancelled"


async def test_a_scheduled_task_is_cancelled_and_never_runs():
    app = App()
    calls: list[int] = []

    @app.task("later")
    async def later() -> None:
        calls.append(1)

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("later", delay=60)
        record = await tp.client.cancel(published.id)
        await tp.advance(120)
        assert (await tp.get(published.id)).state is State.CANCELLED
    assert record.state is State.CANCELLED
    assert calls == []


async def test_a_ready_task_cancelled_before_a_worker_takes_it_never_runs():
    app = App()
    calls: list[int] = []

    @app.task("soon")
    async def soon() -> None:
        calls.append(1)

    async with TestPlatform(app, workers=0) as tp:
        published = await tp.client.publish("soon")
        assert (await tp.get(published.id)).state is State.READY
        await tp.client.cancel(published.id)
        await tp.start_worker()
        await tp.advance(5)
    assert calls == []


# -- concurrency and leases ---------------------------------------------------------------


async def test_concurrency_is_bounded():
    app = App()
    running, peak, done = [0], [0], []

    @app.task("work")
    async def work(n: int) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await tp.clock.sleep(1)
        running[0] -= 1
        done.append(n)

    async with TestPlatform(app, Settings(concurrency=3)) as tp:
        await tp.client.publish_many([tp.client.request("work", {"n": n}) for n in range(10)])
        start = tp.clock.now()
        await tp.run_until_idle()
        elapsed = tp.clock.now() - start
    assert peak[0] == 3
    assert sorted(done) == list(range(10))
    assert 4 <= elapsed < 5


class Busy:
    """An app whose every handler works ``seconds`` of clock time, recording the peak of
    handlers running at once and the subjects finished, in order."""

    def __init__(self, subjects: Sequence[str], seconds: float) -> None:
        self.app, self.peak, self.done = App(), 0, []
        self.clock: ManualClock | None = None
        running = [0]

        async def work() -> None:
            assert self.clock is not None
            running[0] += 1
            self.peak = max(self.peak, running[0])
            await self.clock.sleep(seconds)
            running[0] -= 1
            self.done.append(current_task().subject)

        for subject in subjects:
            self.app.task(subject)(work)

    def platform(self, concurrency: int) -> TestPlatform:
        tp = TestPlatform(self.app, Settings(concurrency=concurrency))
        self.clock = tp.clock
        return tp


async def test_more_patterns_than_slots_starve_no_subject():
    busy = Busy([f"s{n}" for n in range(9)], 1)
    async with busy.platform(concurrency=8) as tp:
        await tp.advance(5)  # every fetch loop is idle, waiting for work
        await tp.client.publish_many([tp.client.request("s8") for _ in range(80)])
        start = tp.clock.now()
        await tp.run_until_idle()
        elapsed = tp.clock.now() - start
    assert busy.done == ["s8"] * 80
    assert busy.peak == 8
    assert elapsed < 11  # 80 one-second tasks, 8 at a time: 10 rounds, not one per reap


async def test_a_busy_subject_uses_every_slot_the_idle_ones_do_not_need():
    busy = Busy(["busy", "quiet.a", "quiet.b"], 1)
    async with busy.platform(concurrency=6) as tp:
        await tp.client.publish_many([tp.client.request("busy") for _ in range(12)])
        await tp.advance(0.5)
        await tp.client.publish("quiet.a")  # gets one of the next slots, not the last
        await tp.run_until_idle()
    assert busy.peak == 6
    assert busy.done.count("busy") == 12
    assert busy.done[-1] == "busy"  # the busy backlog's last round ran after quiet.a


async def test_a_task_longer_than_its_lease_keeps_it_by_heartbeats():
    app = App()
    calls: list[int] = []
    leases: list[float] = []

    @app.task("long", timeout=120)
    async def long() -> str:
        calls.append(1)
        for _ in range(7):
            await tp.clock.sleep(5)
            leases.append((await tp.get(current_task().id)).lease_until or 0)
        return "done"

    async with TestPlatform(app, Settings(lease=10, heartbeat=2)) as tp:
        published = await tp.client.publish("long")
        record = await tp.wait(published.id)
    assert (record.state, record.task.attempt, record.errors, calls) == (
        State.SUCCEEDED,
        1,
        (),
        [1],
    )
    assert leases == sorted(leases)
    assert leases[-1] > record.task.created_at + 30


async def test_the_tasks_of_a_dead_worker_are_recovered_within_one_lease():
    app = App()
    starts: list[float] = []

    @app.task("long", timeout=100)
    async def long() -> str:
        starts.append(tp.clock.now())
        await tp.clock.sleep(20 if len(starts) == 1 else 1)
        return "done"

    settings = Settings(lease=10, heartbeat=2)
    async with TestPlatform(app, settings) as tp:
        published = await tp.client.publish("long")
        await tp.advance(7)
        await tp.workers[0].crash()
        crashed_at = tp.clock.now()
        assert (await tp.get(published.id)).state is State.RUNNING
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert record.task.attempt == 2
    assert [e.kind for e in record.errors] == ["lease"]
    assert len(starts) == 2
    limit = settings.lease + settings.reap_interval + settings.forward_interval
    assert starts[1] - crashed_at <= limit


async def test_a_worker_that_lost_its_lease_stops_and_records_nothing():
    app = App()
    calls: list[int] = []

    @app.task("long", timeout=100)
    async def long() -> str:
        calls.append(current_task().attempt)
        await tp.clock.sleep(30)
        return "done"

    # one slot each: the busy first worker cannot fetch the recovered task itself
    async with TestPlatform(app, Settings(lease=10, heartbeat=2, concurrency=1)) as tp:
        first = tp.workers[0]
        store = tp.platform.store
        silenced = SilencedHeartbeats(store, first.name)
        tp.platform.store = silenced  # the first worker's heartbeats stop reaching the store
        published = await tp.client.publish("long")
        await tp.advance(1)
        await tp.start_worker()
        await tp.advance(15)  # lease runs out, the reaper recovers, the second worker runs it
        silenced.owner = None  # the first worker's next heartbeat finds the lease LOST
        await tp.advance(2)
        assert not first.worker.running
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert record.task.attempt == 2
    assert record.result == "done"
    assert [e.kind for e in record.errors] == ["lease"]
    assert silenced.lost
    assert calls == [1, 2]


class SilencedHeartbeats:
    """A store whose heartbeats from ``owner`` fail, as if its network were cut."""

    def __init__(self, store, owner: str | None) -> None:
        self._store = store
        self.owner = owner
        self.lost = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def heartbeat(self, ids, *, owner, lease_until):
        if owner == self.owner:
            raise BackendUnavailable("cut off")
        statuses = await self._store.heartbeat(ids, owner=owner, lease_until=lease_until)
        self.lost = self.lost or LeaseStatus.LOST in statuses
        return statuses


# -- stopping -----------------------------------------------------------------------------


async def test_stopping_lets_a_running_handler_finish():
    app = App()

    @app.task("short")
    async def short() -> str:
        await tp.clock.sleep(5)
        return "finished"

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("short")
        await tp.advance(1)
        await tp.workers[0].stop()
        assert not tp.workers[0].alive
        record = await tp.get(published.id)
    assert (record.state, record.result) == (State.SUCCEEDED, "finished")


async def test_a_handler_past_the_drain_timeout_goes_back_without_counting():
    app = App()
    calls: list[int] = []

    @app.task("long", timeout=1000)
    async def long() -> str:
        calls.append(current_task().attempt)
        await tp.clock.sleep(100 if len(calls) == 1 else 1)
        return "finished"

    async with TestPlatform(app, Settings(drain_timeout=10)) as tp:
        published = await tp.client.publish("long")
        await tp.advance(1)
        await tp.workers[0].stop()
        back = await tp.get(published.id)
        # back to SCHEDULED and due at once: the scheduler may have made it READY already
        assert back.state in (State.SCHEDULED, State.READY)
        assert back.task.attempt == 0
        assert [e.kind for e in back.errors] == ["shutdown"]
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert (record.state, record.task.attempt, calls) == (State.SUCCEEDED, 1, [1, 1])


# -- deliveries and backends --------------------------------------------------------------


async def test_a_duplicate_delivery_is_not_run_twice():
    app = App()
    calls: list[int] = []

    @app.task("once")
    async def once() -> None:
        calls.append(1)

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("once")
        await tp.run_until_idle()
        record = await tp.get(published.id)
        await tp.platform.transport.publish([record.task, record.task])
        await tp.advance(1)
        assert tp.platform.transport.pending() == 0
    assert calls == [1]


async def test_a_delivery_naming_no_stored_task_is_terminated():
    async with TestPlatform(App(), workers=0) as tp:
        await tp.start_worker(patterns=["ghost"])
        await tp.platform.transport.publish([Task(id="NOT-STORED", subject="ghost")])
        await tp.advance(1)
        (dead,) = tp.platform.transport.dead_letters()
    assert dead.task.id == "NOT-STORED"
    assert "unknown task id" in dead.reason


@pytest.mark.parametrize(
    ("fetch_failures", "nack_failures"),
    [(1, 0), (0, 1)],
    ids=["a fetch fails", "the nack after the claim fails too"],
)
async def test_fetch_and_claim_failures_are_retried(fetch_failures: int, nack_failures: int):
    app = App()
    calls: list[int] = []

    @app.task("work")
    async def work() -> None:
        calls.append(1)

    async with TestPlatform(app, workers=0) as tp:
        tp.platform.transport = FlakyConsumers(tp.platform.transport, fetch_failures, nack_failures)
        tp.platform.store = FlakyClaims(tp.platform.store, failures=1)
        await tp.start_worker()
        first = await tp.client.publish("work")
        assert (await tp.wait(first.id)).state is State.SUCCEEDED
        second = await tp.client.publish("work")  # the worker still fetches
        assert (await tp.wait(second.id)).state is State.SUCCEEDED
    assert calls == [1, 1]
    assert tp.platform.store.failures == 0  # type: ignore[attr-defined]
    assert tp.platform.transport.nack_failures == 0  # type: ignore[attr-defined]


class FlakyClaims:
    def __init__(self, store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def claim(self, ids, **kwargs):
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("claim failed")
        return await self._store.claim(ids, **kwargs)


class FlakyConsumers:
    """A transport whose consumers fail their first fetches."""

    def __init__(self, transport, fetch_failures: int, nack_failures: int = 0) -> None:
        self._transport = transport
        self.capabilities = transport.capabilities
        self.fetch_failures = fetch_failures
        self.nack_failures = nack_failures

    def __getattr__(self, name):
        return getattr(self._transport, name)

    async def consume(self, pattern: str, group: str) -> Consumer:
        return FlakyConsumer(await self._transport.consume(pattern, group), self)


class FlakyConsumer:
    def __init__(self, consumer: Consumer, owner: FlakyConsumers) -> None:
        self._consumer = consumer
        self._owner = owner

    def __getattr__(self, name):
        return getattr(self._consumer, name)

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        if self._owner.fetch_failures:
            self._owner.fetch_failures -= 1
            raise BackendUnavailable("fetch failed")
        return await self._consumer.fetch(max_items, timeout)

    async def nack(self, deliveries, delay: float = 0.0) -> None:
        if self._owner.nack_failures:
            self._owner.nack_failures -= 1
            raise BackendUnavailable("nack failed")
        await self._consumer.nack(deliveries, delay=delay)


async def test_a_short_store_outage_delays_the_outcome_without_running_it_again():
    app = App()
    calls: list[int] = []

    @app.task("work")
    async def work() -> None:
        calls.append(1)

    async with TestPlatform(app, Settings(lease=10, heartbeat=2)) as tp:
        tp.platform.store = FailingFinish(tp.platform.store, failures=len(FINISH_RETRIES))
        published = await tp.client.publish("work")
        record = await tp.wait(published.id)
    assert (record.state, record.task.attempt, len(calls)) == (State.SUCCEEDED, 1, 1)


async def test_an_outcome_the_store_refuses_is_run_again_after_the_lease():
    app = App()
    calls: list[int] = []

    @app.task("work")
    async def work() -> None:
        calls.append(1)

    async with TestPlatform(app, Settings(lease=10, heartbeat=2)) as tp:
        tp.platform.store = FailingFinish(tp.platform.store, failures=len(FINISH_RETRIES) + 1)
        published = await tp.client.publish("work")
        record = await tp.wait(published.id)
    assert (record.state, record.task.attempt, len(calls)) == (State.SUCCEEDED, 2, 2)
    # the reaper recovers it (noting the lease), or a redelivery takes the expired lease over
    assert [e.kind for e in record.errors] in ([], ["lease"])


class FailingFinish:
    def __init__(self, store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("finish failed")
        return await self._store.finish(outcomes)


# -- interceptors and configuration -------------------------------------------------------


class Tagging:
    def __init__(self, tag: str, log: list[str]) -> None:
        self.tag = tag
        self.log = log

    async def execute(self, call: HandlerCall, call_next: CallNext) -> object:
        self.log.append(f"{self.tag}>{call.task.subject}:{call.timeout:g}")
        result = await call_next(call)
        self.log.append(f"<{self.tag}")
        return f"{self.tag}({result})"


class InterceptorPlugin:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def atp_interceptors(self, settings: Settings):
        return [Tagging("plugin", self.log)]


async def test_interceptors_wrap_the_handler_plugins_outermost():
    app = App()

    @app.task("wrapped", timeout=7)
    async def wrapped(x: int) -> str:
        return str(x)

    log: list[str] = []
    async with TestPlatform(app, workers=0, plugins=[InterceptorPlugin(log)]) as tp:
        await tp.start_worker(interceptors=[Tagging("mine", log)])
        record = await tp.wait((await tp.client.publish("wrapped", {"x": 1})).id)
    assert record.result == "plugin(mine(1))"
    assert log == ["plugin>wrapped:7", "mine>wrapped:7", "<mine", "<plugin"]


async def test_a_worker_refuses_a_process_local_transport_it_does_not_share():
    settings = Settings(store="memory://", transport="memory://", coordinator="memory://")
    async with Platform.build(settings, local=False) as platform:
        worker = Worker(platform, App().registry)
        with pytest.raises(ConfigError, match="process-local"):
            await worker.run(asyncio.Event())


async def test_a_worker_refuses_a_timeout_the_transport_lease_cannot_cover():
    app = App()

    @app.task("slow", timeout=120)
    async def slow() -> None: ...

    settings = Settings(store="memory://", transport="memory://", coordinator="memory://")
    async with Platform.build(settings, local=True) as platform:
        platform.transport.capabilities = Capabilities(lease=60.0, shared=False)
        with pytest.raises(ConfigError, match=r"'slow' may run 120s .* cannot extend its 60s"):
            platform.check_worker(app.registry)
        platform.transport.capabilities = Capabilities(lease=600.0, shared=False)
        platform.check_worker(app.registry)


async def test_worker_defaults_follow_settings_and_the_app():
    app = App()

    @app.task("a.*")
    async def a() -> None: ...

    @app.task("b")
    async def b() -> None: ...

    settings = Settings(store="memory://", transport="memory://", coordinator="memory://")
    async with Platform.build(settings.replace(concurrency=4, group="g"), local=True) as platform:
        worker = Worker(platform, app.registry)
        assert (worker.patterns, worker.group, worker.concurrency) == (["a.*", "b"], "g", 4)
        assert worker.idle
        assert worker.running == []
        explicit = Worker(platform, app.registry, patterns=["x.>"], name="w")
        assert (explicit.patterns, explicit.name) == (["x.>"], "w")
    async with Platform.build(settings.replace(subjects=("c.*",)), local=True) as platform:
        assert Worker(platform, app.registry).patterns == ["c.*"]


# -- lifecycle hooks ----------------------------------------------------------------------


class Lifecycle:
    """Records every task and worker lifecycle hook, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    @hookimpl
    def atp_task_enqueued(self, tasks: Sequence[Task]) -> None:
        self.calls.extend(("enqueued", t.subject) for t in tasks)

    @hookimpl
    def atp_task_dispatched(self, tasks: Sequence[Task]) -> None:
        self.calls.extend(("dispatched", t.subject) for t in tasks)

    @hookimpl
    def atp_task_started(self, task: Task, worker: str) -> None:
        self.calls.append(("started", (task.subject, task.attempt, worker)))

    @hookimpl
    def atp_task_succeeded(self, record: TaskRecord, duration: float) -> None:
        self.calls.append(("succeeded", (record.subject, record.result, duration)))

    @hookimpl
    def atp_task_failed(self, record: TaskRecord, error: str, will_retry: bool, duration: float):
        self.calls.append(("failed", (record.subject, error, will_retry, duration)))

    @hookimpl
    def atp_task_dead(self, record: TaskRecord, reason: str) -> None:
        self.calls.append(("dead", (record.subject, reason)))

    @hookimpl
    def atp_task_cancelled(self, record: TaskRecord) -> None:
        self.calls.append(("cancelled", record.subject))

    @hookimpl
    def atp_worker_started(self, worker: str, patterns: Sequence[str], group: str) -> None:
        self.calls.append(("worker started", (worker, list(patterns), group)))

    @hookimpl
    def atp_worker_stopped(self, worker: str) -> None:
        self.calls.append(("worker stopped", worker))

    def named(self, *names: str) -> list[tuple[str, object]]:
        return [call for call in self.calls if call[0] in names]


async def test_lifecycle_hooks_fire_in_order():
    app = App()

    @app.task("ok")
    async def ok() -> int:
        await tp.clock.sleep(2)
        return 7

    @app.task("bad", max_attempts=2, retry=RetryPolicy(base=1, jitter=False))
    async def bad() -> None:
        raise ValueError("nope")

    @app.task("slow")
    async def slow() -> None:
        await tp.clock.sleep(100)

    hooks = Lifecycle()
    async with TestPlatform(app, workers=0, plugins=[hooks]) as tp:
        await tp.start_worker(name="w1")
        await tp.client.publish("ok")
        await tp.run_until_idle()
        await tp.client.publish("bad")
        await tp.run_until_idle()
        scheduled = await tp.client.publish("slow", delay=50)
        await tp.client.cancel(scheduled.id)
        running = await tp.client.publish("slow")
        await tp.advance(1)
        await tp.client.cancel(running.id)
        await tp.advance(tp.settings.heartbeat)
    error = "ValueError: nope"
    assert hooks.calls == [
        ("worker started", ("w1", ["ok", "bad", "slow"], "default")),
        ("enqueued", "ok"),
        ("dispatched", "ok"),
        ("started", ("ok", 1, "w1")),
        ("succeeded", ("ok", 7, 2.0)),
        ("enqueued", "bad"),
        ("dispatched", "bad"),
        ("started", ("bad", 1, "w1")),
        ("failed", ("bad", error, True, 0.0)),
        ("dispatched", "bad"),
        ("started", ("bad", 2, "w1")),
        ("failed", ("bad", error, False, 0.0)),
        ("dead", ("bad", error)),
        ("enqueued", "slow"),
        ("cancelled", "slow"),
        ("enqueued", "slow"),
        ("dispatched", "slow"),
        ("started", ("slow", 1, "w1")),
        ("cancelled", "slow"),
        ("worker stopped", "w1"),
    ]


class Exploding:
    @hookimpl
    def atp_task_started(self, task: Task, worker: str) -> None:
        raise RuntimeError("listener bug")

    @hookimpl
    def atp_task_succeeded(self, record: TaskRecord, duration: float) -> None:
        raise RuntimeError("listener bug")


async def test_a_failing_listener_changes_nothing_and_others_still_hear(caplog):
    app = App()

    @app.task("ok")
    async def ok() -> str:
        return "fine"

    hooks = Lifecycle()
    async with TestPlatform(app, plugins=[Exploding(), hooks]) as tp:
        record = await tp.wait((await tp.client.publish("ok")).id)
        failures = dict(tp.platform.emit.failures)
    assert (record.state, record.result, record.errors) == (State.SUCCEEDED, "fine", ())
    assert [name for name, _ in hooks.named("started", "succeeded")] == ["started", "succeeded"]
    ((plugin, count),) = failures.items()
    assert count == 2
    assert "Exploding" in plugin
    assert "failed in hook atp_task_started" in caplog.text


class AsyncListener:
    @hookimpl
    async def atp_task_started(self, task: Task, worker: str) -> None: ...


def test_an_async_hook_implementation_is_refused_naming_plugin_hook_and_signature():
    from atp.core.errors import PluginError
    from atp.core.plugins import PluginManager

    manager = PluginManager()
    plugin = AsyncListener()
    with pytest.raises(PluginError) as caught:
        manager.register(plugin, name="slow-listener")
    message = str(caught.value)
    assert "'slow-listener'" in message
    assert "atp_task_started" in message
    assert "async def atp_task_started(task: " in message
    assert "worker: str" in message
    assert not manager.is_registered(plugin)


async def test_cancelling_twice_announces_the_cancel_once():
    hooks = Lifecycle()
    async with TestPlatform(App(), plugins=[hooks]) as tp:
        published = await tp.client.publish("later", delay=60)
        await tp.client.cancel(published.id)
        await tp.client.cancel(published.id)
    assert hooks.named("cancelled") == [("cancelled", "later")]


async def test_an_outcome_reported_after_the_lease_was_taken_over_is_dropped(caplog):
    app = App()
    results: list[str] = []

    @app.task("long", timeout=100)
    async def long() -> str:
        attempt = current_task().attempt
        await tp.clock.sleep(15 if attempt == 1 else 30)
        results.append(f"attempt {attempt}")
        return f"attempt {attempt}"

    async with TestPlatform(app, Settings(lease=10, heartbeat=2, concurrency=1)) as tp:
        silenced = SilencedHeartbeats(tp.platform.store, tp.workers[0].name)
        tp.platform.store = silenced
        published = await tp.client.publish("long")
        await tp.advance(1)
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert results == ["attempt 1", "attempt 2"]
    assert record.result == "attempt 2"
    assert "was taken over; outcome dropped" in caplog.text


async def test_acks_that_fail_do_not_run_a_task_twice(caplog):
    app = App()
    calls: list[int] = []

    @app.task("work")
    async def work() -> None:
        calls.append(1)

    async with TestPlatform(app, Settings(lease=10, heartbeat=2), workers=0) as tp:
        tp.platform.transport = FailingAcks(tp.platform.transport)
        await tp.start_worker()
        published = await tp.client.publish("work")
        await tp.run_until_idle()
        await tp.advance(25)  # the unacked delivery comes back, and is dropped at claim
        record = await tp.get(published.id)
    assert record.state is State.SUCCEEDED
    assert calls == [1]
    assert "ack of 1 deliveries failed" in caplog.text
    assert "acking duplicates failed" in caplog.text


class FailingAcks(FlakyConsumers):
    def __init__(self, transport) -> None:
        super().__init__(transport, fetch_failures=0)

    async def consume(self, pattern: str, group: str) -> Consumer:
        return AckFails(await self._transport.consume(pattern, group))


class AckFails:
    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def __getattr__(self, name):
        return getattr(self._consumer, name)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        raise BackendUnavailable("ack not confirmed")


def test_plugins_that_cannot_load_or_misspell_a_hook_are_refused(tmp_path, monkeypatch):
    from atp.core.errors import PluginError
    from atp.core.plugins import make_plugin_manager

    with pytest.raises(PluginError, match=r"'no\.such\.module' cannot be imported"):
        make_plugin_manager(Settings(plugins=("no.such.module",)), entry_points=False)
    (tmp_path / "misspelt_plugin.py").write_text(
        "from atp.core.plugins import hookimpl\n\n\n"
        "@hookimpl\ndef atp_task_finished(record):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="atp_task_finished"):
        make_plugin_manager(Settings(plugins=("misspelt_plugin",)), entry_points=False)
