"""``atp cron add|ls|pause|resume|trigger|rm``: cron schedules kept in the task store."""

from __future__ import annotations

from datetime import datetime

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, table
from atp.adapters.cli._params import read_json
from atp.core.cron.expression import zone
from atp.core.cron.service import ScheduleService, define_schedule
from atp.core.schedules import Misfire, Overlap, Schedule, schedule_to_dict

__all__ = ["cron"]


MISFIRE = click.Choice([m.value for m in Misfire])
OVERLAP = click.Choice([o.value for o in Overlap])
MISFIRE_HELP = "Ticks missed while no scheduler ran: skip them, fire once, or fire all."
OVERLAP_HELP = "skip: no new firing while the last one's task has not finished."
CRON_CELL_WIDTH = 80
"""Three ticks with dates and offsets fit in NEXT without being cut."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")


@click.group()
def cron() -> None:
    """Add, list, pause, resume, trigger and remove cron schedules.

    The scheduler's leader fires each tick once, however many schedulers run.
    """


@cron.command("add")
@click.argument("name")
@click.argument("expression")
@click.argument("subject")
@click.option("--payload", metavar="JSON", help="Payload of every firing, as JSON.")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of EXPRESSION.")
@click.option("--misfire", type=MISFIRE, default="once", show_default=True, help=MISFIRE_HELP)
@click.option("--overlap", type=OVERLAP, default="allow", show_default=True, help=OVERLAP_HELP)
@json_option
@pass_options
def add(
    options: Options,
    name: str,
    expression: str,
    subject: str,
    payload: str | None,
    tz: str,
    misfire: str,
    overlap: str,
    as_json: bool,
) -> None:
    """Add schedule NAME publishing to SUBJECT at every tick of EXPRESSION.

    EXPRESSION has five fields (minute hour day-of-month month day-of-week), six with
    a seconds field first, or is a macro such as @hourly; quote it. A taken NAME is
    refused (exit 4) and a bad expression or time zone too (exit 2): nothing changes.
    """
    body = read_json(payload, "--payload")
    schedule = define_schedule(
        name, expression, subject, payload=body, tz=tz, misfire=misfire, overlap=overlap
    )
    stored = options.using(ScheduleService, lambda service: service.add(schedule))
    _show(stored, f"added {stored.name}: next tick {_local(stored.next_tick, stored.tz)}", as_json)


def _show(schedule: Schedule, text: str, as_json: bool) -> None:
    """Print ``text`` for people, or the schedule as JSON for scripts."""
    if as_json:
        echo_json(schedule_to_dict(schedule))
    else:
        click.echo(text)


@cron.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per schedule.")
@pass_options
def ls(options: Options, as_json: bool) -> None:
    """List schedules: expression, time zone, next three ticks, last firing, state.

    NEXT and LAST_FIRED are wall-clock times in the schedule's own zone (TZ), each with
    its UTC offset (which can differ between ticks across a daylight-saving change);
    '--json' gives the ticks as seconds since the epoch.
    """

    async def listing(service: ScheduleService) -> list[tuple[Schedule, list[float]]]:
        return [(s, service.upcoming(s)) for s in await service.list()]

    schedules = options.using(ScheduleService, listing)
    if as_json:
        for schedule, upcoming in schedules:
            echo_json({**schedule_to_dict(schedule), "upcoming": upcoming})
        return
    headers = ("NAME", "EXPRESSION", "TZ", "NEXT", "LAST_FIRED", "STATE")
    rows = [_row(schedule, upcoming) for schedule, upcoming in schedules]
    table(headers, rows, cell_width=CRON_CELL_WIDTH)


def _row(schedule: Schedule, upcoming: list[float]) -> tuple[str, ...]:
    upcoming_text = _wall_times(upcoming, schedule.tz) or "-"
    state = "paused" if schedule.paused else "active"
    fired = schedule.last_fired_at
    last = "-" if fired is None else _wall_times([fired], schedule.tz)
    return (schedule.name, schedule.expression, schedule.tz, upcoming_text, last, state)


@cron.command("pause")
@click.argument("name")
@json_option
@pass_options
def pause(options: Options, name: str, as_json: bool) -> None:
    """Stop firing NAME until it is resumed."""
    stored = options.using(ScheduleService, lambda service: service.pause(name))
    _show(stored, f"paused {name}", as_json)


@cron.command("resume")
@click.argument("name")
@json_option
@pass_options
def resume(options: Options, name: str, as_json: bool) -> None:
    """Fire NAME again from its next tick; ticks while it was paused are not fired."""
    stored = options.using(ScheduleService, lambda service: service.resume(name))
    _show(stored, f"resumed {name}: next tick {_local(stored.next_tick, stored.tz)}", as_json)


@cron.command("trigger")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the published task as JSON.")
@pass_options
def trigger(options: Options, name: str, as_json: bool) -> None:
    """Publish NAME's task now, once, outside its timetable, and print its id."""
    published = options.using(ScheduleService, lambda service: service.trigger(name))
    if as_json:
        echo_json({"id": published.id, "created": published.created, "run_at": published.run_at})
    else:
        click.echo(published.id)


@cron.command("rm")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@pass_options
def rm(options: Options, name: str, as_json: bool) -> None:
    """Remove NAME; the tasks it fired stay."""
    options.using(ScheduleService, lambda service: service.remove(name))
    if as_json:
        echo_json({"removed": name})
    else:
        click.echo(f"removed {name}")


def _wall_times(ticks: list[float], tz: str) -> str:
    """Ticks as wall-clock times of the schedule's zone, each with its UTC offset
    (``2030-01-02 03:30+01:00, 04:30+01:00``), the date only when it changes."""
    parts, last_day = [], None
    clock = "%H:%M:%S" if any(tick % 60 for tick in ticks) else "%H:%M"
    for tick in ticks:
        moment = datetime.fromtimestamp(tick, zone(tz))
        time_of_day = moment.strftime(clock) + _offset(moment)
        same_day = moment.date() == last_day
        parts.append(time_of_day if same_day else f"{moment:%Y-%m-%d} {time_of_day}")
        last_day = moment.date()
    return ", ".join(parts)


def _offset(moment: datetime) -> str:
    """``moment``'s UTC offset as ISO 8601 writes it: ``+01:00``, ``-03:30``, ``+00:00``."""
    offset = moment.strftime("%z")  # +0100; Python 3.11 has no %:z
    return f"{offset[:3]}:{offset[3:5]}"


def _local(tick: float, tz: str) -> str:
    """A tick as ISO 8601 in the schedule's own time zone, with its UTC offset."""
    return datetime.fromtimestamp(tick, zone(tz)).isoformat(timespec="seconds")
