"""``atp cron`` against a real SQLite store in a temporary folder."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import cli
from atp.adapters.cli._cron import _row
from atp.core.schedules import Schedule
from atp.sdk import SyncClient


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name in list(os.environ):
        if name.startswith("ATP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATP_STORE", f"sqlite:///{tmp_path / 'atp.db'}")
    yield CliRunner()
    logging.getLogger().setLevel(logging.WARNING)


def atp(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def listing(runner: CliRunner) -> list[dict[str, object]]:
    result = atp(runner, "cron", "ls", "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_add_then_ls_shows_the_next_three_ticks_in_the_schedules_zone(runner):
    added = atp(
        runner,
        "cron",
        "add",
        "nightly-purge",
        "30 3 * * *",
        "data.purge",
        "--payload",
        '{"days": 90}',
        "--tz",
        "Europe/Berlin",
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith("added nightly-purge: next tick ")
    (row,) = listing(runner)
    assert (row["name"], row["expression"], row["subject"]) == (
        "nightly-purge",
        "30 3 * * *",
        "data.purge",
    )
    assert (row["payload"], row["tz"], row["paused"]) == ({"days": 90}, "Europe/Berlin", False)
    walls = [datetime.fromtimestamp(t, ZoneInfo("Europe/Berlin")) for t in row["upcoming"]]
    assert len(walls) == 3
    assert all((w.hour, w.minute) == (3, 30) for w in walls)
    table = atp(runner, "cron", "ls").output.splitlines()
    assert table[0].split() == ["NAME", "EXPRESSION", "TZ", "NEXT", "LAST_FIRED", "STATE"]
    assert "nightly-purge" in table[1]
    assert table[1].rstrip().endswith("active")


def test_pause_resume_trigger_rm(runner):
    assert atp(runner, "cron", "add", "beat", "@hourly", "cron.beat").exit_code == 0
    assert atp(runner, "cron", "pause", "beat").output == "paused beat\n"
    assert listing(runner)[0]["paused"] is True
    assert atp(runner, "cron", "resume", "beat").output.startswith("resumed beat: next tick ")
    assert listing(runner)[0]["paused"] is False
    triggered = atp(runner, "cron", "trigger", "beat")
    assert triggered.exit_code == 0
    task = json.loads(atp(runner, "task", "get", triggered.output.strip(), "--json").output)
    assert task["task"]["schedule"] == "beat"
    assert atp(runner, "cron", "rm", "beat").output == "removed beat\n"
    assert listing(runner) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("add", "x", "61 * * * *", "a.b"), 2, "bad cron expression"),
        (("add", "x", "* * * * *", "a.b", "--tz", "Mars/Olympus"), 2, "unknown time zone"),
        (("add", "x", "* * * * *", "a.b", "--payload", "{nope"), 2, "--payload"),
        (("add", "bad name", "* * * * *", "a.b"), 2, "schedule name"),
        (("add", "taken", "* * * * *", "a.b"), 4, "exists already"),
        (("pause", "missing"), 3, "no schedule named 'missing'"),
        (("rm", "missing"), 3, "no schedule named 'missing'"),
        (("trigger", "missing"), 3, "no schedule named 'missing'"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(runner, args, code, message):
    assert atp(runner, "cron", "add", "taken", "0 * * * *", "a.b").exit_code == 0
    before = listing(runner)
    result = atp(runner, "cron", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert listing(runner) == before


def test_the_sync_client_manages_the_same_schedules(runner, tmp_path):
    with SyncClient.connect(f"sqlite:///{tmp_path / 'atp.db'}") as client:
        added = client.add_schedule("beat", "@daily", "cron.beat", {"k": 1}, tz="Asia/Tokyo")
        assert client.get_schedule("beat") == added
        assert client.pause_schedule("beat").paused
        assert not client.resume_schedule("beat").paused
        task_id = client.trigger_schedule("beat").id
        assert client.get(task_id).task.schedule == "beat"
        assert [s.name for s in client.list_schedules()] == ["beat"]
        client.remove_schedule("beat")
    assert listing(runner) == []


def test_ls_shows_every_time_with_its_offset_in_the_schedules_zone(runner):
    added = atp(runner, "cron", "add", "beat", "0 * * * *", "cron.beat", "--tz", "Asia/Kolkata")
    assert added.exit_code == 0, added.output
    (row,) = listing(runner)
    ticks = [datetime.fromtimestamp(t, ZoneInfo("Asia/Kolkata")) for t in row["upcoming"]]
    table = atp(runner, "cron", "ls").output.splitlines()
    first = f"{ticks[0]:%Y-%m-%d %H:%M}+05:30"
    assert first in table[1]
    assert f"{ticks[1]:%H:%M}+05:30" in table[1]


def test_next_and_last_fired_follow_one_convention_across_a_clock_change():
    summer = datetime(2030, 3, 31, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 01:30 CET
    schedule = Schedule(
        "beat", "30 * * * *", "cron.beat", tz="Europe/Berlin", last_fired_at=summer - 3600
    )
    row = _row(schedule, [summer, summer + 3600])
    assert row[3] == "2030-03-31 01:30+01:00, 03:30+02:00"  # 02:30 does not exist that day
    assert row[4] == "2030-03-31 00:30+01:00"
    assert _row(schedule.replace(last_fired_at=None), [])[3:5] == ("-", "-")


def test_every_command_answers_as_json(runner):
    def answer(*args: str) -> dict[str, object]:
        result = atp(runner, "cron", *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    added = answer("add", "beat", "@hourly", "cron.beat")
    assert (added["name"], added["paused"]) == ("beat", False)
    assert answer("pause", "beat")["paused"] is True
    assert answer("resume", "beat")["paused"] is False
    fired = answer("trigger", "beat")
    assert fired["created"] is True
    assert atp(runner, "task", "get", str(fired["id"])).exit_code == 0
    assert answer("rm", "beat") == {"removed": "beat"}
