"""The command line against a real SQLite store in a temporary folder."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from atp.adapters._auth.config import ServerSettings
from atp.adapters.cli import _run, _serve, cli, main
from atp.adapters.cli._banner import example_payload
from atp.adapters.cli._errors import exit_code
from atp.adapters.cli._logging import configure_logging
from atp.adapters.cli._output import json_text
from atp.adapters.cli._serve import serve
from atp.core import errors
from atp.core.model import AttemptError, State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Outcome
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App


@pytest.fixture
def runner(store_url: str) -> Iterator[CliRunner]:
    yield CliRunner()
    logging.getLogger().setLevel(logging.WARNING)


def atp(runner: CliRunner, *args: str, input: str | None = None, **env: str) -> Result:
    return runner.invoke(cli, list(args), input=input, env=env or None, catch_exceptions=False)


def platform(url: str) -> Platform:
    return Platform.build(Settings(store=url))


def records(url: str) -> list[TaskRecord]:
    async def run() -> list[TaskRecord]:
        async with platform(url) as p:
            return (await TaskService(p).query(limit=1000)).items

    return asyncio.run(run())


def record(url: str, task_id: str) -> TaskRecord:
    async def run() -> TaskRecord:
        async with platform(url) as p:
            return await TaskService(p).get(task_id)

    return asyncio.run(run())


def dead_task(url: str, subject: str = "imports.parse", payload: object = None) -> str:
    """Publish a task and drive it to DEAD through the store, as a worker would."""
    (task_id,) = dead_tasks(url, 1, subject, payload)
    return task_id


def dead_tasks(
    url: str, count: int, subject: str = "imports.parse", payload: object = None
) -> list[str]:
    """Publish ``count`` tasks and drive them to DEAD through the store in a few calls."""

    async def run() -> list[str]:
        async with platform(url) as p:
            requests = [PublishRequest(subject, payload)] * count
            ids = [published.id for published in await TaskService(p).publish(requests)]
            now = p.clock.now()
            # other due tasks are taken too (as one call of a forwarder would): leave room
            await p.store.take_due(now=now + 1, limit=count + 100, ready_until=now + 60)
            await p.store.claim(ids, owner="t", now=now, lease_until=now + 30)
            error = AttemptError(1, now, "line 1: expected a header row", "error")
            await p.store.finish([Outcome(i, "t", State.DEAD, now, error=error) for i in ids])
            return ids

    return asyncio.run(run())


def states(url: str) -> dict[str, State]:
    return {r.id: r.state for r in records(url)}


def damage(tmp_path: Path, task_id: str) -> None:
    """Overwrite a task's stored envelope so that the store quarantines it (ADR 0027)."""
    with sqlite3.connect(tmp_path / "atp.db", isolation_level=None) as conn:
        sql = "UPDATE tasks SET envelope = ? WHERE id = ?"
        assert conn.execute(sql, ("not json", task_id)).rowcount == 1


