"""``atp limit`` (a key rule's ``--weight`` among its budgets), ``atp pause``/``resume`` and
the flow options of ``atp publish`` (ADR 0038, 0039), against a real SQLite store in a
temporary folder."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import cli
from atp.core.flow.rules import Gates, Slot
from atp.core.flow.service import ledger_of
from atp.core.model import Dedup, DedupMode, State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Admission, Wait
from atp.core.service import TaskService
from atp.core.settings import Settings


@pytest.fixture
def runner(store_url: str) -> Iterator[CliRunner]:
    yield CliRunner()
    logging.getLogger().setLevel(logging.WARNING)


def atp(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def ok(runner: CliRunner, *args: str) -> str:
    result = atp(runner, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def status(runner: CliRunner) -> dict[str, Any]:
    return json.loads(ok(runner, "limit", "ls", "--json"))  # type: ignore[no-any-return]


def records(url: str) -> dict[str, TaskRecord]:
    async def run() -> dict[str, TaskRecord]:
        async with Platform.build(Settings(store=url)) as platform:
            page = await TaskService(platform).query(limit=1000)
            return {record.id: record for record in page.items}

    return asyncio.run(run())


def park(url: str, waits: Sequence[tuple[str, str]]) -> None:
    """Put tasks in waiter lists, as a worker does when a slot is full or a subject paused:
    each slot first gets one holder, with a limit of 1 (a slot with room would wake its
    waiter at once)."""

    async def run() -> None:
        async with Platform.build(Settings(store=url)) as platform:
            ledger, now = ledger_of(platform.store), platform.clock.now()
            slots = sorted({name for name, _ in waits if not name.startswith("p:")})
            holders = [
                Admission(f"holder-{i}", Gates(slots=(Slot(name, 1),)), now + 3600)
                for i, name in enumerate(slots)
            ]
            assert all(v.admitted for v in await ledger.admit(holders, now=now))
            await ledger.park(
                [Wait(name, task_id) for name, task_id in waits], now=now, reserve=60.0
            )

    asyncio.run(run())


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


# -- atp limit ---------------------------------------------------------------------------


def test_limits_are_set_listed_and_removed(runner):
    said = ok(runner, "limit", "set", "orders.*", "--concurrency", "3", "--rate", "10/s")
    assert said == "set subject:orders.*: concurrency 3, rate 10/s (burst 1)\n"
    keyed = ok(
        runner, "limit", "set", "customer:*", "--key", "--window", "100/m", "--rate", "5/30s",
        "--burst", "4", "--json",
    )  # fmt: skip
    stored = json.loads(keyed)
    assert {k: v for k, v in stored.items() if k != "updated_at"} == {
        "target": "customer:*",
        "key": True,
        "rate": {"count": 5, "per": 30.0},
        "burst": 4,
        "window": {"count": 100, "per": 60.0},
    }
    assert rows(ok(runner, "limit", "ls")) == [
        ["RULE", "CONCURRENCY", "RATE", "BURST", "WINDOW", "WEIGHT", "WAITING"],
        ["key:customer:*", "-", "5/30s", "4", "100/m", "-", "0"],
        ["subject:orders.*", "3", "10/s", "1", "-", "-", "0"],
    ]
    listed = status(runner)
    assert [limit["target"] for limit in listed["limits"]] == ["customer:*", "orders.*"]
    assert (listed["pauses"], listed["waiting"]) == ([], {})
    assert ok(runner, "limit", "rm", "customer:*", "--key") == "removed key:customer:*\n"
    assert [limit["target"] for limit in status(runner)["limits"]] == ["orders.*"]
    again = atp(runner, "limit", "rm", "customer:*", "--key")
    assert again.exit_code == 3
    assert "no limit on 'key:customer:*'" in again.stderr
    assert atp(runner, "limit", "rm", "orders.*", "--key").exit_code == 3  # a subject limit
    assert json.loads(ok(runner, "limit", "rm", "orders.*", "--json")) == {
        "removed": "subject:orders.*"
    }


def test_a_key_rule_takes_a_weight_alone_or_beside_a_budget(runner):
    said = ok(runner, "limit", "set", "tenant:*", "--key", "--weight", "3")
    assert said == "set key:tenant:*: weight 3\n"
    beside = ok(
        runner, "limit", "set", "tenant:big", "--key", "--concurrency", "2", "--weight",
        "1000", "--json",
    )  # fmt: skip
    assert {k: v for k, v in json.loads(beside).items() if k != "updated_at"} == {
        "target": "tenant:big",
        "key": True,
        "concurrency": 2,
        "weight": 1000,
    }
    assert rows(ok(runner, "limit", "ls"))[1:] == [
        ["key:tenant:*", "-", "-", "-", "-", "3", "0"],
        ["key:tenant:big", "2", "-", "-", "-", "1000", "0"],
    ]
    weights = {limit["target"]: limit["weight"] for limit in status(runner)["limits"]}
    assert weights == {"tenant:*": 3, "tenant:big": 1000}
    ok(runner, "limit", "set", "tenant:big", "--key", "--concurrency", "2")  # replaced whole
    (_, big) = status(runner)["limits"]
    assert "weight" not in big


def test_a_weight_on_a_subject_rule_says_it_is_for_key_rules(runner):
    result = atp(runner, "limit", "set", "orders.*", "--concurrency", "2", "--weight", "3")
    assert result.exit_code == 2
    assert "a weight is for key rules (--key)" in result.stderr
    assert status(runner)["limits"] == []


def test_set_replaces_the_whole_limit_of_its_target(runner):
    ok(runner, "limit", "set", "orders.*", "--concurrency", "3")
    ok(runner, "limit", "set", "orders.*", "--window", "7/h")
    (only,) = status(runner)["limits"]
    assert (only.get("concurrency"), only["window"]) == (None, {"count": 7, "per": 3600.0})


BAD_LIMITS = [
    ("orders.*",),  # no budget
    ("orders.*", "--concurrency", "0"),
    ("orders.*", "--concurrency", "many"),
    ("orders.*", "--concurrency", "2", "--burst", "3"),  # a burst needs a rate
    ("orders.*", "--rate", "10/q"),
    ("orders.*", "--rate", "0/s"),
    ("orders.*", "--window", "5/1000d"),
    ("orders..x", "--concurrency", "1"),
    ("a*b", "--key", "--concurrency", "1"),
    ("has space", "--key", "--concurrency", "1"),
    ("tenant:*", "--weight", "3"),  # a weight is for key rules
    ("orders.*", "--concurrency", "1", "--weight", "3"),
    ("tenant:*", "--key", "--weight", "0"),
    ("tenant:*", "--key", "--weight", "1001"),
    ("tenant:*", "--key", "--weight", "heavy"),
]


@pytest.mark.parametrize("args", BAD_LIMITS, ids=[" ".join(a) for a in BAD_LIMITS])
def test_a_bad_limit_exits_2_and_changes_nothing(runner, args):
    result = atp(runner, "limit", "set", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(("error:", "Usage:"))
    assert status(runner)["limits"] == []
    assert status(runner)["version"] == 0


def test_waiting_tasks_are_counted_under_the_rule_they_wait_for(runner, store_url):
    ok(runner, "limit", "set", "customer:*", "--key", "--concurrency", "2")
    ok(runner, "limit", "set", "customer:vip", "--key", "--concurrency", "5")
    ok(runner, "limit", "set", "orders.*", "--concurrency", "1")
    ok(runner, "pause", "payments.*")
    ids = [ok(runner, "publish", "orders.a", "--delay", "1h").strip() for _ in range(9)]
    park(
        store_url,
        [
            ("k:customer:1", ids[0]),
            ("k:customer:2", ids[1]),
            ("k:customer:vip", ids[2]),
            ("k:tenant:7", ids[3]),  # no limit names this key: one at a time
            ("k:tenant:8", ids[4]),
            ("s:orders.*", ids[5]),
            ("p:payments.a", ids[6]),
            ("p:payments.b", ids[7]),
            ("p:billing.a", ids[8]),  # no pause matches it any more
        ],
    )
    assert rows(ok(runner, "limit", "ls")) == [
        ["RULE", "CONCURRENCY", "RATE", "BURST", "WINDOW", "WEIGHT", "WAITING"],
        ["key:customer:*", "2", "-", "-", "-", "-", "2"],
        ["key:customer:vip", "5", "-", "-", "-", "-", "1"],
        ["subject:orders.*", "1", "-", "-", "-", "-", "1"],
        ["pause:payments.*", "paused", "-", "-", "-", "-", "2"],
        ["key:(no", "limit)", "1", "each", "-", "-", "-", "-", "2"],
    ]
    waiting = status(runner)["waiting"]
    assert waiting["k:customer:1"] == 1
    assert waiting["p:billing.a"] == 1
    assert sum(waiting.values()) == 9


# -- atp pause / resume ------------------------------------------------------------------


def test_pause_and_resume_wake_what_the_pause_held(runner, store_url):
    assert ok(runner, "pause", "orders.*") == "paused orders.*\n"
    assert ok(runner, "pause", "orders.*") == "orders.* was paused already\n"
    assert json.loads(ok(runner, "pause", "orders.*", "--json")) == {
        "pattern": "orders.*",
        "changed": False,
    }
    held = [ok(runner, "publish", "orders.a", "--delay", "1h").strip() for _ in range(2)]
    park(store_url, [("p:orders.a", task_id) for task_id in held])
    shown = rows(ok(runner, "limit", "ls"))[1]
    assert shown == ["pause:orders.*", "paused", "-", "-", "-", "-", "2"]
    assert ok(runner, "resume", "orders.*") == "resumed orders.*: 2 tasks woke\n"
    found = records(store_url)
    assert all(found[task_id].task.run_at < found[task_id].task.created_at + 60 for task_id in held)
    listed = status(runner)
    assert (listed["pauses"], listed["waiting"]) == ([], {})
    again = atp(runner, "resume", "orders.*")
    assert again.exit_code == 3
    assert "'orders.*' is not paused" in again.stderr


def test_resume_json_counts_the_tasks_woken(runner):
    ok(runner, "pause", "orders.>")
    assert json.loads(ok(runner, "resume", "orders.>", "--json")) == {
        "pattern": "orders.>",
        "woken": 0,
    }


@pytest.mark.parametrize("command", ["pause", "resume"])
@pytest.mark.parametrize("pattern", ["orders..x", ">.x", "a b"])
def test_a_bad_pattern_exits_2(runner, command, pattern):
    result = atp(runner, command, pattern)
    assert result.exit_code == 2, result.output
    assert status(runner)["pauses"] == []


# -- atp publish and atp task get --------------------------------------------------------


def test_publish_puts_the_task_under_its_keys_and_task_get_shows_them(runner, store_url):
    task_id = ok(
        runner, "publish", "orders.a", "--concurrency-key", "customer:42", "--rate-key",
        "tenant:7", "--group-key", "tenant:8", "--idempotency-key", "order-1", "--unique",
    ).strip()  # fmt: skip
    task = records(store_url)[task_id].task
    assert (task.concurrency_key, task.rate_key, task.group_key) == (
        "customer:42",
        "tenant:7",
        "tenant:8",
    )
    assert task.dedup == Dedup(DedupMode.UNIQUE)
    shown = dict(line.split(None, 1) for line in ok(runner, "task", "get", task_id).splitlines())
    assert (shown["concurrency_key"], shown["rate_key"], shown["group_key"]) == (
        "customer:42",
        "tenant:7",
        "tenant:8",
    )
    assert shown["dedup"] == "unique"
    record = json.loads(ok(runner, "task", "get", task_id, "--json"))
    assert record["task"]["dedup"] == {"mode": "unique"}
    assert record["task"]["concurrency_key"] == "customer:42"
    assert record["task"]["group_key"] == "tenant:8"


def test_a_plain_task_shows_no_keys(runner):
    task_id = ok(runner, "publish", "orders.a").strip()
    shown = dict(line.split(None, 1) for line in ok(runner, "task", "get", task_id).splitlines())
    keys = ("concurrency_key", "rate_key", "group_key", "dedup")
    assert [shown[name] for name in keys] == ["-", "-", "-", "-"]


def test_a_unique_key_held_by_a_queued_task_exits_4_naming_it(runner, store_url):
    args = ("publish", "orders.a", "--idempotency-key", "u", "--unique")
    first = ok(runner, *args).strip()
    again = atp(runner, *args)
    assert again.exit_code == 4
    assert f"held by task {first}, still queued or running" in again.stderr
    assert list(records(store_url)) == [first]


def test_debounce_replaces_the_pending_task(runner, store_url):
    args = ("publish", "orders.a", "--idempotency-key", "d", "--debounce", "30s")
    first = ok(runner, *args).strip()
    result = atp(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["replaced"], answer["created"]) == (first, True)
    found = records(store_url)
    assert found[first].state is State.CANCELLED
    assert found[answer["id"]].task.run_at == pytest.approx(answer["run_at"])
    shown = atp(runner, *args)
    assert f"replaced: {answer['id']} was pending and is cancelled" in shown.stderr


def test_throttle_answers_the_first_task_within_the_period(runner):
    args = ("publish", "orders.a", "--idempotency-key", "t", "--throttle", "1h")
    first = ok(runner, *args, "1")
    again = atp(runner, *args, "2")
    assert (again.exit_code, again.stdout) == (0, first)
    assert "existing" in again.stderr


BAD_PUBLISHES = [
    ("--idempotency-key", "k", "--debounce", "5s", "--throttle", "5s"),
    ("--idempotency-key", "k", "--unique", "--debounce", "5s"),
    ("--unique",),  # no key to be unique on
    ("--idempotency-key", "k", "--debounce", "5s", "--delay", "1m"),
    ("--idempotency-key", "k", "--debounce", "soon"),
    ("--concurrency-key", "has space"),
    ("--rate-key", "a*"),
    ("--concurrency-key", "x" * 201),
    ("--group-key", "tenant *"),
    ("--group-key", "tenant:*"),
    ("--group-key", ""),
]


@pytest.mark.parametrize("args", BAD_PUBLISHES, ids=range(len(BAD_PUBLISHES)))
def test_bad_flow_options_exit_2_and_publish_nothing(runner, store_url, args):
    result = atp(runner, "publish", "orders.a", *args)
    assert result.exit_code == 2, result.output
    assert records(store_url) == {}


# -- atp publish --file ------------------------------------------------------------------


def write_lines(path: Path, lines: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_lines_carry_keys_and_dedup_over_the_defaults(runner, store_url, tmp_path):
    lines: list[dict[str, Any]] = [
        {"idempotency_key": "a", "concurrency_key": "customer:1", "group_key": "tenant:1"},
        {"idempotency_key": "b", "rate_key": "tenant:2", "dedup": {"mode": "unique"}},
        {"idempotency_key": "c", "dedup": {"mode": "debounce", "period": 45}},
        {"idempotency_key": "d", "dedup": {"mode": "sometimes"}},
        {"idempotency_key": "e", "dedup": {"mode": "throttle"}},  # no period
        {"idempotency_key": "f", "concurrency_key": "a b"},
        {"idempotency_key": "g", "group_key": "tenant:*"},
    ]
    source = write_lines(tmp_path / "in.jsonl", lines)
    result = atp(
        runner, "publish", "orders.a", "--file", source.name, "--throttle", "1h",
        "--concurrency-key", "default:1", "--group-key", "default:2", "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    published = [json.loads(line) for line in result.stdout.splitlines()[:-1]]
    assert [row["line"] for row in published] == [1, 2, 3]
    tasks = {row["line"]: records(store_url)[row["id"]].task for row in published}
    assert (tasks[1].concurrency_key, tasks[1].dedup) == (
        "customer:1",
        Dedup(DedupMode.THROTTLE, 3600.0),
    )
    assert (tasks[2].concurrency_key, tasks[2].rate_key) == ("default:1", "tenant:2")
    assert [tasks[n].group_key for n in (1, 2, 3)] == ["tenant:1", "default:2", "default:2"]
    assert tasks[2].dedup == Dedup(DedupMode.UNIQUE)
    assert tasks[3].dedup == Dedup(DedupMode.DEBOUNCE, 45.0)
    failed = report(tmp_path / "in.failed.jsonl")
    assert [line["_failed"]["line"] for line in failed] == [4, 5, 6, 7]


def test_a_file_line_whose_unique_key_is_held_fails_alone(runner, store_url, tmp_path):
    held = ok(runner, "publish", "orders.a", "--idempotency-key", "u", "--unique").strip()
    lines: list[dict[str, Any]] = [
        {"idempotency_key": "x"},
        {"idempotency_key": "u", "dedup": {"mode": "unique"}},
        {"idempotency_key": "y"},
    ]
    source = write_lines(tmp_path / "in.jsonl", lines)
    result = atp(runner, "publish", "orders.a", "--file", source.name)
    assert result.exit_code == 1, result.output
    (failed,) = [
        json.loads(line) for line in (tmp_path / "in.failed.jsonl").read_text().splitlines()
    ]
    assert failed["_failed"]["line"] == 2
    assert failed["_failed"]["error"] == (
        f"unique key 'u' is held by task {held}, still queued or running"
    )
    assert len(records(store_url)) == 3
