"""Each attempt's error names the worker that ran it and when it began, so a task's page
can draw its attempts as a timeline; a succeeded task keeps the worker that ran it."""

from __future__ import annotations

import asyncio

import pytest

from atp.adapters.http._models import TaskOut
from atp.core import codec
from atp.core.model import AttemptError, RetryPolicy, State, Task, TaskRecord
from atp.core.recovery import LEASE_EXPIRED
from atp.sdk import App
from atp.sdk.testing import TestPlatform
from atp.sdk.wire import rest
from atp.sdk.wire import tasks as grpc_wire

NO_WAIT = RetryPolicy(base=0.0, jitter=False)
WORKER = "test-worker-1"


def _app(clock_holder: list[TestPlatform]) -> App:
    app = App()

    @app.task("slow.fail", max_attempts=2, retry=NO_WAIT)
    async def slow_fail() -> None:
        await clock_holder[0].clock.sleep(5)
        raise ValueError("late")

    @app.task("slow.hang", max_attempts=1, timeout=3)
    async def slow_hang() -> None:
        await asyncio.Event().wait()

    @app.task("quick.ok")
    async def quick_ok() -> int:
        return 1

    return app


async def _finished(subject: str) -> TaskRecord:
    holder: list[TestPlatform] = []
    async with TestPlatform(_app(holder)) as tp:
        holder.append(tp)
        return await tp.wait((await tp.client.publish(subject)).id)


async def test_a_failed_attempt_names_its_worker_and_when_it_began() -> None:
    record = await _finished("slow.fail")
    assert record.state is State.DEAD
    first, second = record.errors
    assert [(e.attempt, e.worker, e.kind) for e in record.errors] == [
        (1, WORKER, "error"),
        (2, WORKER, "error"),
    ]
    assert first.started_at is not None
    assert second.started_at is not None
    assert (first.at - first.started_at, second.at - second.started_at) == (5.0, 5.0)
    assert second.started_at >= first.at


async def test_a_timed_out_attempt_took_its_timeout() -> None:
    [error] = (await _finished("slow.hang")).errors
    assert (error.kind, error.worker) == ("timeout", WORKER)
    assert error.started_at is not None
    assert error.at - error.started_at == 3.0


async def test_a_succeeded_task_keeps_the_worker_that_ran_it() -> None:
    record = await _finished("quick.ok")
    assert (record.state, record.lease_owner, record.lease_until) == (State.SUCCEEDED, WORKER, None)


async def test_a_lost_lease_names_the_worker_that_held_it() -> None:
    holder: list[TestPlatform] = []
    async with TestPlatform(_app(holder)) as tp:
        holder.append(tp)
        published = await tp.client.publish("slow.hang", timeout=600)
        await tp.advance(1)
        await tp.workers[0].crash()
        await tp.advance(tp.settings.lease * 2)  # the reaper takes the lease back
        record = await tp.get(published.id)
    [error] = record.errors
    assert (error.kind, error.message, error.worker, error.started_at) == (
        "lease",
        LEASE_EXPIRED,
        WORKER,
        None,
    )


# -- the encodings: stored JSON, REST and gRPC ----------------------------------------------

ERROR = AttemptError(2, 20.5, "E: x", "error", "Traceback ...\n", 'w"1\\ ✓', 15.25)


def _record(*errors: AttemptError) -> TaskRecord:
    return TaskRecord(Task("01JXT22M9G271QT7RWTSP35H8V", "a.b"), State.DEAD, 21.0, errors=errors)


@pytest.mark.parametrize("error", [ERROR, AttemptError(1, 2.0, "lease", "lease", worker="w")])
def test_every_encoding_round_trips_the_worker_and_start(error: AttemptError) -> None:
    record = _record(error)
    assert codec.decode_record(codec.encode_record(record)) == record
    assert rest.record_in(rest.record_out(record)) == record
    assert grpc_wire.error_in(grpc_wire.error_out(error)) == error


def test_an_error_stored_before_workers_were_kept_reads_without_them() -> None:
    old = {"attempt": 1, "at": 2.0, "message": "boom", "kind": "error"}
    assert codec.error_from_dict(old) == AttemptError(1, 2.0, "boom", "error")
    assert codec.error_to_dict(AttemptError(1, 2.0, "boom", "error")) == old


def test_the_rest_model_carries_the_worker_and_start() -> None:
    out = TaskOut.of(_record(ERROR, AttemptError(1, 2.0, "boom")))
    assert [(e.worker, e.started_at) for e in out.errors] == [('w"1\\ ✓', 15.25), (None, None)]
