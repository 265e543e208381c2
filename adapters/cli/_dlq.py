"""``atp dlq ls|requeue|purge``: the dead-letter queue is every task in the DEAD state.

Requeue and purge act on given ids (every one is checked before anything changes) or on
everything a filter matches (``--all [--subject P]``), so no pipeline is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from atp.adapters._api.dead_letters import (
    CORRUPT,
    Requeued,
    count_dead,
    dead,
    purge_ids,
    requeue_each,
    requeue_matching,
)
from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, iso, progress
from atp.adapters.cli._pages import Paging, page_options, show_tasks, subject_option
from atp.adapters.cli._params import DURATION, read_ids, read_json
from atp.core import codec
from atp.core.errors import StateConflict
from atp.core.model import JSON, State, TaskRecord
from atp.core.ports import Page
from atp.core.service import TaskService

__all__ = ["dlq"]

FILTER_HELP = "With --all: only dead tasks whose subject matches (orders.*, orders.>)."


@click.group()
def dlq() -> None:
    """Inspect, requeue and purge dead tasks.

    A task is dead when its attempts ran out or its handler raised Fail.
    """


@dlq.command("ls")
@subject_option
@page_options
@pass_options
def ls(options: Options, subject: str | None, paging: Paging) -> None:
    """List dead tasks with their last error, most recently created first.

    The order is by creation (the task id), not by when the task died. A table shows
    one page and the next cursor on stderr; --ids and --json print every dead task
    the filter matches, walking all pages, unless --limit or --cursor asks for one
    page; --all walks all pages for the table too.
    """

    async def fetch(service: TaskService, cursor: str | None, limit: int) -> Page:
        return await service.dead_letters(subject=subject, cursor=cursor, limit=limit)

    headers = ("ID", "SUBJECT", "ATTEMPTS", "DIED_AT", "LAST_ERROR")
    show_tasks(options, fetch, headers, _dead_row, paging)


def _dead_row(r: TaskRecord) -> tuple[str, ...]:
    return (r.id, r.subject, str(r.task.attempt), iso(r.finished_at), _last_error(r))


def _last_error(record: TaskRecord) -> str:
    error = record.last_error
    return f"{error.kind}: {error.message}" if error else "-"


@dlq.command("requeue")
@click.argument("ids", metavar="[ID... | -]", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Requeue every dead task (see --subject).")
@click.option("--subject", help=FILTER_HELP)
@click.option("--delay", type=DURATION, help="Run again after this long instead of now.")
@click.option("--payload", metavar="JSON", help="Replace the payload with this JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print what was requeued as JSON.")
@pass_options
def requeue(
    options: Options,
    ids: tuple[str, ...],
    every: bool,
    subject: str | None,
    delay: float | None,
    payload: str | None,
    as_json: bool,
) -> None:
    """Run dead tasks again, with their attempts reset: the given ids, or '--all'.

    Each goes back to SCHEDULED; its error history is kept.

    '-' reads ids from stdin: 'atp dlq ls --ids | atp dlq requeue -' (every dead task,
    all pages). Given ids are checked first; if one is unknown (exit 3), not dead or
    cannot be decoded (exit 4), none is requeued. '--all [--subject P]' requeues what
    the filter matches; a task that cannot be decoded, or that left DEAD meanwhile, is
    skipped and named on stderr.
    """
    _check_selection(ids, every, subject, needs_one=True)
    wanted = read_ids(ids) if ids else None
    new_payload = read_json(payload, "--payload")
    replace = payload is not None

    async def run(service: TaskService) -> Requeued:
        if wanted is not None:
            await _check_dead(service, wanted, decodable=True)
            return await _requeue(service, wanted, delay, new_payload, replace)
        with progress(None, "requeueing") as advance:
            return await requeue_matching(
                service,
                subject,
                delay=delay,
                payload=new_payload,
                replace=replace,
                advance=advance,
            )

    _show_requeued(options.call(run), as_json)


async def _requeue(
    service: TaskService, ids: Sequence[str], delay: float | None, payload: JSON, replace: bool
) -> Requeued:
    """Requeue the given ``ids``, checked first: a failure raises."""
    with progress(len(ids), "requeueing") as advance:
        return await requeue_each(
            service,
            ids,
            delay=delay,
            payload=payload,
            replace=replace,
            strict=True,
            advance=advance,
        )


def _show_requeued(done: Requeued, as_json: bool) -> None:
    if as_json:
        requeued = [{"id": r.id, "run_at": r.task.run_at} for r in done.records]
        skipped = [{"id": task_id, "reason": reason} for task_id, reason in done.skipped]
        echo_json({"requeued": requeued, "skipped": skipped})
        return
    for record in done.records:
        click.echo(f"requeued {record.id} to run at {iso(record.task.run_at)}")
    for task_id, reason in done.skipped:
        click.echo(f"skipped {task_id}: {reason}", err=True)
    if not done.records and not done.skipped:
        click.echo("requeued 0 dead tasks", err=True)


@dlq.command("purge")
@click.argument("ids", metavar="[ID... | -]", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Purge every dead task (the default).")
@click.option("--subject", help=FILTER_HELP)
@click.option("--yes", is_flag=True, help="Purge without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print how many were purged as JSON.")
@pass_options
def purge(
    options: Options,
    ids: tuple[str, ...],
    every: bool,
    subject: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete dead tasks for good: the given ids, or all of them ('--all', the default).

    '--subject P' purges only the dead tasks whose subject matches. Purging all or a
    filter shows how many and asks first unless '--yes' is given. Given ids are checked
    first; if one is unknown (exit 3) or not dead (exit 4), none is purged.
    """
    _check_selection(ids, every, subject, needs_one=False)
    if ids:
        wanted = read_ids(ids)
        count = options.call(lambda service: _purge_ids(service, wanted, check=True))
    else:
        count = _purge_matching(options, subject, yes)
    if as_json:
        echo_json({"purged": count})
    else:
        click.echo(f"purged {count} dead tasks")


