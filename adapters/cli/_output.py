"""Rendering for people (aligned tables, ISO 8601 UTC times) and for scripts (JSON lines).

On a terminal tables are drawn with rich and long operations show a progress bar on
stderr; piped, the output is plain text that scripts can parse, and no bar is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import click

from atp.core import codec
from atp.core.model import AttemptError, State, Task, TaskRecord

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "describe_error",
    "echo_json",
    "is_terminal",
    "iso",
    "json_text",
    "progress",
    "record_fields",
    "shorten",
    "table",
]

CELL_WIDTH = 60
"""Longest cell of a table before it is cut with an ellipsis."""


def iso(seconds: float | None) -> str:
    """Return ``seconds`` since the epoch as ISO 8601 UTC to the millisecond; ``-`` for None."""
    if seconds is None:
        return "-"
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def json_text(value: Any) -> str:
    """Return ``value`` as compact JSON text."""
    return codec.dumps(value).decode()


def echo_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout."""
    click.echo(json_text(value))


def shorten(text: str, width: int = CELL_WIDTH) -> str:
    """Return ``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal that can draw tables and progress bars.

    ``TERM=dumb`` counts as no terminal; ``NO_COLOR`` keeps the drawing but drops colour.
    """
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, cell_width: int = CELL_WIDTH
) -> None:
    """Print rows under ``headers``: a rich table on a terminal, else plain columns.

    The plain form (left-aligned, two spaces apart, no trailing blanks) is what scripts
    parse; it does not change with the terminal. Cells are cut at ``cell_width``.
    """
    cells = [[shorten(cell, cell_width) for cell in row] for row in rows]
    if is_terminal(sys.stdout):
        _rich_table(headers, cells)
        return
    _plain_table([list(headers), *cells])


def _plain_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(line.rstrip())


STATE_STYLES = {
    "DEAD": "bold red",
    "FAILED": "bold red",
    "SUCCEEDED": "green",
    "COMPENSATING": "yellow",
    "RUNNING": "yellow",
    "CANCELLED": "dim",
    "paused": "dim",
}
"""Colours of the cells that name a state, on a terminal."""


def _rich_table(headers: Sequence[str], cells: list[list[str]]) -> None:
    from rich import box  # imported late: only a terminal pays for rich
    from rich.table import Table
    from rich.text import Text

    grid = Table(*headers, box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
    for row in cells:
        # Text, not str: a cell is data, and "[x]" in an error message is no markup
        grid.add_row(*(Text(cell, style=STATE_STYLES.get(cell, "")) for cell in row))
    _console(sys.stdout).print(grid)


@contextmanager
def progress(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """Show a progress bar on stderr while the block runs; yield ``advance(n)``.

    ``total`` None draws a counter without an end. When stderr is not a terminal
    nothing is drawn and ``advance`` does nothing, so scripts see clean output.
    """
    if not is_terminal(sys.stderr):
        yield _ignore
        return
    from rich.progress import (  # imported late: only a terminal pays for it
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    bar = Progress(
        *columns,
        TimeElapsedColumn(),
        console=_console(sys.stderr),
        transient=True,
        # rich would send stdout through the bar's console, i.e. to stderr: only when
        # both are the terminal is that harmless (lines show above the bar)
        redirect_stdout=is_terminal(sys.stdout),
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _ignore(n: int) -> None:
    """Advance a progress bar that is not drawn."""


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    # Detection is ours (is_terminal); rich is told the answer so both agree.
    no_color = bool(os.environ.get("NO_COLOR"))  # https://no-color.org: set and not empty
    return Console(file=stream, force_terminal=True, no_color=no_color, highlight=False)


def record_fields(record: TaskRecord) -> list[tuple[str, str]]:
    """Return the labelled lines ``atp task get`` shows for ``record``."""
    task = record.task
    return [
        ("id", task.id),
        ("subject", task.subject),
        ("state", _state(record)),
        ("attempts", _attempts(record)),
        ("run_at", iso(task.run_at)),
        ("created_at", iso(task.created_at)),
        ("updated_at", iso(record.updated_at)),
        ("finished_at", iso(record.finished_at)),
        ("lease", _lease(record)),
        ("priority", str(task.priority)),
        ("timeout", "-" if task.timeout is None else f"{task.timeout:g}s"),
        ("idempotency_key", task.idempotency_key or "-"),
        ("dedup", _dedup(task)),
        ("concurrency_key", task.concurrency_key or "-"),
        ("rate_key", task.rate_key or "-"),
        ("group_key", task.group_key or "-"),
        ("headers", json_text(dict(task.headers)) if task.headers else "-"),
        ("payload", json_text(task.payload)),
        ("result", json_text(record.result)),
        ("last_error", describe_error(record.last_error) if record.last_error else "-"),
    ]


def describe_error(error: AttemptError) -> str:
    """Return one attempt's error on one line: when, which attempt, what kind, why."""
    return f"{iso(error.at)}  attempt {error.attempt}  {error.kind}: {error.message}"


def _state(record: TaskRecord) -> str:
    asked = record.cancel_requested and record.state is State.RUNNING
    return f"{record.state} (cancel requested)" if asked else str(record.state)


def _attempts(record: TaskRecord) -> str:
    limit = record.task.max_attempts
    return f"{record.task.attempt} of {limit}" if limit else f"{record.task.attempt}"


def _dedup(task: Task) -> str:
    dedup = task.dedup
    if dedup is None:
        return "-"
    return str(dedup.mode) if dedup.period is None else f"{dedup.mode} {dedup.period:g}s"


def _lease(record: TaskRecord) -> str:
    if record.lease_until is None:  # a SUCCEEDED task keeps the owner that ran it
        return "-"
    return f"{record.lease_owner or '-'} until {iso(record.lease_until)}"
