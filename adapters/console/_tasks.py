"""The tasks page (every task, filtered and paged, live) and a task's own page: its
envelope, payload, result, attempts as a timeline, trace and workflow run, with the
actions on it (cancel, requeue now, later or with an edited payload)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from atp.adapters.console._format import pretty
from atp.adapters.console._render import Act, ConsoleRoute, Look, base_url, operations, render
from atp.adapters.console._session import Viewer
from atp.core import codec
from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.model import FINAL_STATES, AttemptError, State, TaskRecord
from atp.core.quoting import quote as quoted

__all__ = [
    "Attempt",
    "Fields",
    "attempts",
    "delay_of",
    "instant",
    "listing",
    "page_sizes",
    "query_text",
    "router",
    "trace_id",
]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200, 500)
"""The page sizes offered, those up to the server's ``max_page``."""
DEFAULT_SIZE = 50
# W3C Trace Context: version-traceid-spanid-flags; the trace id is the second field.
_TRACEPARENT = re.compile(r"[ \t]*[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32

Text = Annotated[str, Query(max_length=512)]
Fields = Mapping[str, str | Sequence[str]]
"""A filter form's fields as asked, by name: a text, or the values of a multiple choice."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One entry of a task's timeline: an attempt that failed, succeeded or is running."""

    number: int
    outcome: str
    """``failed``, ``succeeded``, ``running`` or ``cancelled``."""
    at: float | None
    worker: str | None = None
    took: float | None = None
    """Seconds the attempt ran, where its start is known."""
    error: AttemptError | None = None
    lease_until: float | None = None


@router.get("/tasks")
async def tasks(
    request: Request,
    viewer: Look,
    subject: Text = "",
    state: Annotated[list[State] | None, Query()] = None,
    created_from: Text = "",
    created_to: Text = "",
    id: Text = "",
    key: Text = "",
    limit: int = DEFAULT_SIZE,
    cursor: Text = "",
) -> Response:
    """Tasks newest first; an id jumps straight to that task's page."""
    if id.strip():
        target = f"{base_url(request)}/tasks/{quote(id.strip(), safe='')}"
        return RedirectResponse(target, status_code=303)
    subject, key = subject.strip(), key.strip()
    form: Fields = {
        "subject": subject,
        "state": [str(s) for s in state or ()],
        "created_from": created_from,
        "created_to": created_to,
        "key": key,
        "limit": str(limit),
    }
    context = listing(request, "Tasks", form, cursor)
    context["states"] = list(State)
    try:
        context["page"] = await operations(request).query(
            viewer.principal,
            subject=subject or None,
            states=state,
            cursor=cursor or None,
            limit=limit,
            created_after=instant(created_from, "created from"),
            created_before=instant(created_to, "created to"),
            idempotency_key=key or None,
        )
    except InvalidInput as exc:  # the form stays, with what is wrong in it
        context["error"] = exc.message
        return render(request, "tasks.html", context, status_code=400)
    return render(request, "tasks.html", context, fragment="_tasks_table.html")


@router.get("/tasks/{task_id}")
async def task(request: Request, task_id: str, viewer: Look, done: Text = "") -> Response:
    """One task: its envelope, payload, result, attempts, trace and run; the state, lease,
    result and attempts are live."""
    record = await operations(request).get(viewer.principal, task_id)
    context = _task_context(request, viewer, record, done=done)
    return render(request, "task.html", context, fragment="_task_state.html")


@router.post("/tasks/{task_id}/cancel")
async def cancel(request: Request, task_id: str, viewer: Act) -> Response:
    """Cancel the task (confirmed on its page); a running one is asked to stop."""
    await operations(request).cancel(viewer.principal, task_id)
    return _back(request, task_id, "cancelled")


@router.post("/tasks/{task_id}/requeue")
async def requeue(
    request: Request,
    task_id: str,
    viewer: Act,
    delay: Annotated[str, Form(max_length=64)] = "",
    payload: Annotated[str | None, Form()] = None,
) -> Response:
    """Requeue a dead task, now or after ``delay``; with ``payload`` (JSON text) it runs
    with that payload instead. Bad JSON or a bad delay changes nothing."""
    ops = operations(request)
    try:
        after = delay_of(delay)
        new = None if payload is None else codec.loads(payload)
    except InvalidInput as exc:
        record = await ops.get(viewer.principal, task_id)
        context = _task_context(request, viewer, record, error=exc.message, draft=payload)
        return render(request, "task.html", context, status_code=400)
    await ops.requeue(
        viewer.principal, task_id, delay=after, payload=new, replace_payload=payload is not None
    )
    return _back(request, task_id, "requeued")


def listing(request: Request, title: str, form: Fields, cursor: str) -> dict[str, Any]:
    """What a listing's page is given: its filter ``form`` as asked, the page sizes, the
    query text of its pages (without the cursor) and of its live part (with it)."""
    return {
        "title": title,
        "form": form,
        "sizes": page_sizes(request),
        "query": query_text(form),
        "live": query_text({**form, "cursor": cursor}),
        "cursor": cursor,
        "page": None,
        "error": None,
    }


def page_sizes(request: Request) -> list[int]:
    """The page sizes to offer: those up to the server's ``max_page``."""
    most = operations(request).server.max_page
    return [size for size in PAGE_SIZES if size <= most] or [most]


def instant(text: str, what: str) -> float | None:
    """Seconds since the epoch of a ``datetime-local`` value read as UTC; None if empty."""
    if not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what}: {quoted(text)} is not a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def delay_of(text: str) -> float | None:
    """The seconds of a delay field (``90``, ``5m``, ``2h``); None, i.e. now, if empty."""
    if not text.strip():
        return None
    return parse_duration(text, "delay")


