"""The schedules pages: every cron schedule with its next ticks and last firing, one
schedule's page, and the admin actions (create, edit, pause, resume, trigger, delete).

Input is read as the REST API reads it (its ``ScheduleIn`` model, then the cron service's
checks), so a bad expression, zone, subject or payload shows the form again with the
error and stores nothing.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from atp.adapters.console._format import pretty
from atp.adapters.console._render import Act, ConsoleRoute, Look, base_url, operations, render
from atp.adapters.http._schedules import ScheduleIn
from atp.core import codec
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.ids import is_id
from atp.core.schedules import Misfire, Overlap, Schedule

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

UPCOMING = 3
"""Next ticks shown per schedule."""
NEW = "_new"
"""The creation form's path segment: never a schedule's name (those start with a letter
or a digit)."""
FIELDS = ("name", "expression", "subject", "payload", "tz", "misfire", "overlap")
DEFAULTS = {
    "name": "",
    "expression": "",
    "subject": "",
    "payload": "",
    "tz": "UTC",
    "misfire": Misfire.ONCE.value,
    "overlap": Overlap.ALLOW.value,
}
"""The new schedule's form: the REST API's defaults."""


@router.get("/schedules")
async def schedules(request: Request, viewer: Look, done: str = "", task: str = "") -> Response:
    """Every schedule, by name, as a live table."""
    ops = operations(request).schedules
    rows = [(s, ops.service.upcoming(s, UPCOMING)) for s in await ops.list(viewer.principal)]
    context = {"title": "Schedules", "rows": rows, **_notice(done, task)}
    return render(request, "schedules.html", context, fragment="_schedules_table.html")


@router.get(f"/schedules/{NEW}")
async def new_form(request: Request, viewer: Look) -> Response:
    """The form of a new schedule (admins only: nobody else may store one)."""
    viewer.principal.scopes.require_admin()
    return _form(request, DEFAULTS, editing=None)


@router.post(f"/schedules/{NEW}")
async def create(request: Request, viewer: Act) -> Response:
    """Store a new schedule; the form again with the error for bad input or a taken name."""
    values = await _values(request)
    try:
        stored = await operations(request).schedules.add(viewer.principal, **_parsed(values))
    except (InvalidInput, AlreadyExists) as exc:
        return _form(request, values, editing=None, error=exc)
    return _redirect(request, _page(stored.name), done="created")


@router.get("/schedules/{name}")
async def schedule(
    request: Request, viewer: Look, name: str, done: str = "", task: str = ""
) -> Response:
    """One schedule: its definition, next ticks, last firing and actions."""
    ops = operations(request).schedules
    found = await ops.get(viewer.principal, name)
    context = {
        "title": f"Schedule {found.name}",
        "schedule": found,
        "upcoming": ops.service.upcoming(found, UPCOMING),
        **_notice(done, task),
    }
    return render(request, "schedules_detail.html", context, fragment="_schedules_detail.html")


@router.get("/schedules/{name}/edit")
async def edit_form(request: Request, viewer: Look, name: str) -> Response:
    """The schedule's form, filled in with its definition."""
    viewer.principal.scopes.require_admin()
    found = await operations(request).schedules.get(viewer.principal, name)
    return _form(request, _definition(found), editing=found.name)


@router.post("/schedules/{name}/edit")
async def edit(request: Request, viewer: Act, name: str) -> Response:
    """Store the new definition, keeping the schedule's paused state and history."""
    values = {**await _values(request), "name": name}
    try:
        stored = await operations(request).schedules.update(viewer.principal, **_parsed(values))
    except InvalidInput as exc:
        return _form(request, values, editing=name, error=exc)
    return _redirect(request, _page(stored.name), done="updated")


@router.post("/schedules/{name}/pause")
async def pause(request: Request, viewer: Act, name: str) -> Response:
    stored = await operations(request).schedules.pause(viewer.principal, name)
    return _redirect(request, await _back(request, stored.name), done="paused")