def published_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def assert_error(result: Result, code: int, *fragments: str) -> None:
    """One ``error:`` line on stderr, the documented exit code, never a traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


# -- publish -------------------------------------------------------------------------------


def test_publish_prints_the_id_of_a_stored_task(runner: CliRunner, store_url: str) -> None:
    result = atp(
        runner,
        "publish",
        "orders.close",
        '{"order_id": 42}',
        "--priority",
        "3",
        "--max-attempts",
        "5",
        "--timeout",
        "30s",
        "--header",
        "tenant=acme",
    )
    task = record(store_url, published_id(result)).task
    assert task.subject == "orders.close"
    assert task.payload == {"order_id": 42}
    assert (task.priority, task.max_attempts, task.timeout) == (3, 5, 30.0)
    assert dict(task.headers) == {"tenant": "acme"}
    assert record(store_url, task.id).state is State.SCHEDULED


def test_publish_with_a_delay_or_a_time(runner: CliRunner, store_url: str) -> None:
    delayed = record(store_url, published_id(atp(runner, "publish", "a.b", "--delay", "30s")))
    assert delayed.task.run_at == pytest.approx(delayed.task.created_at + 30, abs=0.01)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    at = published_id(atp(runner, "publish", "a.b", "--at", when.isoformat()))
    assert record(store_url, at).task.run_at == when.timestamp()
    naive = when.replace(tzinfo=None).isoformat()
    assert (
        record(store_url, published_id(atp(runner, "publish", "a.b", "--at", naive))).task.run_at
        == when.timestamp()
    )


def test_publish_reads_the_payload_from_stdin(runner: CliRunner, store_url: str) -> None:
    task_id = published_id(atp(runner, "publish", "a.b", "-", input='[1, "two"]\n'))
    assert record(store_url, task_id).task.payload == [1, "two"]


def test_publish_without_payload_sends_null(runner: CliRunner, store_url: str) -> None:
    assert record(store_url, published_id(atp(runner, "publish", "a.b"))).task.payload is None


def test_an_idempotency_key_returns_the_existing_task(runner: CliRunner, store_url: str) -> None:
    args = ("publish", "orders.close", '{"order_id": 42}', "--idempotency-key", "order-42")
    first = atp(runner, *args)
    second = atp(runner, *args)
    assert published_id(first) == published_id(second)
    assert "existing" in second.stderr
    assert "existing" not in first.stderr
    assert len(records(store_url)) == 1


def test_publish_json_output(runner: CliRunner, store_url: str) -> None:
    answer = json.loads(atp(runner, "publish", "a.b", "--json", "--idempotency-key", "k").stdout)
    again = json.loads(atp(runner, "publish", "a.b", "--json", "--idempotency-key", "k").stdout)
    assert answer["created"] is True
    assert again["created"] is False
    assert answer["id"] == again["id"] == records(store_url)[0].id
    assert isinstance(answer["run_at"], float)


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("orders..close",), 2, "empty token"),
        (("orders.*",), 2, "wildcards"),
        (("a.b", "{not json"), 2, "payload is not valid JSON"),
        (("a.b", "--delay", "-5s"), 2, "delay must be"),
        (("a.b", "--delay", "1000d"), 2, "over the limit"),
        (("a.b", "--delay", "soon"), 2, "is not a duration"),
        (("a.b", "--delay", "1s", "--at", "2030-01-01T00:00:00Z"), 2, "not both"),
        (("a.b", "--at", "tomorrow"), 2, "ISO 8601"),
        (("a.b", "--at", "1970-01-02T00:00:00Z"), 2, "run_at"),
        (("a.b", "--header", "novalue"), 2, "name=value"),
        (("a.b", "--max-attempts", "0"), 2, "max_attempts"),
        (("a.b", "--timeout", "0s"), 2, "timeout"),
        (("a.b", "--priority", "high"), 2, "priority"),
        (("a.b", "--idempotency-key", "k" * 300), 2, "idempotency key"),
    ],
)
def test_publish_refuses_bad_input_and_writes_nothing(
    runner: CliRunner, store_url: str, args: tuple[str, ...], code: int, fragment: str
) -> None:
    assert_error(atp(runner, "publish", *args), code, fragment)
    assert records(store_url) == []


def test_a_payload_over_the_limit_is_refused(runner: CliRunner, store_url: str) -> None:
    payload = json.dumps({"blob": "x" * 200})
    assert_error(atp(runner, "publish", "a.b", payload, ATP_MAX_PAYLOAD="100"), 2, "limit is 100")
    assert records(store_url) == []


def test_an_unknown_url_scheme_is_a_configuration_error(runner: CliRunner) -> None:
    assert_error(atp(runner, "--store", "nosuch://x", "publish", "a.b"), 5, "'nosuch'")
    assert_error(atp(runner, "--transport", "carrier-pigeon://", "task", "ls"), 5, "transport")


def test_a_malformed_store_url_is_bad_input(runner: CliRunner) -> None:
    assert_error(atp(runner, "--store", "sqlite://atp.db", "task", "ls"), 2, "sqlite")


def test_bad_settings_are_configuration_errors(runner: CliRunner, tmp_path: Path) -> None:
    assert_error(atp(runner, "task", "ls", ATP_LEASE="forever"), 5, "'lease'")
    assert_error(atp(runner, "--config", str(tmp_path / "missing.toml"), "task", "ls"), 5, "exist")
    (tmp_path / "atp.toml").write_text("[atp]\nleese = 3\n")
    assert_error(atp(runner, "task", "ls"), 5, "did you mean 'lease'")


# -- task get / cancel / ls ----------------------------------------------------------------


def test_task_get_shows_the_record(runner: CliRunner, store_url: str) -> None:
    when = datetime.now(UTC).replace(hour=3, minute=4, second=5, microsecond=0) + timedelta(1)
    task_id = published_id(
        atp(runner, "publish", "orders.close", '{"order_id": 7}', "--at", when.isoformat())
    )
    shown = atp(runner, "task", "get", task_id)
    assert shown.exit_code == 0
    lines = dict(line.split(None, 1) for line in shown.stdout.splitlines())
    assert lines["id"] == task_id
    assert lines["state"] == "SCHEDULED"
    assert lines["attempts"] == "0"
    assert lines["run_at"] == when.strftime("%Y-%m-%dT03:04:05.000Z")
    assert lines["payload"] == '{"order_id":7}'
    assert lines["last_error"] == "-"


def test_task_get_shows_errors_of_a_dead_task(runner: CliRunner, store_url: str) -> None:
    shown = atp(runner, "task", "get", dead_task(store_url))
    assert "DEAD" in shown.stdout
    assert "attempt 1  error: line 1: expected a header row" in shown.stdout


def test_task_get_json_is_the_wire_format(runner: CliRunner, store_url: str) -> None:
    task_id = published_id(atp(runner, "publish", "a.b", '{"x": 1}'))
    data = json.loads(atp(runner, "task", "get", task_id, "--json").stdout)
    assert data["task"]["id"] == task_id
    assert data["task"]["payload"] == {"x": 1}
    assert data["state"] == "SCHEDULED"
    assert data["errors"] == []


def test_unknown_ids_are_not_found(runner: CliRunner) -> None:
    assert_error(atp(runner, "task", "get", "NOPE"), 3, "'NOPE'")
    assert_error(atp(runner, "task", "cancel", "NOPE"), 3, "'NOPE'")


def test_task_cancel(runner: CliRunner, store_url: str) -> None:
    task_id = published_id(atp(runner, "publish", "a.b", "--delay", "1h"))
    result = atp(runner, "task", "cancel", task_id)
    assert result.exit_code == 0
    assert f"cancelled {task_id}" in result.stdout
    assert record(store_url, task_id).state is State.CANCELLED
    assert atp(runner, "task", "cancel", task_id).exit_code == 0  # idempotent
    dead = dead_task(store_url)
    assert_error(atp(runner, "task", "cancel", dead), 4, "DEAD")
    assert record(store_url, dead).state is State.DEAD


def test_task_ls_filters_and_pages(runner: CliRunner, store_url: str) -> None:
    ids = [published_id(atp(runner, "publish", f"orders.n{i}")) for i in range(3)]
    other = published_id(atp(runner, "publish", "sms.send"))
    atp(runner, "task", "cancel", other)
    first = atp(runner, "task", "ls", "--subject", "orders.*", "--limit", "2", "--ids")
    assert first.stdout.split() == [ids[2], ids[1]]
    cursor = first.stderr.split("--cursor ")[1].strip()
    rest = atp(runner, "task", "ls", "--subject", "orders.*", "--ids", "--cursor", cursor)
    assert rest.stdout.split() == [ids[0]]
    assert "--cursor" not in rest.stderr
    cancelled = atp(runner, "task", "ls", "--state", "cancelled", "--ids")
    assert cancelled.stdout.split() == [other]
    table = atp(runner, "task", "ls").stdout.splitlines()
    assert table[0].split() == ["ID", "SUBJECT", "STATE", "ATTEMPT", "RUN_AT", "UPDATED_AT"]
    assert len(table) == 5
    page = json.loads(atp(runner, "task", "ls", "--json", "--limit", "1").stdout)
    assert page["items"][0]["task"]["id"] == other
    assert page["next_cursor"]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("--limit", "0"), 2, "limit"),
        (("--limit", "5000"), 2, "limit"),
        (("--subject", "orders.>.x"), 2, "'>'"),
        (("--state", "LOST"), 2, "--state"),
    ],
)
def test_task_ls_refuses_bad_input(
    runner: CliRunner, args: tuple[str, ...], code: int, fragment: str
) -> None:
    assert_error(atp(runner, "task", "ls", *args), code, fragment)


def test_empty_listing(runner: CliRunner) -> None:
    result = atp(runner, "task", "ls")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no tasks" in result.stderr


# -- dead letters --------------------------------------------------------------------------


def test_dlq_ls(runner: CliRunner, store_url: str) -> None:
    dead = dead_task(store_url)
    published_id(atp(runner, "publish", "a.b"))
    listing = atp(runner, "dlq", "ls")
    assert listing.exit_code == 0
    assert dead in listing.stdout
    assert "error: line 1: expected a header row" in listing.stdout
    assert len(listing.stdout.splitlines()) == 2
    assert atp(runner, "dlq", "ls", "--ids").stdout.split() == [dead]
    assert atp(runner, "dlq", "ls", "--subject", "sms.*", "--ids").stdout == ""


def test_dlq_requeue(runner: CliRunner, store_url: str) -> None:
    dead = dead_task(store_url, payload={"url": "old"})
    result = atp(runner, "dlq", "requeue", dead, "--delay", "1h", "--payload", '{"url": "new"}')
    assert result.exit_code == 0
    assert f"requeued {dead}" in result.stdout
    again = record(store_url, dead)
    assert again.state is State.SCHEDULED
    assert again.task.attempt == 0
    assert again.task.payload == {"url": "new"}
    assert again.task.run_at > again.updated_at + 3500
    assert len(again.errors) == 1


def test_dlq_requeue_from_stdin(runner: CliRunner, store_url: str) -> None:
    dead = [dead_task(store_url), dead_task(store_url)]
    ids = atp(runner, "dlq", "ls", "--ids").stdout
    result = atp(runner, "dlq", "requeue", "-", input=ids)
    assert result.exit_code == 0, result.output
    assert {record(store_url, task_id).state for task_id in dead} == {State.SCHEDULED}
    assert_error(atp(runner, "dlq", "requeue", "-", input=""), 2, "no task ids")


def test_dlq_requeue_changes_nothing_unless_every_id_is_dead(
    runner: CliRunner, store_url: str
) -> None:
    dead = dead_task(store_url)
    alive = published_id(atp(runner, "publish", "a.b"))
    assert_error(atp(runner, "dlq", "requeue", dead, "NOPE"), 3, "'NOPE'")
    assert_error(atp(runner, "dlq", "requeue", dead, alive), 4, "not DEAD")
    assert_error(atp(runner, "dlq", "requeue", dead, "--payload", "{oops"), 2, "--payload")
    assert_error(atp(runner, "dlq", "requeue", dead, "--delay", "-1s"), 2, "delay")
    assert record(store_url, dead).state is State.DEAD
    assert record(store_url, alive).state is State.SCHEDULED


def test_dlq_purge_given_ids(runner: CliRunner, store_url: str) -> None:
    dead = [dead_task(store_url), dead_task(store_url)]
    alive = published_id(atp(runner, "publish", "a.b"))
    assert_error(atp(runner, "dlq", "purge", dead[0], alive), 4, "not DEAD")
    assert_error(atp(runner, "dlq", "purge", dead[0], "NOPE"), 3, "'NOPE'")
    assert len(records(store_url)) == 3
    result = atp(runner, "dlq", "purge", dead[0])
    assert result.exit_code == 0
    assert "purged 1 dead tasks" in result.stdout
    assert {r.id for r in records(store_url)} == {dead[1], alive}


def test_dlq_purge_all_asks_first(runner: CliRunner, store_url: str) -> None:
    dead = dead_task(store_url)
    alive = published_id(atp(runner, "publish", "a.b"))
    refused = atp(runner, "dlq", "purge", input="n\n")
    assert_error(refused, 1, "aborted")
    assert "Purge all 1 dead tasks" in refused.stderr
    assert len(records(store_url)) == 2
    assert atp(runner, "dlq", "purge", input="y\n").exit_code == 0
    assert [r.id for r in records(store_url)] == [alive]
    dead_task(store_url)
    assert "purged 1 dead tasks" in atp(runner, "dlq", "purge", "--yes").stdout
    assert "purged 0 dead tasks" in atp(runner, "dlq", "purge").stdout
    assert dead not in {r.id for r in records(store_url)}


def test_a_pipeline_requeues_every_dead_task_not_only_the_first_page(
    runner: CliRunner, store_url: str
) -> None:
    dead = dead_tasks(store_url, 120)
    ids = atp(runner, "dlq", "ls", "--ids")
    assert sorted(ids.stdout.split()) == sorted(dead)
    assert ids.stderr == ""  # no "more:" cursor: nothing was left out
    result = atp(runner, "dlq", "requeue", "-", input=ids.stdout)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("requeued ") == 120
    assert set(states(store_url).values()) == {State.SCHEDULED}


def test_dlq_ls_json_walks_every_page_unless_one_is_asked_for(
    runner: CliRunner, store_url: str
) -> None:
    dead = dead_tasks(store_url, 120)
    streamed = atp(runner, "dlq", "ls", "--json").stdout
    everything = json.loads(streamed)
    assert streamed == json_text(everything) + "\n"  # written page by page, compact as ever
    assert [item["task"]["id"] for item in everything["items"]] == dead[::-1]  # newest first
    assert everything["next_cursor"] is None
    page = json.loads(atp(runner, "dlq", "ls", "--json", "--limit", "7").stdout)
    assert len(page["items"]) == 7
    assert page["next_cursor"]
    table = atp(runner, "dlq", "ls")
    assert len(table.stdout.splitlines()) == 1 + 50  # a table shows one page ...
    assert "more: --cursor " in table.stderr  # ... and says where the next starts
    assert len(atp(runner, "dlq", "ls", "--all").stdout.splitlines()) == 1 + 120


def test_task_ls_ids_walk_every_page(runner: CliRunner, store_url: str) -> None:
    dead = dead_tasks(store_url, 120, subject="imports.parse")
    dead_tasks(store_url, 3, subject="sms.send")
    listed = atp(runner, "task", "ls", "--subject", "imports.*", "--ids", "--state", "dead")
    assert listed.stdout.split() == dead[::-1]
    assert len(json.loads(atp(runner, "task", "ls", "--json").stdout)["items"]) == 123


def test_dlq_requeue_all_takes_the_filter_itself(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    imports = dead_tasks(store_url, 60, subject="imports.parse")
    sms = dead_tasks(store_url, 2, subject="sms.send")
    damage(tmp_path, imports[0])
    result = atp(runner, "dlq", "requeue", "--all", "--subject", "imports.*", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert {item["id"] for item in answer["requeued"]} == set(imports[1:])
    assert answer["skipped"] == [
        {"id": imports[0], "reason": "cannot be decoded: purge it instead"}
    ]
    now = states(store_url)
    assert {now[i] for i in imports[1:]} == {State.SCHEDULED}
    assert {now[i] for i in (imports[0], *sms)} == {State.DEAD}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "or --all"),
        (("--subject", "sms.*"), "--subject needs --all"),
        (("SOME-ID", "--all"), "not both"),
        (("SOME-ID", "--subject", "sms.*"), "not both"),
    ],
)
def test_dlq_requeue_wants_ids_or_a_filter(
    runner: CliRunner, store_url: str, args: tuple[str, ...], fragment: str
) -> None:
    dead = dead_task(store_url)
    assert_error(atp(runner, "dlq", "requeue", *args), 2, fragment)
    assert record(store_url, dead).state is State.DEAD


def test_dlq_requeue_of_a_record_that_cannot_be_decoded_changes_nothing(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    good, bad = dead_tasks(store_url, 2)
    damage(tmp_path, bad)
    assert_error(atp(runner, "dlq", "requeue", good, bad), 4, "cannot be decoded", "nothing")
    assert record(store_url, good).state is State.DEAD
    assert "purged 1 dead tasks" in atp(runner, "dlq", "purge", bad).stdout


def test_dlq_purge_by_subject_shows_the_count_and_asks(runner: CliRunner, store_url: str) -> None:
    imports = dead_tasks(store_url, 120, subject="imports.parse")
    sms = dead_task(store_url, subject="sms.send")
    refused = atp(runner, "dlq", "purge", "--all", "--subject", "imports.*", input="n\n")
    assert_error(refused, 1, "aborted")
    assert "Purge all 120 dead tasks matching imports.* for good?" in refused.stderr
    assert len(states(store_url)) == 121
    result = atp(runner, "dlq", "purge", "--subject", "imports.*", "--yes", "--json")
    assert json.loads(result.stdout) == {"purged": 120}
    assert list(states(store_url)) == [sms]
    assert imports[0] not in states(store_url)
    nothing = atp(runner, "dlq", "purge", "--subject", "imports.*", "--json")
    assert json.loads(nothing.stdout) == {"purged": 0}


def test_dlq_purge_refuses_ids_with_a_filter(runner: CliRunner, store_url: str) -> None:
    dead = dead_task(store_url)
    assert_error(atp(runner, "dlq", "purge", dead, "--subject", "x.*", "--yes"), 2, "not both")
    assert record(store_url, dead).state is State.DEAD


def test_answers_as_json(runner: CliRunner, store_url: str) -> None:
    task_id = published_id(atp(runner, "publish", "a.b", "--delay", "1h"))
    cancelled = json.loads(atp(runner, "task", "cancel", task_id, "--json").stdout)
    assert (cancelled["task"]["id"], cancelled["state"]) == (task_id, "CANCELLED")
    dead = dead_task(store_url)
    requeued = json.loads(atp(runner, "dlq", "requeue", dead, "--json").stdout)
    assert [item["id"] for item in requeued["requeued"]] == [dead]
    assert requeued["skipped"] == []
    token = json.loads(atp(runner, "token", "create", "ci", "--scope", "read", "--json").stdout)
    assert token["id"] == "ci"
    assert token["token"]
    assert token["entry"]["scopes"] == ["read"]
    assert "hash" in token["entry"]


# -- plugins, processes, usage -------------------------------------------------------------


def test_plugins_lists_schemes_and_hooks(runner: CliRunner) -> None:
    shown = atp(runner, "plugins").stdout
    assert "atp.plugins.sqlite  (atp (built-in))" in shown
    assert "store: sqlite://" in shown
    assert "atp_make_store" in shown
    described = {p["name"]: p for p in json.loads(atp(runner, "plugins", "--json").stdout)}
    assert described["atp.plugins.memory"]["schemes"]["transport"] == ["memory"]


def test_server_without_tokens_is_refused_unless_auth_is_off(runner: CliRunner) -> None:
    assert_error(atp(runner, "server", "--port", "0"), 5, "needs tokens", "--no-auth")


def test_separate_processes_refuse_a_process_local_transport(runner: CliRunner) -> None:
    result = atp(runner, "worker", "examples.demo:app", ATP_TRANSPORT="memory://")
    assert_error(result, 5, "process-local", "atp dev")
    assert_error(atp(runner, "scheduler"), 5, "process-local")


@pytest.mark.parametrize(
    ("reference", "code", "fragment"),
    [
        ("examples.demo", 2, "MODULE:APP"),
        ("no_such_module:app", 2, "no module named 'no_such_module'"),
        ("examples.demo:nothing", 2, "has no 'nothing'"),
        ("examples.demo:log", 5, "not an atp App"),
    ],
)
def test_worker_app_errors(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, reference: str, code: int, fragment: str
) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])  # the repository root holds examples/
    assert_error(atp(runner, "worker", reference), code, fragment)


def test_the_app_comes_from_the_option_or_the_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])
    assert_error(atp(runner, "worker", "--app", "examples.demo:app"), 5, "process-local")
    assert_error(atp(runner, "worker", ATP_APP="examples.demo:nothing"), 2, "has no 'nothing'")


def test_dev_runs_a_worker_and_the_scheduler_on_a_local_platform(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Platform, list[object]]] = []

    async def fake_serve(platform: Platform, runnables: list[object]) -> None:
        served.append((platform, runnables))
        await platform.close()

    monkeypatch.setattr(_run, "serve", fake_serve)
    monkeypatch.chdir(Path(__file__).parents[2])
    result = atp(runner, "dev", "--concurrency", "4", "--no-console")
    assert result.exit_code == 0, result.output
    ((platform, (worker, scheduler)),) = served
    assert platform.local
    assert isinstance(worker, Worker)
    assert isinstance(scheduler, Scheduler)
    assert worker.concurrency == 4
    assert "orders.close" in worker.patterns
    assert "atp dev (pid" in result.stderr
    assert """atp publish orders.close '{"order_id":42}'""" in result.stderr


def test_worker_needs_an_app(runner: CliRunner) -> None:
    assert_error(atp(runner, "worker"), 2, "MODULE:APP")


def test_usage_errors(runner: CliRunner) -> None:
    assert_error(atp(runner, "frobnicate"), 2, "No such command")
    assert_error(atp(runner, "task", "get"), 2, "Missing argument")
    assert_error(atp(runner, "--log-level", "LOUD", "task", "ls"), 2, "--log-level")


def test_help_and_version(runner: CliRunner) -> None:
    assert "Exit codes" in atp(runner, "--help").stdout
    assert atp(runner, "--version").stdout.startswith("atp, version")


def test_main_exits_with_the_code(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["atp", "task", "get", "NOPE"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3


def test_every_error_kind_has_its_exit_code() -> None:
    cases = {
        errors.InvalidInput: 2,
        errors.PayloadTooLarge: 2,
        errors.NotFound: 3,
        errors.StateConflict: 4,
        errors.FencedOut: 4,
        errors.AlreadyExists: 4,
        errors.ConfigError: 5,
        errors.PluginError: 5,
        errors.BackendUnavailable: 6,
        errors.AtpError: 1,
    }
    assert {kind: exit_code(kind("x")) for kind in cases} == cases


# -- helpers of the long-running commands --------------------------------------------------


def test_the_banner_example_fits_the_handler() -> None:
    app = App()

    @app.task("orders.close")
    async def close(order_id: int, note: str, *, force: bool, retries: int = 3) -> None: ...

    (handler,) = app.registry
    assert example_payload(handler) == {"order_id": 42, "note": "text", "force": True}


class _Runner:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        if self.fail:
            raise errors.BackendUnavailable("gone")
        await stop.wait()
        self.stopped = True


async def test_serve_drains_on_sigterm(store_url: str) -> None:
    runners = [_Runner(), _Runner()]
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serve(platform(store_url), runners), 5)
    assert all(r.stopped for r in runners)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_serve_stops_the_others_when_one_fails(store_url: str) -> None:
    healthy = _Runner()
    with pytest.raises(errors.BackendUnavailable):
        await asyncio.wait_for(serve(platform(store_url), [healthy, _Runner(fail=True)]), 5)
    assert healthy.stopped


def test_stuck_handler_threads_do_not_hold_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(_serve, "_exit_now", exits.append)
    _serve.exit_past_stuck_threads(0)
    assert exits == []
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="atp-handler_0")
    stuck.start()
    try:
        _serve.exit_past_stuck_threads(0)
    finally:
        release.set()
        stuck.join()
    assert exits == [0]


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="DEBUG"))
    try:
        logging.getLogger("atp.test").info("hello %s", "there")
    finally:
        configure_logging(Settings(log_level="WARNING"))
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "hello there"
    assert line["level"] == "INFO"
    assert line["ts"].endswith("Z")


# -- token create and start-up probe (hardening: duplicate ids, damaged backends) -----------


def test_token_create_refuses_an_id_the_file_holds_and_changes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    first = atp(runner, "token", "create", "ci", "--scope", "read", "--file", str(tokens))
    assert first.exit_code == 0, first.output
    before = tokens.read_text()
    again = atp(runner, "token", "create", "ci", "--scope", "admin", "--file", str(tokens))
    assert_error(again, 4, "token id 'ci' is in", "choose another id")
    assert again.stdout == ""
    assert tokens.read_text() == before
    other = atp(runner, "token", "create", "cd", "--scope", "read", "--file", str(tokens))
    assert other.exit_code == 0, other.output
    assert len(ServerSettings(tokens_file=str(tokens)).token_book()) == 2


def test_a_store_that_cannot_be_used_stops_atp_dev_before_its_banner(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[object] = []

    async def fake_serve(platform: Platform, runnables: list[object]) -> None:
        served.append(runnables)

    monkeypatch.setattr(_run, "serve", fake_serve)
    monkeypatch.chdir(Path(__file__).parents[2])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    result = atp(runner, "dev", ATP_STORE=f"sqlite:///{junk}")
    assert_error(result, 5, "is not an SQLite database or is corrupt")
    assert served == []
    assert "atp dev (pid" not in result.stderr


def test_ctrl_c_exits_130_and_a_refused_confirmation_exits_1(monkeypatch, capsys):
    """click turns Ctrl-C into Abort under standalone_mode=False: the documented 130
    must still come out, and a "no" to a confirmation stays a plain failure."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("atp.adapters.cli._dlq.count_dead", interrupted)
    assert cli.main(["dlq", "purge", "--all"], standalone_mode=False) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr("click.confirm", lambda *a, **k: (_ for _ in ()).throw(click.Abort()))
    monkeypatch.setattr("atp.adapters.cli._dlq.count_dead", lambda *a, **k: 1)
    assert cli.main(["dlq", "purge", "--all"], standalone_mode=False) == 1
