"""``atp publish`` and ``atp task get|cancel|ls``."""

from __future__ import annotations

import contextlib

import click

from atp.adapters.cli._bulk import Defaults, publish_file
from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import describe_error, echo_json, iso, record_fields
from atp.adapters.cli._pages import Paging, page_options, show_tasks, subject_option
from atp.adapters.cli._params import DURATION, HEADER, STATE, TIMESTAMP, Parsed, read_json
from atp.core import codec
from atp.core.clock import SystemClock
from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.model import State, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, TaskService
from atp.sdk.client import PublishOptions, publish_request

__all__ = ["publish", "task"]

CONCURRENCY_KEY_HELP = (
    "Run at most the key's limit of tasks with this key at once (one if no limit names it)."
)
GROUP_KEY_HELP = (
    "The fair group (a tenant): tasks waiting for a full slot are woken group by group, "
    "by each group's --weight (atp limit set --key)."
)
DEBOUNCE_HELP = "Replace the key's pending task; run this one after DURATION."
THROTTLE_HELP = "At most one task of the key per DURATION: later ones answer the first."
UNIQUE_HELP = "Refuse (exit 4) while a task of the key is queued or running."
PRIORITY_HELP = (
    "Higher first among tasks due at the same instant; `atp dev`'s in-process transport "
    "also hands out waiting tasks higher first, Redis and NATS in publish order."
)


