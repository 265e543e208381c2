"""Handlers that raise what no handler should: each is its attempt's failure, recorded, and
the worker carries on; crash recovery stops at max_attempts; error texts stay bounded."""

import asyncio
import sys

import pytest

from atp.core.context import current_task
from atp.core.model import ERROR_TEXT_LIMIT, AttemptError, RetryPolicy, State
from atp.core.settings import Settings
from atp.sdk import App
from atp.sdk.testing import TestPlatform

NO_WAIT = RetryPolicy(base=0.0, jitter=False)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def _exit() -> None:
    sys.exit(3)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _generator_exit() -> None:
    raise GeneratorExit


def _cancelled() -> None:
    raise asyncio.CancelledError


def _base() -> None:
    raise BaseException("odd")


def _unprintable() -> None:
    raise Unprintable


HOSTILE = [
    (_exit, "SystemExit: 3, raised by the handler"),
    (_interrupt, "KeyboardInterrupt, raised by the handler"),
    (_generator_exit, "GeneratorExit, raised by the handler"),
    (_cancelled, "CancelledError, raised by the handler"),
    (_base, "BaseException: odd, raised by the handler"),
    (_unprintable, "Unprintable: <unprintable>"),
]


def _app(raise_it, *, sync: bool, calls: list[int]) -> App:
    """``hostile`` raises on its first attempt and succeeds on its second."""
    app = App()

    def run() -> str:
        calls.append(current_task().attempt)
        if len(calls) == 1:
            raise_it()
        return "survived"

    if sync:
        app.task("hostile", max_attempts=2, retry=NO_WAIT)(run)
    else:

        @app.task("hostile", max_attempts=2, retry=NO_WAIT)
        async def hostile() -> str:
            return run()

    return app


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize(("raise_it", "message"), HOSTILE, ids=[m for m, _ in HOSTILE])
async def test_a_hostile_handler_fails_its_attempt_and_the_worker_carries_on(
    raise_it, message: str, sync: bool
):
    calls: list[int] = []
    async with TestPlatform(_app(raise_it, sync=sync, calls=calls)) as tp:
        record = await tp.wait((await tp.client.publish("hostile")).id)
        assert tp.workers[0].alive
    assert (record.state, record.result, calls) == (State.SUCCEEDED, "survived", [1, 2])
    assert [(e.attempt, e.kind, e.message) for e in record.errors] == [(1, "error", message)]


@pytest.mark.parametrize(("raise_it", "message"), HOSTILE, ids=[m for m, _ in HOSTILE])
async def test_a_handler_that_always_raises_goes_dead_at_max_attempts(raise_it, message: str):
    app = App()
    calls: list[int] = []

    @app.task("doomed", max_attempts=2, retry=NO_WAIT)
    async def doomed() -> None:
        calls.append(current_task().attempt)
        raise_it()

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("doomed")).id)
    assert (record.state, record.task.attempt, calls) == (State.DEAD, 2, [1, 2])
    assert [e.message for e in record.errors] == [message, message]


async def test_other_tasks_in_flight_are_unaffected():
    app = App()

    @app.task("exits")
    async def exits() -> None:
        await tp.clock.sleep(1)
        sys.exit(1)

    @app.task("slow")
    def slow() -> str:  # a thread, while the loop deals with the exit
        return "done"

    @app.task("slower")
    async def slower() -> str:
        await tp.clock.sleep(5)
        return "done too"

    async with TestPlatform(app, Settings(max_attempts=1)) as tp:
        ids = [(await tp.client.publish(s)).id for s in ("slower", "exits", "slow")]
        await tp.run_until_idle()
        records = [await tp.get(task_id) for task_id in ids]
        assert tp.workers[0].alive
    assert [(r.state, r.result) for r in records] == [
        (State.SUCCEEDED, "done too"),
        (State.DEAD, None),
        (State.SUCCEEDED, "done"),
    ]


async def test_the_workers_own_cancellation_still_stops_a_handler():
    """Told apart from a handler's own CancelledError: a crash records nothing."""
    app = App()

    @app.task("long", timeout=100)
    async def long() -> str:
        await tp.clock.sleep(50)
        return "done"

    async with TestPlatform(app, Settings(lease=10, heartbeat=2)) as tp:
        published = await tp.client.publish("long")
        await tp.advance(1)
        await tp.workers[0].crash()
        record = await tp.get(published.id)
        assert (record.state, record.errors) == (State.RUNNING, ())
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert (record.state, [e.kind for e in record.errors]) == (State.SUCCEEDED, ["lease"])


