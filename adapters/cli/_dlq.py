"""``atp dlq ls|requeue|purge``: the dead-letter queue is every task in the DEAD state."""

from __future__ import annotations

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import iso
from atp.adapters.cli._pages import page_options, show_page, subject_option
from atp.adapters.cli._params import DURATION, read_ids, read_json
from atp.core.errors import StateConflict
from atp.core.model import State, TaskRecord
from atp.core.ports import Page
from atp.core.service import TaskService

__all__ = ["dlq"]


@click.group()
def dlq() -> None:
    """Inspect, requeue and purge dead tasks.

    A task is dead when its attempts ran out or its handler raised Fail.
    """


@dlq.command("ls")
@subject_option
@page_options
@pass_options
def ls(
    options: Options,
    subject: str | None,
    limit: int,
    cursor: str | None,
    ids_only: bool,
    as_json: bool,
) -> None:
    """List dead tasks, newest first, with their last error."""

    async def query(service: TaskService) -> Page:
        return await service.dead_letters(subject=subject, cursor=cursor, limit=limit)

    page = options.call(query)
    headers = ("ID", "SUBJECT", "ATTEMPTS", "DIED_AT", "LAST_ERROR")
    rows = [
        (r.id, r.subject, str(r.task.attempt), iso(r.finished_at), _last_error(r))
        for r in page.items
    ]
    show_page(page, headers, rows, ids_only=ids_only, as_json=as_json)


def _last_error(record: TaskRecord) -> str:
    error = record.last_error
    return f"{error.kind}: {error.message}" if error else "-"


@dlq.command("requeue")
@click.argument("ids", metavar="ID... | -", nargs=-1, required=True)
@click.option("--delay", type=DURATION, help="Run again after this long instead of now.")
@click.option("--payload", metavar="JSON", help="Replace the payload with this JSON.")
@pass_options
def requeue(
    options: Options, ids: tuple[str, ...], delay: float | None, payload: str | None
) -> None:
    """Run dead tasks again, with their attempts reset.

    Each goes back to SCHEDULED; its error history is kept.

    '-' reads ids from stdin: 'atp dlq ls --ids | atp dlq requeue -'. Every id is
    checked first; if one is unknown (exit 3) or not dead (exit 4), none is requeued.
    """
    wanted = read_ids(ids)
    new_payload = read_json(payload, "--payload")

    async def run(service: TaskService) -> list[TaskRecord]:
        await _check_dead(service, wanted)
        new = payload is not None
        return [
            await service.requeue(task_id, delay=delay, payload=new_payload, replace_payload=new)
            for task_id in wanted
        ]

    for record in options.call(run):
        click.echo(f"requeued {record.id} to run at {iso(record.task.run_at)}")


@dlq.command("purge")
@click.argument("ids", metavar="[ID... | -]", nargs=-1)
@click.option("--yes", is_flag=True, help="Purge every dead task without asking.")
@pass_options
def purge(options: Options, ids: tuple[str, ...], yes: bool) -> None:
    """Delete dead tasks: the given ones, or all of them.

    Purging all asks for confirmation unless '--yes' is given. Given ids are checked
    first; if one is unknown (exit 3) or not dead (exit 4), none is purged.
    """
    wanted = read_ids(ids) if ids else None
    if wanted is None and not yes:
        count = options.call(_count_dead)
        if count == 0:
            click.echo("purged 0 dead tasks")
            return
        click.confirm(f"Purge all {count} dead tasks for good?", abort=True, err=True)

    async def run(service: TaskService) -> int:
        if wanted is not None:
            await _check_dead(service, wanted)
        return await service.purge(wanted)

    click.echo(f"purged {options.call(run)} dead tasks")


async def _count_dead(service: TaskService) -> int:
    counts = await service.counts()
    return sum(n for (_, state), n in counts.items() if state is State.DEAD)


async def _check_dead(service: TaskService, ids: list[str]) -> None:
    """Raise NotFound or StateConflict, before anything changes, for an id that is not dead."""
    for task_id in ids:
        record = await service.get(task_id)
        if record.state is not State.DEAD:
            raise StateConflict(
                f"task {task_id!r} is {record.state}, not DEAD: nothing was changed"
            )
