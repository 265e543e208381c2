"""Rendering for people (aligned tables, ISO 8601 UTC times) and for scripts (JSON lines)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from atp.core import codec
from atp.core.model import AttemptError, State, TaskRecord

__all__ = [
    "describe_error",
    "echo_json",
    "iso",
    "json_text",
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


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print rows under ``headers`` in left-aligned columns two spaces apart."""
    cells = [list(headers), *([shorten(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(line.rstrip())


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


def _lease(record: TaskRecord) -> str:
    if record.lease_owner is None and record.lease_until is None:
        return "-"
    return f"{record.lease_owner or '-'} until {iso(record.lease_until)}"