@router.post("/schedules/{name}/resume")
async def resume(request: Request, viewer: Act, name: str) -> Response:
    stored = await operations(request).schedules.resume(viewer.principal, name)
    return _redirect(request, await _back(request, stored.name), done="resumed")


@router.post("/schedules/{name}/trigger")
async def trigger(request: Request, viewer: Act, name: str) -> Response:
    """Publish the schedule's task now; the notice links to it."""
    published = await operations(request).schedules.trigger(viewer.principal, name)
    return _redirect(request, await _back(request, name), done="triggered", task=published.id)


@router.get("/schedules/{name}/delete")
async def delete_form(request: Request, viewer: Look, name: str) -> Response:
    """The confirmation step before a schedule is deleted (it works without scripts)."""
    viewer.principal.scopes.require_admin()
    found = await operations(request).schedules.get(viewer.principal, name)
    context = {"title": f"Delete {found.name}", "schedule": found}
    return render(request, "schedules_delete.html", context)


@router.post("/schedules/{name}/delete")
async def delete(request: Request, viewer: Act, name: str) -> Response:
    await operations(request).schedules.remove(viewer.principal, name)
    return _redirect(request, "/schedules", done="deleted")


def _notice(done: str, task: str) -> dict[str, Any]:
    """What the page says after an action: a fixed code the template turns into text,
    and the triggered task, shown only when it has an id's form (no text from the URL)."""
    return {"done": done, "task": task if is_id(task) else None}


def _form(
    request: Request,
    values: Mapping[str, str],
    *,
    editing: str | None,
    error: InvalidInput | AlreadyExists | None = None,
) -> Response:
    """The create form (``editing`` None) or the edit form of schedule ``editing``."""
    context = {
        "title": f"Edit {editing}" if editing else "New schedule",
        "values": values,
        "editing": editing,
        "error": error.message if error else "",
        "misfires": [m.value for m in Misfire],
        "overlaps": [o.value for o in Overlap],
        "zones": _zones(),
    }
    status = error.http_status if error else 200
    return render(request, "schedules_form.html", context, status_code=status)


async def _values(request: Request) -> dict[str, str]:
    """The form's fields as sent (a missing or file field reads as empty)."""
    form = await request.form()
    values = {}
    for field in FIELDS:
        value = form.get(field, "")
        values[field] = value if isinstance(value, str) else ""
    return values


def _parsed(values: Mapping[str, str]) -> dict[str, Any]:
    """The form as ``ScheduleOperations.add`` takes it, checked by the REST API's model;
    InvalidInput for a value it refuses (the cron service checks the rest)."""
    text = values["payload"].strip()
    try:
        payload = codec.loads(text) if text else None
    except InvalidInput as exc:
        raise InvalidInput(f"payload: {exc.message}") from exc
    try:
        body = ScheduleIn.model_validate({**values, "payload": payload})
    except ValidationError as exc:
        raise InvalidInput(_invalid(exc)) from exc
    return body.model_dump()


def _invalid(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)


def _definition(schedule: Schedule) -> dict[str, str]:
    """The form's values for ``schedule``; no payload is an empty box, not ``null``."""
    return {
        "name": schedule.name,
        "expression": schedule.expression,
        "subject": schedule.subject,
        "payload": "" if schedule.payload is None else pretty(schedule.payload),
        "tz": schedule.tz,
        "misfire": schedule.misfire.value,
        "overlap": schedule.overlap.value,
    }


async def _back(request: Request, name: str) -> str:
    """Where an action returns: the list when its form says so, else the schedule's page."""
    back = (await request.form()).get("back")
    return "/schedules" if back == "list" else _page(name)


def _page(name: str) -> str:
    return f"/schedules/{quote(name, safe='')}"


def _redirect(request: Request, path: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{base_url(request)}{path}?{urlencode(query)}", status_code=303)


@cache
def _zones() -> list[str]:
    """Every IANA zone this host knows, for the form's suggestions."""
    return sorted(zoneinfo.available_timezones())
