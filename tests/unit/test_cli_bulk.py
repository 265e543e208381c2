"""``atp publish --file``: JSON Lines in batches, a report of what failed, re-runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import _bulk, cli
from atp.core.errors import BackendUnavailable
from atp.core.model import TaskRecord
from atp.core.platform import Platform
from atp.core.service import Published, PublishRequest, TaskService
from atp.core.settings import Settings

BAD_LINES = {
    11: "not json {",
    500: json.dumps({"subject": "orders..close", "payload": {"n": 500}}),
    1100: json.dumps({"subject": "orders.close", "dealy": "5m"}),
}
FIXES = {11: {"subject": "orders.close"}, 500: {"subject": "orders.close"}, 1100: {"delay": "5m"}}


@pytest.fixture
def runner(store_url: str) -> CliRunner:
    return CliRunner()


def atp(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(cli, list(args), input=input, catch_exceptions=False)


def records(url: str) -> list[TaskRecord]:
    async def run() -> list[TaskRecord]:
        async with Platform.build(Settings(store=url)) as platform:
            service, found, cursor = TaskService(platform), [], None
            while True:
                page = await service.query(cursor=cursor, limit=1000)
                found.extend(page.items)
                if (cursor := page.next_cursor) is None:
                    return found

    return asyncio.run(run())


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def task_line(number: int, **fields: Any) -> str:
    return json.dumps(
        {"subject": "orders.close", "payload": {"n": number}, "idempotency_key": f"k{number}"}
        | fields
    )


def tasks_file(path: Path, count: int = 1200) -> Path:
    lines = [BAD_LINES.get(n) or task_line(n) for n in range(1, count + 1)]
    return write_lines(path, lines)


def report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fix(failed: dict[str, Any]) -> str:
    """The report line with the error mended: the line a person would write back."""
    number = failed["_failed"]["line"]
    fields = {k: v for k, v in failed.items() if k not in ("_failed", "dealy")}
    return task_line(number, **fields | FIXES[number])


@contextmanager
def counting_publishes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The sizes of the TaskService.publish calls made inside the block."""
    sizes: list[int] = []
    real = TaskService.publish

    async def publish(self: TaskService, requests: Sequence[PublishRequest]) -> list[Published]:
        sizes.append(len(requests))
        return await real(self, requests)

    monkeypatch.setattr(TaskService, "publish", publish)
    yield sizes
    monkeypatch.setattr(TaskService, "publish", real)


def refusing(error: BaseException) -> Callable[..., Any]:
    async def publish(self: TaskService, requests: Sequence[PublishRequest]) -> list[Published]:
        raise error

    return publish


# -- the good lines are published, the bad ones reported, and the report re-runs ------------