# -- crash recovery honours max_attempts ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "limit", "default"),
    [("handler", 2, 3), ("task", 2, 3), ("handler", 4, 2)],
    ids=["handler-below-default", "task", "handler-above-default"],
)
async def test_a_task_whose_workers_keep_dying_is_dead_after_max_attempts(
    where: str, limit: int, default: int
):
    app = App()
    calls: list[int] = []
    own = {"max_attempts": limit}

    @app.task("doomed", timeout=100, **(own if where == "handler" else {}))
    async def doomed() -> None:
        calls.append(current_task().attempt)
        await tp.clock.sleep(1000)

    async with TestPlatform(app, Settings(lease=10, heartbeat=2, max_attempts=default)) as tp:
        published = await tp.client.publish("doomed", **(own if where == "task" else {}))
        for _ in range(limit + 2):
            await tp.advance(1)
            if tp.workers[-1].worker.running:
                await tp.workers[-1].crash()  # it dies with every attempt it starts
                await tp.start_worker()
            await tp.advance(30)
        record = await tp.get(published.id)
    assert (record.state, record.task.attempt) == (State.DEAD, limit)
    assert calls == list(range(1, limit + 1))
    assert {e.kind for e in record.errors} == {"lease"}
    assert record.errors[-1].attempt == limit


# -- bounded error texts ------------------------------------------------------------------


def test_a_long_error_text_keeps_its_head_and_tail_and_says_what_was_cut():
    text = "HEAD" + "x" * 5_242_880 + "TAIL"
    message = AttemptError(1, 0.0, text).message
    assert len(message) <= ERROR_TEXT_LIMIT
    assert message.startswith("HEADxxx")
    assert message.endswith("xxxTAIL")
    head, _, rest = message.partition(" … [cut ")
    cut, _, tail = rest.partition(" characters] … ")
    assert int(cut.replace(",", "")) == len(text) - len(head) - len(tail)
    assert AttemptError(1, 0.0, message).message == message  # a cut text is not cut again


def test_an_error_text_within_the_limit_is_kept_whole():
    text = "y" * ERROR_TEXT_LIMIT
    assert AttemptError(1, 0.0, text).message == text


async def test_a_huge_exception_message_is_stored_bounded():
    app = App()

    @app.task("loud", max_attempts=1)
    async def loud() -> None:
        raise ValueError("!" * 5_000_000)

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("loud")).id)
    [error] = record.errors
    assert len(error.message) <= ERROR_TEXT_LIMIT
    assert error.message.startswith("ValueError: !!!")
    assert "[cut 4,99" in error.message


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize(("raise_it", "message"), HOSTILE, ids=[m for m, _ in HOSTILE])
async def test_a_hostile_handlers_attempt_keeps_its_traceback(raise_it, message: str, sync: bool):
    calls: list[int] = []
    async with TestPlatform(_app(raise_it, sync=sync, calls=calls)) as tp:
        record = await tp.wait((await tp.client.publish("hostile")).id)
    [error] = record.errors
    assert error.traceback is not None
    assert f"in {raise_it.__name__}\n" in error.traceback
    last = error.traceback.rstrip().splitlines()[-1]
    assert last.split(":")[0].rsplit(".", 1)[-1] == message.split(":")[0].split(",")[0]


class Unformattable(Exception):
    """Formatting its traceback raises SystemExit (reading its notes does)."""

    @property
    def __notes__(self) -> list[str]:  # type: ignore[override]
        raise SystemExit(9)


async def test_an_exception_whose_traceback_cannot_be_formatted_is_still_recorded_and_logged(
    caplog: pytest.LogCaptureFixture,
):
    app = App()

    @app.task("odd", max_attempts=1)
    async def odd() -> None:
        raise Unformattable("odd")

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("odd")).id)
        assert tp.workers[0].alive
    [error] = record.errors
    assert (record.state, error.message) == (State.DEAD, "Unformattable: odd")
    assert error.traceback == "<traceback unavailable: SystemExit while formatting it>"
    [line] = [r for r in caplog.records if r.name == "atp.worker"]
    assert (line.levelname, line.exc_info) == ("ERROR", None)
