"""The dead letters page: dead tasks by subject pattern, with their reason and last error;
requeue (now or later) or purge a selection or everything the filter matches.

A bulk action goes through a preview, ``POST /dead/preview``, which says how many dead
letters it would touch (from the store's counters, no scan) and holds the Confirm form;
only that form's POST acts. A single task is requeued with an edited payload on its page.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from atp.adapters.console._render import Act, ConsoleRoute, Look, base_url, operations, render
from atp.adapters.console._tasks import DEFAULT_SIZE, delay_of, listing, query_text
from atp.core.errors import InvalidInput
from atp.core.subjects import validate_pattern

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

Scope = Literal["selected", "matching"]
Bulk = Literal["requeue-selected", "requeue-matching", "purge-selected", "purge-matching"]
Text = Annotated[str, Form(max_length=512)]
Ids = Annotated[list[str], Form(default_factory=list)]


@router.get("/dead")
async def dead(
    request: Request,
    viewer: Look,
    subject: Annotated[str, Query(max_length=512)] = "",
    limit: int = DEFAULT_SIZE,
    cursor: Annotated[str, Query(max_length=512)] = "",
    done: Annotated[str, Query(max_length=16)] = "",
    n: int = 0,
    skipped: int = 0,
) -> Response:
    """One page of dead letters, newest first, and how many the filter matches (live)."""
    ops = operations(request)
    pattern = subject.strip() or None
    form = {"subject": subject.strip(), "limit": str(limit)}
    context = listing(request, "Dead letters", form, cursor)
    context.update(done=done, n=n, skipped=skipped, count=None)
    try:
        context["count"] = await ops.count_dead(viewer.principal, pattern)
        context["page"] = await ops.dead_letters(
            viewer.principal, subject=pattern, cursor=cursor or None, limit=limit
        )
    except InvalidInput as exc:  # the form stays, with what is wrong in it
        context["error"] = exc.message
        return render(request, "dead.html", context, status_code=400)
    return render(request, "dead.html", context, fragment="_dead_count.html")


@router.post("/dead/preview")
async def preview(
    request: Request,
    viewer: Act,
    bulk: Annotated[Bulk, Form()],
    ids: Ids,
    subject: Text = "",
    delay: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """What a bulk action would do, and its Confirm form; nothing changes here."""
    viewer.principal.scopes.require_admin()
    action, scope = bulk.split("-")
    pattern = subject.strip() or None
    if pattern is not None:
        validate_pattern(pattern)
    chosen = _selection(request, ids) if scope == "selected" else []
    if action == "requeue":
        delay_of(delay)  # refused here, before the Confirm form is offered
    if scope == "selected":
        count = len(chosen)
    else:
        count = await operations(request).count_dead(viewer.principal, pattern)
    context = {
        "title": "Confirm",
        "action": action,
        "scope": scope,
        "ids": chosen,
        "subject": pattern or "",
        "delay": delay.strip(),
        "count": count,
        "back": f"{base_url(request)}/dead?{query_text({'subject': pattern or ''})}",
    }
    return render(request, "dead_confirm.html", context)


@router.post("/dead/requeue")
async def requeue(
    request: Request,
    viewer: Act,
    scope: Annotated[Scope, Form()],
    ids: Ids,
    subject: Text = "",
    delay: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Requeue the selection, or every dead letter the filter matches (confirmed)."""
    ops = operations(request)
    pattern = subject.strip() or None
    after = delay_of(delay)
    if scope == "selected":
        done = await ops.requeue_many(viewer.principal, _selection(request, ids), delay=after)
    else:
        done = await ops.requeue_matching(viewer.principal, pattern, delay=after)
    return _back(request, pattern, "requeued", len(done.records), len(done.skipped))


@router.post("/dead/purge")
async def purge(
    request: Request,
    viewer: Act,
    scope: Annotated[Scope, Form()],
    ids: Ids,
    subject: Text = "",
) -> Response:
    """Purge the selection, or every dead letter the filter matches (confirmed)."""
    ops = operations(request)
    pattern = subject.strip() or None
    if scope == "selected":
        purged = await ops.purge(viewer.principal, _selection(request, ids))
    else:
        purged = await ops.purge_matching(viewer.principal, pattern)
    return _back(request, pattern, "purged", purged, 0)


def _selection(request: Request, ids: list[str]) -> list[str]:
    """The ticked ids, each once; InvalidInput for none or more than a batch."""
    chosen = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not chosen:
        raise InvalidInput("no dead letter is selected: tick some, or act on the whole filter")
    most = operations(request).server.max_batch
    if len(chosen) > most:
        raise InvalidInput(f"select at most {most} dead letters at once, got {len(chosen)}")
    return chosen


def _back(request: Request, subject: str | None, done: str, n: int, skipped: int) -> Response:
    notice = {"subject": subject or "", "done": done, "n": str(n), "skipped": str(skipped)}
    return RedirectResponse(f"{base_url(request)}/dead?{query_text(notice)}", status_code=303)
