"""Each failed attempt keeps the traceback of the handler's exception, bounded, and is
logged once (WARNING, ERROR when dead) with the task's fields and the traceback."""

import asyncio
import io
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters.cli import cli
from atp.adapters.cli._logging import JsonFormatter, UtcFormatter
from atp.adapters.http._models import TaskOut
from atp.core import codec
from atp.core.errors import Fail, Retry
from atp.core.model import TRACEBACK_LIMIT, AttemptError, RetryPolicy, State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Outcome
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.outcomes import format_traceback
from atp.sdk import App
from atp.sdk.testing import TestPlatform
from atp.sdk.wire import rest
from atp.sdk.wire import tasks as grpc_wire

NO_WAIT = RetryPolicy(base=0.0, jitter=False)


def connect() -> None:
    raise ConnectionError("boom")


async def _run(app: App, subject: str) -> TaskRecord:
    async with TestPlatform(app) as tp:
        return await tp.wait((await tp.client.publish(subject)).id)


def _failing_app(fn: Callable[[], None], *, sync: bool, max_attempts: int = 1) -> App:
    app = App()
    if sync:
        app.task("net.call", max_attempts=max_attempts, retry=NO_WAIT)(fn)
    else:

        async def call() -> None:
            fn()

        app.task("net.call", max_attempts=max_attempts, retry=NO_WAIT)(call)
    return app


def _lines(traceback: str | None) -> list[str]:
    assert traceback is not None
    return traceback.splitlines()


# -- what is stored -----------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_the_handlers_traceback_is_stored_without_the_workers_frames(sync: bool) -> None:
    record = await _run(_failing_app(connect, sync=sync), "net.call")
    [error] = record.errors
    lines = _lines(error.traceback)
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ConnectionError: boom"
    assert any(line.strip().startswith('raise ConnectionError("boom")') for line in lines)
    frames = [line for line in lines if line.startswith("  File ")]
    assert frames
    assert not any("core/worker" in f or "concurrent" in f for f in frames)
    assert error.message == "ConnectionError: boom"


async def test_a_chained_exception_keeps_its_cause() -> None:
    def wrapped() -> None:
        try:
            connect()
        except ConnectionError as exc:
            raise RuntimeError("could not reach the API") from exc

    [error] = (await _run(_failing_app(wrapped, sync=False), "net.call")).errors
    text = error.traceback or ""
    assert text.index("ConnectionError: boom") < text.index("direct cause")
    assert text.rstrip().endswith("RuntimeError: could not reach the API")


async def test_every_failed_attempt_keeps_its_own_traceback() -> None:
    record = await _run(_failing_app(connect, sync=False, max_attempts=2), "net.call")
    assert record.state is State.DEAD
    assert [e.attempt for e in record.errors] == [1, 2]
    assert all((e.traceback or "").endswith("ConnectionError: boom\n") for e in record.errors)


async def test_fail_keeps_a_traceback_and_retry_and_timeouts_do_not() -> None:
    app = App()

    @app.task("fails", max_attempts=3)
    async def fails() -> None:
        raise Fail("bad input")

    @app.task("retries", max_attempts=2, retry=NO_WAIT)
    async def retries() -> None:
        raise Retry(delay=0, reason="not yet")

    @app.task("hangs", max_attempts=1, timeout=5)
    async def hangs() -> None:
        await asyncio.Event().wait()

    async with TestPlatform(app) as tp:
        ids = [(await tp.client.publish(s)).id for s in ("fails", "retries", "hangs")]
        failed, retried, timed_out = [await tp.wait(i) for i in ids]
    assert "Fail: bad input" in (failed.errors[0].traceback or "")
    assert [e.traceback for e in retried.errors] == [None, None]
    assert (timed_out.errors[0].kind, timed_out.errors[0].traceback) == ("timeout", None)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class _Exiting(Exception):
    """Reading its notes raises: ``traceback`` survives a hostile ``__str__``, not this."""

    @property
    def __notes__(self) -> list[str]:  # type: ignore[override]
        raise SystemExit(9)


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as raised:
        return raised


