"""``atp publish`` and ``atp task get|cancel|ls``."""

from __future__ import annotations

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import describe_error, echo_json, iso, record_fields
from atp.adapters.cli._pages import page_options, show_page, subject_option
from atp.adapters.cli._params import DURATION, HEADER, STATE, TIMESTAMP, read_json
from atp.core import codec
from atp.core.model import State, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, TaskService
from atp.sdk.client import publish_request

__all__ = ["publish", "task"]


@click.command()
@click.argument("subject")
@click.argument("payload", metavar="[PAYLOAD_JSON]", required=False)
@click.option("--delay", type=DURATION, help="Run after this long: 30, 250ms, 30s, 5m, 2h, 1d.")
@click.option("--at", "run_at", type=TIMESTAMP, help="Run at this ISO 8601 time (naive = UTC).")
@click.option("--idempotency-key", help="Publishing the same key again returns the same task.")
@click.option("--max-attempts", type=int, help="Attempts before the task is dead.")
@click.option("--timeout", type=DURATION, help="How long one attempt may run.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--header", "headers", type=HEADER, multiple=True, help="A header; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@pass_options
def publish(
    options: Options,
    subject: str,
    payload: str | None,
    delay: float | None,
    run_at: float | None,
    idempotency_key: str | None,
    max_attempts: int | None,
    timeout: float | None,
    priority: int,
    headers: tuple[tuple[str, str], ...],
    as_json: bool,
) -> None:
    """Publish a task to SUBJECT and print its id.

    PAYLOAD_JSON is the task's payload as JSON; '-' reads it from stdin; none gives null.

    When an idempotency key matches a task published earlier, that task's id is printed
    and nothing is created (a note says so on stderr).
    """
    request = publish_request(
        subject,
        read_json(payload, "payload"),
        delay=delay,
        run_at=run_at,
        idempotency_key=idempotency_key,
        headers=dict(headers),
        max_attempts=max_attempts,
        timeout=timeout,
        priority=priority,
    )
    (published,) = options.call(lambda service: service.publish([request]))
    _show_published(published, as_json)


def _show_published(published: Published, as_json: bool) -> None:
    if as_json:
        echo_json({"id": published.id, "created": published.created, "run_at": published.run_at})
        return
    click.echo(published.id)
    if not published.created:
        click.echo("existing: the idempotency key matched this task; nothing was created", err=True)


@click.group()
def task() -> None:
    """Inspect and cancel tasks."""


@task.command("get")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@pass_options
def get(options: Options, task_id: str, as_json: bool) -> None:
    """Show a task: state, attempts, run_at, last error, result and error history.

    '--json' prints the record in atp's wire format (times in seconds since the epoch).
    """
    record = options.call(lambda service: service.get(task_id))
    if as_json:
        echo_json(codec.record_to_dict(record))
        return
    _show_record(record)


def _show_record(record: TaskRecord) -> None:
    fields = record_fields(record)
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")
    if len(record.errors) > 1:
        click.echo("errors:")
        for error in record.errors:
            click.echo(f"  {describe_error(error)}")


@task.command("cancel")
@click.argument("task_id", metavar="ID")
@pass_options
def cancel(options: Options, task_id: str) -> None:
    """Cancel a task that has not finished; a running one is asked to stop.

    Exits 3 for an unknown id and 4, changing nothing, for a finished task.
    """
    record = options.call(lambda service: service.cancel(task_id))
    if record.state is State.CANCELLED:
        click.echo(f"cancelled {record.id}")
    else:
        click.echo(f"cancel requested: {record.id} is {record.state}; its worker stops it soon")


@task.command("ls")
@subject_option
@click.option("--state", "states", type=STATE, multiple=True, help="Only this state; repeatable.")
@page_options
@pass_options
def ls(
    options: Options,
    subject: str | None,
    states: tuple[str, ...],
    limit: int,
    cursor: str | None,
    ids_only: bool,
    as_json: bool,
) -> None:
    """List tasks, newest first."""
    chosen = [State(state.upper()) for state in states] or None

    async def query(service: TaskService) -> Page:
        return await service.query(subject=subject, states=chosen, cursor=cursor, limit=limit)

    page = options.call(query)
    headers = ("ID", "SUBJECT", "STATE", "ATTEMPT", "RUN_AT", "UPDATED_AT")
    rows = [
        (r.id, r.subject, str(r.state), str(r.task.attempt), iso(r.task.run_at), iso(r.updated_at))
        for r in page.items
    ]
    show_page(page, headers, rows, ids_only=ids_only, as_json=as_json)