def _purge_matching(options: Options, subject: str | None, yes: bool) -> int:
    """Purge every dead task, or those ``subject`` matches, after showing how many.

    With a subject, exactly the tasks counted are purged; without, one store call
    purges every dead task, those that died since the count too."""
    if subject is None:
        count = options.call(lambda service: count_dead(service, None))
    else:
        found = options.call(lambda service: _dead_ids(service, subject))
        count = len(found)
    if count == 0:
        return 0
    if not yes:
        which = f"dead tasks matching {subject}" if subject else "dead tasks"
        click.confirm(f"Purge all {count} {which} for good?", abort=True, err=True)
    if subject is None:
        return options.call(lambda service: service.purge(None))
    return options.call(lambda service: _purge_ids(service, found, check=False))


async def _purge_ids(service: TaskService, ids: list[str], *, check: bool) -> int:
    """Purge ``ids`` in batches; ``check`` first makes sure every one is dead."""
    if check:
        await _check_dead(service, ids)
    with progress(len(ids), "purging") as advance:
        return await purge_ids(service, ids, advance)


def _check_selection(
    ids: tuple[str, ...], every: bool, subject: str | None, *, needs_one: bool
) -> None:
    """Refuse ids together with a filter, and (``needs_one``) neither of them."""
    if ids and (every or subject is not None):
        raise click.UsageError("give task ids or --all [--subject P], not both")
    if needs_one and not ids and not every:
        hint = " (--subject needs --all)" if subject is not None else ""
        raise click.UsageError(f"give task ids, '-' to read them from stdin, or --all{hint}")


async def _dead_ids(service: TaskService, subject: str | None) -> list[str]:
    return [record.id for record in await dead(service, subject)]


async def _check_dead(service: TaskService, ids: list[str], *, decodable: bool = False) -> None:
    """Raise NotFound or StateConflict, before anything changes, for an id that is not
    dead (or, with ``decodable``, cannot be requeued because its record is quarantined).
    One read per id: TaskService has no batch get."""
    with progress(len(ids), "checking") as advance:
        for task_id in ids:
            record = await service.get(task_id)
            if record.state is not State.DEAD:
                raise StateConflict(
                    f"task {task_id!r} is {record.state}, not DEAD: nothing was changed"
                )
            if decodable and codec.is_quarantined(record):
                raise StateConflict(f"task {task_id!r} {CORRUPT}: nothing was changed")
            advance(1)