def trace_id(headers: Mapping[str, str]) -> str | None:
    """The trace id of the W3C ``traceparent`` header the otel plugin writes, if valid."""
    found = _TRACEPARENT.fullmatch(headers.get("traceparent", "").rstrip(" \t"))
    if found is None or found.group(1) == _ZERO_TRACE:
        return None
    return found.group(1)


def attempts(record: TaskRecord) -> list[Attempt]:
    """The timeline: each kept error, then the attempt that succeeded or is running."""
    shown = [Attempt(e.attempt, "failed", e.at, e.worker, _took(e), e) for e in record.errors]
    last = record.task.attempt
    if record.state is State.SUCCEEDED:
        shown.append(Attempt(last, "succeeded", record.finished_at, record.lease_owner))
    elif record.state is State.RUNNING:
        lease = record.lease_until
        shown.append(Attempt(last, "running", None, record.lease_owner, lease_until=lease))
    elif record.state is State.CANCELLED:
        shown.append(Attempt(last, "cancelled", record.finished_at))
    return shown


def _took(error: AttemptError) -> float | None:
    return None if error.started_at is None else max(error.at - error.started_at, 0.0)


def _task_context(
    request: Request,
    viewer: Viewer,
    record: TaskRecord,
    *,
    done: str = "",
    error: str | None = None,
    draft: str | None = None,
) -> dict[str, Any]:
    trace = trace_id(record.task.headers)
    trace_url = operations(request).server.trace_url
    return {
        "title": f"Task {record.id}",
        "record": record,
        "task": record.task,
        "attempts": attempts(record),
        "trace_id": trace,
        "trace_link": trace_url.replace("{trace_id}", trace) if trace and trace_url else None,
        "payload": pretty(record.task.payload),
        "draft": draft,
        "error": error,
        "done": done,
        "may_cancel": record.state not in FINAL_STATES and viewer.may_publish(record.subject),
        "may_requeue": record.state is State.DEAD and viewer.admin,
    }


def query_text(values: Fields) -> str:
    """The query text of a filter, its empty fields left out."""
    pairs = []
    for name, value in values.items():
        for one in [value] if isinstance(value, str) else value:
            if one:
                pairs.append((name, one))
    return urlencode(pairs)


def _back(request: Request, task_id: str, done: str) -> Response:
    target = f"{base_url(request)}/tasks/{quote(task_id)}?done={done}"
    return RedirectResponse(target, status_code=303)