def test_bad_lines_go_to_the_report_and_the_others_are_published(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = tasks_file(tmp_path / "tasks.jsonl")
    result = atp(runner, "publish", "--file", source.name)
    assert result.exit_code == 1, result.output
    assert len(records(store_url)) == 1197
    failed = report(tmp_path / "tasks.failed.jsonl")
    assert sorted(line["_failed"]["line"] for line in failed) == [11, 500, 1100]
    errors = {line["_failed"]["line"]: line["_failed"]["error"] for line in failed}
    assert "JSON" in errors[11]
    assert "empty token" in errors[500]
    assert "did you mean 'delay'" in errors[1100]
    assert "published 1197 of 1200 lines" in result.stderr
    assert "failed 3 -> tasks.failed.jsonl" in result.stderr


def test_the_fixed_report_publishes_the_rest_and_nothing_twice(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = tasks_file(tmp_path / "tasks.jsonl")
    atp(runner, "publish", "--file", source.name)
    report_file = tmp_path / "tasks.failed.jsonl"
    fixed = write_lines(report_file, [fix(line) for line in report(report_file)])
    rerun = atp(runner, "publish", "--file", fixed.name)
    assert rerun.exit_code == 0, rerun.output
    assert "published 3 of 3 lines" in rerun.stderr
    again = atp(runner, "publish", "--file", "all.jsonl", input=None)
    assert again.exit_code == 2  # no such file: click says so, nothing is read
    source.write_text("".join(task_line(n) + "\n" for n in range(1, 1201)))
    whole = atp(runner, "publish", "--file", source.name)
    assert whole.exit_code == 0, whole.output
    assert "(1200 existing" in whole.stderr
    found = records(store_url)
    assert len(found) == 1200
    assert len({r.task.idempotency_key for r in found}) == 1200
    assert not (tmp_path / "tasks.failed.jsonl").exists()  # the stale report went with it


def test_a_report_line_that_was_not_json_is_read_as_its_text(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["{", task_line(2)])
    atp(runner, "publish", "--file", source.name)
    (failed,) = report(tmp_path / "in.failed.jsonl")
    assert failed == {"_failed": {"line": 1, "error": failed["_failed"]["error"], "text": "{"}}
    failed["_failed"]["text"] = task_line(1)  # mended in place
    mended = write_lines(tmp_path / "in.failed.jsonl", [json.dumps(failed)])
    assert atp(runner, "publish", "--file", mended.name).exit_code == 0
    assert len(records(store_url)) == 2


def test_a_bad_line_costs_a_few_calls_not_one_per_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [task_line(n) for n in range(1, 1025)]
    lines[700] = json.dumps({"subject": "orders.close", "max_attempts": 0})
    source = write_lines(tmp_path / "in.jsonl", lines)
    with counting_publishes(monkeypatch) as sizes:
        result = atp(runner, "publish", "--file", source.name)
    assert result.exit_code == 1
    assert (
        "max_attempts must be 1 to" in report(tmp_path / "in.failed.jsonl")[0]["_failed"]["error"]
    )
    assert sizes[0] == 1024
    assert len(sizes) <= 2 * 10 + 1  # halving: two calls per level of a 1024-line batch


# -- input: stdin, defaults, empty ----------------------------------------------------------


def test_stdin_needs_a_report_path(runner: CliRunner, store_url: str, tmp_path: Path) -> None:
    text = task_line(1) + "\n" + "[1]\n"
    refused = atp(runner, "publish", "--file", "-", input=text)
    assert refused.exit_code == 2
    assert "--failed" in refused.stderr
    assert records(store_url) == []
    result = atp(runner, "publish", "--file", "-", "--failed", "out.jsonl", input=text)
    assert result.exit_code == 1
    assert len(records(store_url)) == 1
    (failed,) = report(tmp_path / "out.jsonl")
    assert failed["_failed"]["line"] == 2
    assert "must be a JSON object" in failed["_failed"]["error"]


def test_the_command_line_gives_defaults_that_a_line_overrides(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    overrides = {
        "subject": "sms.send",
        "max_attempts": 9,
        "priority": -1,
        "headers": {"b": "2", "a": "9"},
        "run_at": when.isoformat(),
        "timeout": "2m",
    }
    nulls = {"payload": "plain", "priority": None, "delay": None, "headers": None}
    lines = [json.dumps(nulls), json.dumps({"payload": "own"} | overrides)]
    source = write_lines(tmp_path / "in.jsonl", lines)
    args = ("--max-attempts", "3", "--priority", "2", "--header", "a=1", "--delay", "1h")
    result = atp(runner, "publish", "orders.close", "--file", source.name, *args)
    assert result.exit_code == 0, result.output
    by_payload = {r.task.payload: r.task for r in records(store_url)}
    plain, own = by_payload["plain"], by_payload["own"]
    assert (plain.subject, plain.max_attempts, plain.priority) == ("orders.close", 3, 2)
    assert plain.headers["a"] == "1"
    assert plain.run_at - plain.created_at == pytest.approx(3600)
    assert plain.timeout is None
    assert (own.subject, own.max_attempts, own.priority) == ("sms.send", 9, -1)
    assert (own.headers["a"], own.headers["b"]) == ("9", "2")
    assert own.run_at == when.timestamp()
    assert own.timeout == 120


def test_a_line_that_is_not_utf8_fails_alone_and_a_bom_is_ignored(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + task_line(1).encode() + b'\n{"subject": "a\xff"}\n')
    assert atp(runner, "publish", "--file", source.name).exit_code == 1
    (failed,) = report(tmp_path / "in.failed.jsonl")
    assert failed["_failed"]["line"] == 2
    assert "not UTF-8" in failed["_failed"]["error"]
    assert len(records(store_url)) == 1


def test_a_report_that_cannot_be_written_is_refused_first(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [task_line(1)])
    result = atp(runner, "publish", "--file", source.name, "--failed", "no/such/dir/f.jsonl")
    assert result.exit_code == 2
    assert "cannot write the report" in result.stderr
    assert records(store_url) == []


def test_a_line_without_subject_needs_the_argument(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps({"payload": 1})])
    assert atp(runner, "publish", "--file", source.name).exit_code == 1
    (failed,) = report(tmp_path / "in.failed.jsonl")
    assert "no subject" in failed["_failed"]["error"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("orders.close", "{}"), "PAYLOAD_JSON"),
        (("--idempotency-key", "k"), "--idempotency-key"),
        (("--failed", "in.jsonl"), "is the input file"),
    ],
)
def test_options_that_name_one_task_do_not_go_with_file(
    runner: CliRunner, store_url: str, tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [task_line(1)])
    result = atp(runner, "publish", "--file", source.name, *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert records(store_url) == []
    assert source.read_text() == task_line(1) + "\n"


def test_publish_without_subject_or_file_is_a_usage_error(runner: CliRunner) -> None:
    result = atp(runner, "publish")
    assert result.exit_code == 2
    assert "Missing argument 'SUBJECT'" in result.stderr


def test_an_empty_file_publishes_nothing(runner: CliRunner, store_url: str, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", ["", "   "])
    result = atp(runner, "publish", "--file", source.name, "--json")
    assert result.exit_code == 0, result.output
    assert "published 0 of 0 lines" in result.stderr
    assert json.loads(result.stdout)["summary"]["published"] == 0
    assert not (tmp_path / "in.failed.jsonl").exists()


# -- output ---------------------------------------------------------------------------------


def test_json_prints_a_line_per_task_and_a_summary(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [task_line(1), "7", task_line(3)])
    first = atp(runner, "publish", "--file", source.name, "--json")
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [row["line"] for row in rows[:-1]] == [1, 3]
    assert all(row["created"] is True and row["id"] for row in rows[:-1])
    assert rows[-1]["summary"] | {"seconds": 0} == {
        "lines": 3,
        "published": 2,
        "existing": 0,
        "uncertain": 0,
        "failed": 1,
        "unavailable": 0,
        "report": "in.failed.jsonl",
        "seconds": 0,
    }
    again = atp(runner, "publish", "--file", source.name, "--json")
    rows_again = [json.loads(line) for line in again.stdout.splitlines()]
    assert [row["id"] for row in rows_again[:-1]] == [row["id"] for row in rows[:-1]]
    assert rows_again[-1]["summary"]["existing"] == 2


def test_the_progress_bar_counts_every_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {"advanced": 0}

    @contextmanager
    def progress(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
        seen["total"] = total

        def advance(n: int) -> None:
            seen["advanced"] += n

        yield advance

    monkeypatch.setattr(_bulk, "progress", progress)
    monkeypatch.setattr(_bulk, "is_terminal", lambda stream: True)
    source = tmp_path / "in.jsonl"
    source.write_text(f"{task_line(1)}\n\n[]\n{task_line(4)}")  # blank, bad, no final newline
    atp(runner, "publish", "--file", source.name)
    assert seen == {"total": 4, "advanced": 4}
    atp(runner, "publish", "--file", "-", "--failed", "f.jsonl", input=task_line(1))
    assert seen["total"] is None


def test_a_key_reused_with_another_payload_fails_that_line_only(
    runner: CliRunner, store_url: str, tmp_path: Path
) -> None:
    atp(runner, "publish", "orders.close", '{"n": 2}', "--idempotency-key", "k2")
    lines = [task_line(1), task_line(2, payload="other"), task_line(3)]
    source = write_lines(tmp_path / "in.jsonl", lines)
    result = atp(runner, "publish", "--file", source.name)
    assert result.exit_code == 1, result.output
    (failed,) = report(tmp_path / "in.failed.jsonl")
    assert failed["_failed"]["line"] == 2
    assert "belongs to task" in failed["_failed"]["error"]
    assert "another payload" in failed["_failed"]["error"]
    assert len(records(store_url)) == 3
    assert "2 of them beside a key conflict" in result.stderr
    again = atp(runner, "publish", "--file", source.name, "--json")
    rows = [json.loads(line) for line in again.stdout.splitlines()]
    assert [(row["line"], row["created"]) for row in rows[:-1]] == [(1, None), (3, None)]
    assert rows[-1]["summary"]["uncertain"] == 2


# -- an unavailable backend -----------------------------------------------------------------


def test_an_unavailable_backend_sends_every_line_to_the_report(
    runner: CliRunner, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bulk, "MAX_BATCH", 10)
    source = write_lines(tmp_path / "in.jsonl", [task_line(n) for n in range(1, 101)])
    calls: list[int] = []

    async def down(self: TaskService, requests: Sequence[PublishRequest]) -> list[Published]:
        calls.append(len(requests))
        raise BackendUnavailable("redis: connection refused")

    real = TaskService.publish
    monkeypatch.setattr(TaskService, "publish", down)
    result = atp(runner, "publish", "--file", source.name)
    assert result.exit_code == 6, result.output
    assert calls == [10] * _bulk.GIVE_UP_AFTER  # then the rest is not tried
    failed = report(tmp_path / "in.failed.jsonl")
    assert [line["_failed"]["line"] for line in failed] == list(range(1, 101))
    assert all("backend unavailable" in line["_failed"]["error"] for line in failed)
    assert "100 as a backend was unavailable" in result.stderr
    monkeypatch.setattr(TaskService, "publish", real)
    moved = tmp_path / "retry.jsonl"
    (tmp_path / "in.failed.jsonl").rename(moved)
    assert atp(runner, "publish", "--file", moved.name).exit_code == 0
    assert len(records(store_url)) == 100


def test_a_batch_between_good_ones_is_retried_by_the_report(
    runner: CliRunner, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bulk, "MAX_BATCH", 10)
    source = write_lines(tmp_path / "in.jsonl", [task_line(n) for n in range(1, 31)])
    real = TaskService.publish
    calls: list[int] = []

    async def blip(self: TaskService, requests: Sequence[PublishRequest]) -> list[Published]:
        calls.append(len(calls))
        if len(calls) == 2:
            raise BackendUnavailable("a blip")
        return await real(self, requests)

    monkeypatch.setattr(TaskService, "publish", blip)
    assert atp(runner, "publish", "--file", source.name).exit_code == 6
    failed = report(tmp_path / "in.failed.jsonl")
    assert [line["_failed"]["line"] for line in failed] == list(range(11, 21))
    assert len(records(store_url)) == 20


@pytest.mark.parametrize(
    ("error", "why"), [(asyncio.CancelledError(), "interrupted"), (OSError(), "stopped by OSError")]
)
async def test_an_interrupted_batch_goes_to_the_report(
    tmp_path: Path, error: BaseException, why: str
) -> None:
    class Stuck:
        async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
            raise error

    report_file = _bulk.Report(tmp_path / "r.jsonl")
    tally = _bulk.Tally()
    lines = iter([_bulk.Line(1, task_line(1)), _bulk.Line(2, task_line(2))])
    with pytest.raises(type(error)):
        await _bulk.publish_lines(
            Stuck(),  # type: ignore[arg-type]
            lines,
            _bulk.Defaults(),
            report_file,
            tally,
            lambda n: None,
            as_json=False,
        )
    report_file.close(finished=False)
    failed = report(tmp_path / "r.jsonl")
    assert [line["_failed"]["line"] for line in failed] == [1, 2]
    assert failed[0]["_failed"]["error"] == f"{why}: this line may have been published"
    assert tally.interrupted
    assert "interrupted" in _bulk.summary(tally, report_file)


def test_lines_are_counted_cheaply(tmp_path: Path) -> None:
    assert _bulk.count_lines(str(write_lines(tmp_path / "a", ["1", "2"]))) == 2
    (tmp_path / "b").write_bytes(b"1\n2")
    assert _bulk.count_lines(str(tmp_path / "b")) == 2
    (tmp_path / "c").write_bytes(b"")
    assert _bulk.count_lines(str(tmp_path / "c")) == 0
    assert _bulk.count_lines("-") is None


def test_the_report_goes_beside_the_input(tmp_path: Path) -> None:
    assert _bulk.report_path("data/tasks.jsonl", None) == Path("data/tasks.failed.jsonl")
    assert _bulk.report_path("tasks.txt", None) == Path("tasks.txt.failed.jsonl")
    assert _bulk.report_path("-", "x.jsonl") == Path("x.jsonl")


def test_priority_help_says_what_it_does_today(runner: CliRunner) -> None:
    text = " ".join(atp(runner, "publish", "--help").stdout.split())
    assert "Higher first among tasks due at the same instant" in text
    assert "Redis and NATS in publish order" in text


def test_every_batch_goes_over_one_platform(
    runner: CliRunner, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bulk, "MAX_BATCH", 10)
    built: list[Platform] = []
    real = Platform.build

    def build(*args: Any, **kwargs: Any) -> Platform:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(Platform, "build", build)
    source = write_lines(tmp_path / "in.jsonl", [task_line(n) for n in range(1, 36)])
    with counting_publishes(monkeypatch) as sizes:
        assert atp(runner, "publish", "--file", source.name).exit_code == 0
    assert sizes == [10, 10, 10, 5]
    assert len(built) == 1
