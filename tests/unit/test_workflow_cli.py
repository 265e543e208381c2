"""``atp workflow`` against a real SQLite store in a temporary folder."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import cli

DEFINITION = {
    "name": "expense.approve",
    "version": 1,
    "steps": [
        {"name": "expense.check", "subject": "expense.check"},
        {"name": "decision", "kind": "signal", "signal": "decision", "after": ["expense.check"]},
        {
            "name": "expense.pay",
            "subject": "expense.pay",
            "after": ["decision"],
            "when": {"path": "approved", "op": "eq", "value": True},
        },
    ],
}


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name in list(os.environ):
        if name.startswith("ATP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATP_STORE", f"sqlite:///{tmp_path / 'atp.db'}")
    yield CliRunner()
    logging.getLogger().setLevel(logging.WARNING)


def atp(runner: CliRunner, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)


def test_register_start_inspect_signal_and_cancel(runner: CliRunner) -> None:
    registered = atp(runner, "workflow", "register", "-", stdin=json.dumps(DEFINITION))
    assert (registered.exit_code, registered.output) == (0, "registered expense.approve v1\n")
    again = atp(runner, "workflow", "register", json.dumps(DEFINITION))
    assert again.output == "unchanged expense.approve v1\n"
    assert "expense.approve  1        3" in atp(runner, "workflow", "ls").output

    run_id = atp(runner, "workflow", "start", "expense.approve", "--input", '{"amount": 5}')
    run_id = run_id.output.strip()
    shown = json.loads(atp(runner, "workflow", "get", run_id, "--json").output)
    assert shown["input"] == {"amount": 5}
    assert shown["steps"]["expense.check"]["state"] == "ACTIVE"
    assert run_id in atp(runner, "workflow", "runs", "--state", "running").output

    signalled = atp(runner, "workflow", "signal", run_id, "decision", "--payload", "{}")
    assert signalled.exit_code == 0, signalled.output
    twice = atp(runner, "workflow", "signal", run_id, "decision")
    assert twice.exit_code == 4
    assert "already" in twice.output
    assert atp(runner, "workflow", "cancel", run_id).output == f"cancelled {run_id}\n"
    table = atp(runner, "workflow", "get", run_id).output
    assert "CANCELLED" in table.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("workflow", "start", "nope"), 3, "no workflow 'nope'"),
        (("workflow", "get", "nope"), 3, "no workflow run"),
        (("workflow", "register", '{"name": "x", "version": 1, "steps": []}'), 2, "no steps"),
        (("workflow", "register", "{not json"), 2, "not valid JSON"),
        (
            (
                "workflow",
                "register",
                json.dumps(
                    {
                        **DEFINITION,
                        "steps": [
                            {"name": "a", "subject": "x.a", "after": ["b"]},
                            {"name": "b", "subject": "x.b", "after": ["a"]},
                        ],
                    }
                ),
            ),
            2,
            "cycle",
        ),
    ],
)
def test_bad_input_exits_with_its_code(
    runner: CliRunner, args: tuple[str, ...], code: int, message: str
) -> None:
    result = atp(runner, *args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_every_command_answers_as_json_and_runs_walk_every_page(runner: CliRunner) -> None:
    def answer(*args: str, stdin: str | None = None) -> dict[str, object]:
        result = atp(runner, "workflow", *args, "--json", stdin=stdin)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    registered = answer("register", "-", stdin=json.dumps(DEFINITION))
    assert registered == {"name": "expense.approve", "version": 1, "created": True}
    started = [answer("start", "expense.approve", "--input", "{}")["id"] for _ in range(3)]
    signalled = answer("signal", str(started[0]), "decision", "--payload", '{"approved": false}')
    assert signalled["id"] == started[0]
    assert answer("cancel", str(started[1]))["state"] == "CANCELLED"
    runs = answer("runs")
    assert [run["id"] for run in runs["items"]] == started[::-1]
    assert runs["next_cursor"] is None
    page = answer("runs", "--limit", "2")
    assert len(page["items"]) == 2
    rest = atp(runner, "workflow", "runs", "--cursor", str(page["next_cursor"]), "--ids")
    assert rest.output.split() == [started[0]]
    table = atp(runner, "workflow", "runs", "--limit", "1")
    assert len(table.stdout.splitlines()) == 2
    assert "more: --cursor" in table.stderr
