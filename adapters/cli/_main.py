"""The ``atp`` command group: global options, the commands, and how failures are reported."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from atp.adapters.cli._chaos import chaos
from atp.adapters.cli._context import Options
from atp.adapters.cli._cron import cron
from atp.adapters.cli._dlq import dlq
from atp.adapters.cli._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    exit_code,
    report,
    report_unexpected,
)
from atp.adapters.cli._fleet import breakers, workers
from atp.adapters.cli._flow import limit, pause, resume
from atp.adapters.cli._outbox import outbox
from atp.adapters.cli._plugins import plugins
from atp.adapters.cli._run import dev, scheduler, worker
from atp.adapters.cli._server import server, token
from atp.adapters.cli._tasks import publish, task
from atp.adapters.cli._workflows import workflow
from atp.core.errors import AtpError

__all__ = ["cli", "main"]

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)
EPILOG = (
    "Exit codes: 0 ok, 1 failure, 2 bad input or usage, 3 not found, 4 state conflict, "
    "5 configuration, 6 backend unavailable, 130 interrupted.\n\n"
    "Output: tables and progress bars on a terminal, plain text when piped (NO_COLOR and "
    "TERM=dumb are honoured); --json where a script reads the answer.\n\n"
    "\b\nShell completion (add the line to your shell's rc file):\n"
    '  bash: eval "$(_ATP_COMPLETE=bash_source atp)"\n'
    '  zsh:  eval "$(_ATP_COMPLETE=zsh_source atp)"\n'
    "  fish: _ATP_COMPLETE=fish_source atp | source"
)


class AtpGroup(click.Group):
    """A click group that reports every failure as one ``error:`` line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line and exit with the documented code; never a traceback."""
        code = _run(self, args, prog_name or "atp", complete_var, extra)
        if not standalone_mode:
            return code
        sys.exit(code)


def _run(
    group: click.Group,
    args: Sequence[str] | None,
    prog_name: str,
    complete_var: str | None,
    extra: dict[str, Any],
) -> int:
    try:
        result = click.Group.main(group, args, prog_name, complete_var, False, **extra)
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        report(exc.format_message())
        return exc.exit_code
    except click.ClickException as exc:
        report(exc.format_message())
        return exc.exit_code
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            report("interrupted")
            return EXIT_INTERRUPTED
        report("aborted")
        return EXIT_FAILURE
    except AtpError as exc:
        report(exc.message)
        return exit_code(exc)
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        report_unexpected(exc)
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


@click.group(cls=AtpGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), help="atp.toml to read.")
@click.option("--store", help="TaskStore URL, e.g. sqlite:///atp.db.")
@click.option("--transport", help="Transport URL, e.g. memory://, redis://host.")
@click.option("--coordinator", help="Coordinator URL, e.g. local:///atp.db.")
@click.option("--log-level", type=LOG_LEVELS, help="Logging level; default INFO.")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines; default text.")
@click.version_option(package_name="atp", prog_name="atp")
@click.pass_context
def cli(
    ctx: click.Context,
    config: str | None,
    store: str | None,
    transport: str | None,
    coordinator: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """atp: delayed tasks, cron schedules and durable workflows on pluggable backends.

    Settings come from atp.toml (or --config), then ATP_* environment variables, then
    these options.
    """
    overrides = {
        "store": store,
        "transport": transport,
        "coordinator": coordinator,
        "log_level": log_level.upper() if log_level else None,
        "log_format": log_format,
    }
    ctx.obj = Options(config, {k: v for k, v in overrides.items() if v is not None})


RUNTIMES = (dev, worker, scheduler, server, token)
FLEET = (workers, breakers)
TOOLS = (publish, task, dlq, cron, limit, pause, resume, *FLEET, outbox, workflow, plugins, chaos)
for command in (*RUNTIMES, *TOOLS):
    cli.add_command(command)


def main() -> None:
    """The ``atp`` console script."""
    cli.main(prog_name="atp")