def test_a_hostile_exception_still_gets_a_traceback_or_says_why_not() -> None:
    unprintable = format_traceback(_raise(_Unprintable()))
    assert "_Unprintable: <exception str() failed>" in (unprintable or "")
    exiting = format_traceback(_raise(_Exiting()))
    assert exiting == "<traceback unavailable: SystemExit while formatting it>"
    assert format_traceback(TimeoutError("never raised")) is None


def test_a_deep_recursion_keeps_its_innermost_frames_and_stays_bounded() -> None:
    def down(n: int) -> None:
        if n == 0:
            raise ValueError("bottom")
        down(n - 1)

    text = format_traceback(_raise_from(lambda: down(500))) or ""
    assert text.count('  File "') <= 64 + 1
    assert text.rstrip().endswith("ValueError: bottom")


def _raise_from(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


async def test_a_huge_chain_is_stored_cut_to_its_head_and_tail() -> None:
    def chained() -> None:
        exc: BaseException | None = None
        for i in range(3000):
            try:
                raise KeyError(f"link {i}") from exc
            except KeyError as raised:
                exc = raised
        assert exc is not None
        raise exc

    [error] = (await _run(_failing_app(chained, sync=False), "net.call")).errors
    assert error.traceback is not None
    assert len(error.traceback) <= TRACEBACK_LIMIT
    assert "KeyError: 'link 0'" in error.traceback  # the first cause, at the head
    assert error.traceback.rstrip().endswith("KeyError: 'link 2999'")
    assert "characters] …" in error.traceback


def test_an_attempt_error_cuts_a_long_traceback_and_keeps_a_short_one() -> None:
    long = AttemptError(1, 0.0, "x", traceback="T" * (TRACEBACK_LIMIT * 4))
    assert len(long.traceback or "") <= TRACEBACK_LIMIT
    assert (long.traceback or "").startswith("TTT")
    assert AttemptError(1, 0.0, "x", traceback="short").traceback == "short"


def test_errors_round_trip_and_old_ones_without_a_traceback_still_read() -> None:
    with_trace = AttemptError(1, 2.0, "ValueError: x", "error", "Traceback ...\n")
    without = AttemptError(2, 3.0, "timed out", "timeout")
    assert codec.error_from_dict(codec.error_to_dict(with_trace)) == with_trace
    assert "traceback" not in codec.error_to_dict(without)
    old = {"attempt": 2, "at": 3.0, "message": "timed out", "kind": "timeout"}
    assert codec.error_from_dict(old) == without


def test_the_rest_and_grpc_wire_carry_the_traceback() -> None:
    task = codec.task_from_stored_dict({"id": "T1", "subject": "a.b", "payload": None})
    errors = (AttemptError(1, 2.0, "E: x", "error", "Traceback ...\n"), AttemptError(2, 3.0, "t"))
    record = TaskRecord(task, State.DEAD, 3.0, errors=errors)
    body = json.loads(TaskOut.of(record).model_dump_json())
    assert [e["traceback"] for e in body["errors"]] == ["Traceback ...\n", None]
    assert rest.record_in(body).errors == errors
    assert grpc_wire.record_in(grpc_wire.record_out(record)).errors == errors


# -- the log ------------------------------------------------------------------------------


def _worker_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "atp.worker"]


async def test_each_failed_attempt_is_logged_with_its_task_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "atp.worker")
    record = await _run(_failing_app(connect, sync=True, max_attempts=2), "net.call")
    retried, dead = _worker_records(caplog)
    assert (retried.levelno, dead.levelno) == (logging.WARNING, logging.ERROR)
    for attempt, line in enumerate((retried, dead), start=1):
        fields = (line.task_id, line.subject, line.attempt, line.kind)  # type: ignore[attr-defined]
        assert fields == (record.id, "net.call", attempt, "error")
        assert line.exc_info is not None
        assert line.exc_info[1] is not None
        assert line.exc_info[1].args == ("boom",)
        assert line.getMessage().endswith(": ConnectionError: boom")
    assert "attempt 1 failed (error), retrying in 0.0s" in retried.getMessage()
    assert "is dead after attempt 2 (error)" in dead.getMessage()