@click.command()
@click.argument("subject", required=False)
@click.argument("payload", metavar="[PAYLOAD_JSON]", required=False)
@click.option(
    "--file",
    "source",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Publish the tasks of this JSON Lines file, one a line ('-': stdin).",
)
@click.option(
    "--failed",
    type=click.Path(dir_okay=False),
    help="With --file: where the lines that fail go [default: NAME.failed.jsonl beside it].",
)
@click.option("--delay", type=DURATION, help="Run after this long: 30, 250ms, 30s, 5m, 2h, 1d.")
@click.option("--at", "run_at", type=TIMESTAMP, help="Run at this ISO 8601 time (naive = UTC).")
@click.option("--idempotency-key", help="Publishing the same key again returns the same task.")
@click.option("--max-attempts", type=int, help="Attempts before the task is dead.")
@click.option("--timeout", type=DURATION, help="How long one attempt may run.")
@click.option("--priority", type=int, default=0, show_default=True, help=PRIORITY_HELP)
@click.option("--header", "headers", type=HEADER, multiple=True, help="A header; repeatable.")
@click.option("--concurrency-key", metavar="KEY", help=CONCURRENCY_KEY_HELP)
@click.option("--rate-key", metavar="KEY", help="Share the rate limits of this key.")
@click.option("--group-key", metavar="KEY", help=GROUP_KEY_HELP)
@click.option("--debounce", type=DURATION, help=DEBOUNCE_HELP)
@click.option("--throttle", type=DURATION, help=THROTTLE_HELP)
@click.option("--unique", is_flag=True, help=UNIQUE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@pass_options
def publish(
    options: Options,
    subject: str | None,
    payload: str | None,
    source: str | None,
    failed: str | None,
    delay: float | None,
    run_at: float | None,
    idempotency_key: str | None,
    max_attempts: int | None,
    timeout: float | None,
    priority: int,
    headers: tuple[tuple[str, str], ...],
    concurrency_key: str | None,
    rate_key: str | None,
    group_key: str | None,
    debounce: float | None,
    throttle: float | None,
    unique: bool,
    as_json: bool,
) -> None:
    """Publish a task to SUBJECT and print its id.

    PAYLOAD_JSON is the task's payload as JSON; '-' reads it from stdin; none gives null.

    When an idempotency key matches a task published earlier, that task's id is printed
    and nothing is created (a note says so on stderr).

    Flow control (atp limit --help): --concurrency-key and --rate-key put the task under
    a key's limits; --group-key names its fair group, whose --weight shares out the
    wake-ups while tasks wait behind a full slot. --debounce, --throttle and --unique
    (one of them) work on the --idempotency-key: debounce replaces the key's pending task
    and runs this one after the period (the replaced id goes to stderr); throttle keeps
    one task per key per period; unique refuses (exit 4) while the key's task is queued
    or running.

    With --file FILE ('-': stdin), publish one task per line of JSON Lines, in batches
    over one connection. A line holds {"subject", "payload", "delay", "run_at",
    "idempotency_key", "headers", "max_attempts", "timeout", "priority",
    "concurrency_key", "rate_key", "group_key", "dedup"}: durations as for the options
    or in seconds, run_at in ISO 8601 or seconds since the epoch, dedup as {"mode":
    "debounce", "period": 30} (throttle likewise, {"mode": "unique"} without a period).
    SUBJECT and the options are defaults that a line overrides (a null keeps the default).

    A bad line does not stop the others: it goes to the --failed report (needed for
    stdin) with its line number and error, as do the lines of a batch that a backend
    refused. Fix the report and publish it with --file again: a line with an
    idempotency_key is never published twice, so give each line one and a re-run is
    always safe (a batch cut short by an outage may have been stored).

    A summary goes to stderr; --json prints {"line", "id", "created", "run_at"} per task
    published, then {"summary": {...}}. Exits 0 when every line was published, 1 when
    some failed, 6 when some were not as a backend was unavailable (run the report later).
    """
    given = PublishOptions(
        delay=delay,
        run_at=run_at,
        headers=dict(headers),
        max_attempts=max_attempts,
        timeout=timeout,
        priority=priority,
        concurrency_key=concurrency_key,
        rate_key=rate_key,
        group_key=group_key,
        debounce=debounce,
        throttle=throttle,
        unique=unique,
    )
    if source is not None:
        defaults = _file_defaults(subject, payload, idempotency_key, given)
        code = publish_file(options, source, failed, defaults, as_json=as_json)
        click.get_current_context().exit(code)
    if subject is None:
        raise click.UsageError("Missing argument 'SUBJECT' (or give --file).")
    if failed is not None:
        raise click.UsageError("--failed goes with --file.")
    given["idempotency_key"] = idempotency_key
    request = publish_request(subject, read_json(payload, "payload"), **given)
    (published,) = options.call(lambda service: service.publish([request]))
    _show_published(published, as_json)


def _file_defaults(
    subject: str | None, payload: str | None, key: str | None, options: PublishOptions
) -> Defaults:
    """The defaults ``--file`` lines get from the command line; refuses those per task."""
    if payload is not None:
        raise click.UsageError("PAYLOAD_JSON does not go with --file: each line has its own.")
    if key is not None:
        raise click.UsageError("--idempotency-key names one task: give each line its own.")
    return Defaults(subject, options)


def _show_published(published: Published, as_json: bool) -> None:
    if as_json:
        answer = {"id": published.id, "created": published.created, "run_at": published.run_at}
        echo_json({**answer, "replaced": published.replaced})
        return
    click.echo(published.id)
    if not published.created:
        click.echo("existing: the idempotency key matched this task; nothing was created", err=True)
    if published.replaced is not None:
        click.echo(f"replaced: {published.replaced} was pending and is cancelled", err=True)


@click.group()
def task() -> None:
    """Inspect and cancel tasks."""


@task.command("get")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@pass_options
def get(options: Options, task_id: str, as_json: bool) -> None:
    """Show a task: state, attempts, run_at, last error, result and error history.

    --json prints the record in atp's wire format (times in seconds since the epoch).
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
    last = record.last_error
    if last is not None and last.traceback:  # earlier attempts' are in --json
        click.echo(f"traceback of attempt {last.attempt}:")
        for line in last.traceback.rstrip("\n").splitlines():
            click.echo(f"  {line}")


@task.command("cancel")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record after it as JSON.")
@pass_options
def cancel(options: Options, task_id: str, as_json: bool) -> None:
    """Cancel a task that has not finished; a running one is asked to stop.

    Exits 3 for an unknown id and 4, changing nothing, for a finished task.
    """
    record = options.call(lambda service: service.cancel(task_id))
    if as_json:
        echo_json(codec.record_to_dict(record))
    elif record.state is State.CANCELLED:
        click.echo(f"cancelled {record.id}")
    else:
        click.echo(f"cancel requested: {record.id} is {record.state}; its worker stops it soon")


class Moment(Parsed[float]):
    """A duration ago (``90``, ``30m``, ``2d``) or an ISO 8601 time (naive is UTC) -> seconds
    since the epoch."""

    name = "time"
    done = float

    def parse(self, value: object) -> float:
        with contextlib.suppress(InvalidInput):
            return SystemClock().now() - parse_duration(value)
        with contextlib.suppress(InvalidInput):
            return TIMESTAMP.parse(value)
        example = "e.g. 30m or 2d ago, or 2030-01-02T03:04:05Z"
        raise InvalidInput(f"{value!r} is neither a duration nor an ISO 8601 time ({example})")


MOMENT = Moment()


@task.command("ls")
@subject_option
@click.option("--state", "states", type=STATE, multiple=True, help="Only this state; repeatable.")
@click.option("--since", type=MOMENT, help="Created at or after: 30m, 2d (ago) or ISO 8601.")
@click.option("--until", type=MOMENT, help="Created before: 30m, 2d (ago) or ISO 8601.")
@click.option("--key", help="Only the task holding this idempotency key (needs --subject).")
@page_options
@pass_options
def ls(
    options: Options,
    subject: str | None,
    states: tuple[str, ...],
    since: float | None,
    until: float | None,
    key: str | None,
    paging: Paging,
) -> None:
    """List tasks, most recently created first.

    A table shows one page and the next cursor on stderr. --ids and --json print
    every match, walking all pages, unless --limit or --cursor asks for one page;
    --all walks all pages for the table too.
    """
    chosen = [State(state.upper()) for state in states] or None

    async def fetch(service: TaskService, cursor: str | None, limit: int) -> Page:
        return await service.query(
            subject=subject,
            states=chosen,
            cursor=cursor,
            limit=limit,
            created_after=since,
            created_before=until,
            idempotency_key=key,
        )

    headers = ("ID", "SUBJECT", "STATE", "ATTEMPT", "RUN_AT", "UPDATED_AT")
    show_tasks(options, fetch, headers, _task_row, paging)


def _task_row(r: TaskRecord) -> tuple[str, ...]:
    return (
        r.id,
        r.subject,
        str(r.state),
        str(r.task.attempt),
        iso(r.task.run_at),
        iso(r.updated_at),
    )
