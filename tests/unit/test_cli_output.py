"""How the command line renders: rich on a terminal, plain text piped, ``--json`` on every
command a script may read, progress bars, shell completion, banners."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable

import click
import pytest
from click.testing import CliRunner

from atp.adapters.cli import _output, cli
from atp.adapters.cli._banner import banner, example_input
from atp.adapters.cli._output import is_terminal, progress, table
from atp.adapters.cli._pages import Paging
from atp.core.settings import Settings
from atp.sdk.app import App

# Commands that print no answer a script reads, so they need no --json:
RUNS_FOREVER = {"dev", "worker", "scheduler", "server"}  # logs and a banner until stopped
PASSES_THROUGH = {"chaos"}  # hands its arguments to the chaos suites' own command line


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a real tty would."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def on_terminal(show: Callable[[], object]) -> str:
    """What ``show`` prints when stdout and stderr are a terminal."""
    stream = Terminal()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        show()
    return stream.getvalue()


ROWS = [("01AB", "orders.close", "DEAD"), ("01AC", "sms.send [x]", "SUCCEEDED")]


# -- tables --------------------------------------------------------------------------------


def test_a_piped_table_is_plain_aligned_text(capsys: pytest.CaptureFixture[str]) -> None:
    table(("ID", "SUBJECT", "STATE"), ROWS)
    assert capsys.readouterr().out == (
        "ID    SUBJECT       STATE\n01AB  orders.close  DEAD\n01AC  sms.send [x]  SUCCEEDED\n"
    )


def test_a_table_on_a_terminal_is_drawn_by_rich_in_colour() -> None:
    shown = on_terminal(lambda: table(("ID", "SUBJECT", "STATE"), ROWS))
    assert "\x1b[" in shown  # colour
    assert "─" in shown  # the rule under the headers
    assert "sms.send [x]" in shown  # cells are text, never rich markup
    assert "  01AB  orders.close" not in shown  # not the plain form


def test_no_color_keeps_the_drawing_without_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    shown = on_terminal(lambda: table(("ID", "SUBJECT", "STATE"), ROWS))
    assert "─" in shown
    assert "\x1b[1;31m" not in shown  # DEAD is not red


def test_a_dumb_terminal_gets_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_terminal(Terminal())
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(Terminal())
    shown = on_terminal(lambda: table(("ID", "SUBJECT", "STATE"), ROWS))
    assert shown.splitlines()[1] == "01AB  orders.close  DEAD"


# -- progress ------------------------------------------------------------------------------


def count_to_three() -> None:
    with progress(3, "requeueing") as advance:
        advance(1)
        advance(2)


def test_progress_draws_on_a_terminal_and_counts() -> None:
    shown = on_terminal(count_to_three)
    assert "requeueing" in shown
    assert "3/3" in shown


def test_progress_leaves_a_piped_stdout_alone() -> None:
    piped, terminal = io.StringIO(), Terminal()

    def publish_ids() -> None:
        with progress(2, "publishing") as advance:
            click.echo("01AB")
            advance(1)
            click.echo("01AC")
            advance(1)

    with contextlib.redirect_stdout(piped), contextlib.redirect_stderr(terminal):
        publish_ids()
    assert piped.getvalue() == "01AB\n01AC\n"
    assert "01AB" not in terminal.getvalue()
    assert "publishing" in terminal.getvalue()


def test_progress_draws_nothing_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress(None, "purging") as advance:
        advance(5)
    assert capsys.readouterr() == ("", "")


# -- --json on every command a script reads ------------------------------------------------


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command))
    return found


def test_every_command_that_answers_has_json() -> None:
    exempt = RUNS_FOREVER | PASSES_THROUGH
    missing = [
        name
        for name, command in _commands(cli)
        if name not in exempt
        and not any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params)
    ]
    assert missing == []
    assert exempt <= {name for name, _ in _commands(cli)}  # the allow-list is not stale


def test_the_paging_rule() -> None:
    def walks(limit: int | None = None, cursor: str | None = None, *flags: str) -> bool:
        return Paging(limit, cursor, "all" in flags, "ids" in flags, "json" in flags).walks

    assert not walks()  # a table: one page
    assert walks(None, None, "all")
    assert walks(None, None, "ids")  # scripts: everything
    assert walks(None, None, "json")
    assert not walks(5, None, "ids")  # one page asked for
    assert not walks(None, "c", "json")
    assert walks(5, None, "ids", "all")
    assert (Paging(None, None, False, False, False).size, Paging(7, None, *[False] * 3).size) == (
        50,
        7,
    )


# -- shell completion ----------------------------------------------------------------------


COMPLETION_MARKERS = {
    "bash": "complete -o nosort -F _atp_completion atp",
    "zsh": "#compdef atp",
    "fish": "complete --no-files --command atp",
}


@pytest.mark.parametrize("shell", sorted(COMPLETION_MARKERS))
def test_the_click_completion_recipe_prints_a_script(shell: str) -> None:
    env = {"_ATP_COMPLETE": f"{shell}_source"}
    result = CliRunner().invoke(cli, [], prog_name="atp", env=env)
    assert result.exit_code == 0, result.output
    assert COMPLETION_MARKERS[shell] in result.output


def test_completion_completes_commands() -> None:
    env = {"_ATP_COMPLETE": "bash_complete", "COMP_WORDS": "atp dlq re", "COMP_CWORD": "2"}
    result = CliRunner().invoke(cli, [], prog_name="atp", env=env)
    assert result.output.split() == ["plain,requeue"]


def test_the_help_says_how_to_turn_completion_on() -> None:
    assert "_ATP_COMPLETE=bash_source atp" in CliRunner().invoke(cli, ["--help"]).output


# -- banners -------------------------------------------------------------------------------


def _banner(app: App, capsys: pytest.CaptureFixture[str]) -> str:
    banner("dev", app, Settings(store="memory://"), app.registry.patterns())
    return capsys.readouterr().err


def test_a_workflow_app_banner_starts_a_run_with_an_input_that_fits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from examples.workflows.expense import app

    shown = _banner(app, capsys)
    expected = """atp workflow start expense.approve --input '{"amount":42,"by":"text"}'"""
    assert expected in shown
    assert "atp publish" not in shown  # every handler is a step: publishing one is no use


def test_the_input_sample_reads_the_keys_the_steps_use() -> None:
    from examples.workflows import etl, signup

    assert example_input(etl.app, etl.etl.definition) == {"day": "text"}
    assert example_input(signup.app, next(iter(signup.app.workflows.values()))) == {"email": "text"}


def test_a_task_app_banner_publishes_a_payload_that_fits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = App()

    @app.task("orders.close")
    async def close(order_id: int) -> None: ...

    @app.task("audit.>")
    async def audit(payload: object) -> None: ...

    shown = _banner(app, capsys)
    assert """atp publish orders.close '{"order_id":42}'""" in shown
    assert "workflow start" not in shown


def test_output_helpers_are_exported() -> None:
    assert {"is_terminal", "progress", "table"} <= set(_output.__all__)
    assert json.loads(_output.json_text({"a": 1})) == {"a": 1}