async def test_a_success_and_a_timeout_log_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "atp.worker")
    app = App()

    @app.task("ok")
    async def ok() -> str:
        return "fine"

    @app.task("hangs", max_attempts=1, timeout=5)
    async def hangs() -> None:
        await asyncio.Event().wait()

    async with TestPlatform(app) as tp:
        await tp.wait((await tp.client.publish("ok")).id)
        assert _worker_records(caplog) == []
        await tp.wait((await tp.client.publish("hangs")).id)
    [line] = _worker_records(caplog)
    assert (line.levelno, line.kind, line.exc_info) == (logging.ERROR, "timeout", None)  # type: ignore[attr-defined]
    assert "attempt timed out after 5s" in line.getMessage()


def _log_record(exc: BaseException) -> logging.LogRecord:
    record = logging.LogRecord(
        "atp.worker",
        logging.WARNING,
        __file__,
        1,
        "attempt %d failed",
        (1,),
        (type(exc), exc, exc.__traceback__),
    )
    record.task_id, record.kind = "T1", "error"
    return record


def test_the_json_formatter_puts_the_traceback_in_exc() -> None:
    line = json.loads(JsonFormatter().format(_log_record(_raise_from(connect))))
    assert (line["message"], line["task_id"], line["kind"]) == ("attempt 1 failed", "T1", "error")
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("ConnectionError: boom")


def test_the_text_formatter_prints_the_traceback_under_the_line() -> None:
    text = UtcFormatter("%(levelname)s %(message)s").format(_log_record(_raise_from(connect)))
    assert text.splitlines()[:2] == [
        "WARNING attempt 1 failed",
        "Traceback (most recent call last):",
    ]
    assert text.endswith("ConnectionError: boom")


@pytest.mark.parametrize("formatter", [JsonFormatter(), UtcFormatter()], ids=["json", "text"])
def test_a_formatter_cuts_a_huge_traceback(formatter: logging.Formatter) -> None:
    text = formatter.format(_log_record(_raise(ValueError("!" * 1_000_000))))
    assert len(text) < TRACEBACK_LIMIT + 1000
    assert "characters] …" in text


@pytest.mark.parametrize("formatter", [JsonFormatter(), UtcFormatter()], ids=["json", "text"])
def test_a_formatter_keeps_the_line_of_an_exception_it_cannot_format(
    formatter: logging.Formatter,
) -> None:
    text = formatter.format(_log_record(_raise(_Exiting())))
    assert "attempt 1 failed" in text
    assert "<traceback unavailable: SystemExit>" in text


# -- atp task get -------------------------------------------------------------------------


def test_task_get_shows_the_last_traceback_and_json_carries_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'atp.db'}"
    monkeypatch.setenv("ATP_STORE", url)
    task_id = asyncio.run(_dead_with_tracebacks(url))
    shown = CliRunner().invoke(cli, ["task", "get", task_id], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    tail = shown.stdout.split("traceback of attempt 2:\n", 1)[1]
    assert tail == "  Traceback (most recent call last):\n  second\n"
    raw = CliRunner().invoke(cli, ["task", "get", task_id, "--json"], catch_exceptions=False)
    data = json.loads(raw.stdout)
    assert [e.get("traceback") for e in data["errors"]] == [
        "Traceback (most recent call last):\nfirst\n",
        "Traceback (most recent call last):\nsecond\n",
    ]


async def _dead_with_tracebacks(url: str) -> str:
    async with Platform.build(Settings(store=url)) as p:
        (published,) = await TaskService(p).publish([PublishRequest("a.b", None)])
        for attempt, state, text in ((1, State.SCHEDULED, "first"), (2, State.DEAD, "second")):
            now = p.clock.now()
            await p.store.take_due(now=now + 1000, limit=10, ready_until=now + 1060)
            await p.store.claim([published.id], owner="t", now=now, lease_until=now + 30)
            trace = f"Traceback (most recent call last):\n{text}\n"
            error = AttemptError(attempt, now, f"E: {text}", "error", trace)
            await p.store.finish([Outcome(published.id, "t", state, now, error=error, run_at=now)])
        return published.id


def test_nothing_here_writes_to_stderr_when_formatting(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    handler.handle(_log_record(_raise(_Exiting())))
    assert capsys.readouterr().err == ""
    assert sys.exc_info() == (None, None, None)
