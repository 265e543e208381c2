"""Workflow runs: the list, by workflow and state; a run's page, its steps drawn as a graph
(``static/dag.js`` lays it out with dagre) over a plain table of the same steps, what each
waiting step waits on and its compensation; and the actions, signal and cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from atp.adapters._api.operations import Operations
from atp.adapters._api.workflows import published_subjects
from atp.adapters.console._format import seconds, when
from atp.adapters.console._render import (
    Act,
    ConsoleRoute,
    Look,
    base_url,
    is_fragment,
    operations,
    render,
)
from atp.adapters.console._session import Viewer
from atp.core import codec
from atp.core.errors import InvalidInput, PermissionDenied
from atp.core.workflows.definition import Definition, Step, StepKind
from atp.core.workflows.runs import Run, RunState, StepRun, StepState

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
"""Runs on one page of the list (or the server's max_page, if smaller)."""
SHOWN_WAITS = 3
"""Waits named in a row of the list; the rest are counted."""


@dataclass(frozen=True, slots=True)
class StepView:
    """One step of a run as the page shows it: its definition, its state, its wait."""

    spec: Step
    step: StepRun
    waits: str
    """What the step waits on, in words; empty when it waits on nothing."""
    task_href: str | None
    """The console page of the step's task, once it has one."""


@router.get("/runs")
async def runs(
    request: Request,
    viewer: Look,
    workflow: str = "",
    state: Annotated[list[RunState] | None, Query(max_length=len(RunState))] = None,
    cursor: str = "",
) -> Response:
    """Runs newest first, by workflow name and states, a page at a time."""
    ops = operations(request)
    who = viewer.principal
    found = await ops.workflows.list(
        who, workflow=workflow or None, states=state, cursor=cursor or None, limit=_page(ops)
    )
    rows = [(run, await _waits_of(ops, viewer, run)) for run in found.items]
    filters = {"workflow": workflow, "state": [s.value for s in state or ()]}
    context = {
        "title": "Workflow runs",
        "rows": rows,
        "filters": filters,
        "states": list(RunState),
        "workflows": [] if is_fragment(request) else await _workflow_names(ops, viewer),
        "here": _url(request, "/runs", filters, cursor),
        "next": _url(request, "/runs", filters, found.next_cursor) if found.next_cursor else None,
        "first": _url(request, "/runs", filters, "") if cursor else None,
    }
    return render(request, "runs.html", context, fragment="_runs_table.html")


@router.get("/runs/{run_id}")
async def run_page(request: Request, viewer: Look, run_id: str, done: str = "") -> Response:
    """A run: its graph, its steps, its input, result and error; signal and cancel."""
    run, definition = await _run(request, viewer, run_id)
    views = _views(request, run, definition)
    context = {
        "title": f"Run {run.id}",
        "run": run,
        "views": views,
        "dag": _dag(views),
        "may_run": viewer.may_run(run.workflow, published_subjects(definition)),
        "signals": [s for s in _signal_names(definition) if s not in run.signals],
        "done": done,
    }
    return render(request, "runs_run.html", context, fragment="_runs_run.html")


@router.post("/runs/{run_id}/signal")
async def signal(
    request: Request,
    viewer: Act,
    run_id: str,
    name: Annotated[str, Form(min_length=1, max_length=128)],
    payload: Annotated[str, Form()] = "",
) -> Response:
    """Send signal ``name`` with the JSON ``payload`` (empty: null) to the run."""
    value = _payload(payload)
    await operations(request).workflows.signal(viewer.principal, run_id, name, value)
    return _back(request, run_id, "signalled")


@router.get("/runs/{run_id}/cancel")
async def cancel_page(request: Request, viewer: Look, run_id: str) -> Response:
    """Ask before cancelling: the run's steps stop and nothing is compensated."""
    run, definition = await _run(request, viewer, run_id)
    if not viewer.may_run(run.workflow, published_subjects(definition)):
        raise PermissionDenied(f"this token may not cancel runs of workflow {run.workflow!r}")
    return render(request, "runs_cancel.html", {"title": f"Cancel run {run.id}", "run": run})


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, viewer: Act, run_id: str) -> Response:
    """Cancel the run (the confirmation page's form)."""
    await operations(request).workflows.cancel(viewer.principal, run_id)
    return _back(request, run_id, "cancelled")


async def _run(request: Request, viewer: Viewer, run_id: str) -> tuple[Run, Definition]:
    workflows = operations(request).workflows
    run = await workflows.get(viewer.principal, run_id)
    return run, await workflows.definition(viewer.principal, run.workflow, run.version)


async def _workflow_names(ops: Operations, viewer: Viewer) -> list[str]:
    """The filter's choices (the live table needs none)."""
    return sorted({d.name for d in await ops.workflows.definitions(viewer.principal)})


def _page(ops: Operations) -> int:
    return min(PAGE, ops.server.max_page)


def _url(request: Request, path: str, filters: dict[str, Any], cursor: str | None) -> str:
    query = urlencode({**filters, "cursor": cursor or ""}, doseq=True)
    return f"{base_url(request)}{path}?{query}"


def _back(request: Request, run_id: str, done: str) -> RedirectResponse:
    target = f"{base_url(request)}/runs/{quote(run_id, safe='')}?done={done}"
    return RedirectResponse(target, status_code=303)


def _payload(text: str) -> Any:
    """The signal's payload from the form's JSON text; InvalidInput if it is not JSON."""
    if not text.strip():
        return None
    try:
        return codec.loads(text)
    except InvalidInput as exc:
        message = exc.message.removeprefix("malformed JSON: ")
        raise InvalidInput(f"the signal payload is not valid JSON: {message}") from exc


def _signal_names(definition: Definition) -> list[str]:
    return [s.signal for s in definition.steps if s.kind is StepKind.SIGNAL and s.signal]


# -- what each step waits on ----------------------------------------------------------


async def _waits_of(ops: Operations, viewer: Viewer, run: Run) -> str:
    """The list's summary of what an active run waits on (definitions are cached)."""
    if run.finished:
        return ""
    definition = await ops.workflows.definition(viewer.principal, run.workflow, run.version)
    busy = [(spec, run.steps.get(spec.name)) for spec in definition.steps]
    waits = [
        _wait(spec, step, run)
        for spec, step in busy
        if step is not None and StepState.ACTIVE in (step.state, step.compensation)
    ]
    more = len(waits) - SHOWN_WAITS
    return "; ".join(waits[:SHOWN_WAITS]) + (f"; {more} more" if more > 0 else "")


def _views(request: Request, run: Run, definition: Definition) -> list[StepView]:
    tasks = f"{base_url(request)}/tasks/"
    views = []
    for name in definition.order():
        spec, step = definition.step(name), run.steps[name]
        href = tasks + quote(step.task_id, safe="") if step.task_id else None
        views.append(StepView(spec, step, _wait(spec, step, run), href))
    return views


def _wait(spec: Step, step: StepRun, run: Run) -> str:
    """What ``step`` waits on: its parents, condition and signal before it starts; its
    signal, timer or task while active; its compensation's task while undone."""
    if step.compensation is StepState.ACTIVE:
        return f"compensation task on {spec.compensate}"
    if step.state is StepState.ACTIVE:
        return _active_wait(spec, step)
    if step.state is not StepState.PENDING:
        return ""
    parts = []
    pending = [p for p in spec.after if run.steps[p].state is not StepState.SUCCEEDED]
    if pending:
        parts.append(("steps " if len(pending) > 1 else "step ") + ", ".join(pending))
    if spec.when is not None:
        parts.append("condition " + orjson.dumps(spec.when).decode())
    if spec.kind is StepKind.SIGNAL:
        received = " (received already)" if spec.signal in run.signals else ""
        parts.append(f"then signal {spec.signal}{received}")
    return "; ".join(parts)


def _active_wait(spec: Step, step: StepRun) -> str:
    if spec.kind is StepKind.SIGNAL:
        until = f"times out {when(step.deadline)}" if step.deadline else "no timeout"
        return f"signal {spec.signal} ({until})"
    if spec.kind is StepKind.SLEEP:
        fires = (step.started_at or 0.0) + (spec.duration or 0.0)
        return f"timer ({seconds(spec.duration)}, fires {when(fires)})"
    attempt = f", attempt {step.attempts}" if step.attempts else ""
    return f"task on {spec.subject}{attempt}"


# -- the graph ------------------------------------------------------------------------


def _dag(views: list[StepView]) -> str:
    """The ``data-dag`` JSON that static/dag.js draws: nodes and parent-to-child edges."""
    nodes = [_node(view) for view in views]
    edges = [[parent, view.spec.name] for view in views for parent in view.spec.after]
    return orjson.dumps({"nodes": nodes, "edges": edges}).decode()


def _node(view: StepView) -> dict[str, Any]:
    spec, step = view.spec, view.step
    node: dict[str, Any] = {
        "id": spec.name,
        "label": spec.name,
        "state": step.state.value,
        "detail": view.waits or step.error or _kind(spec),
    }
    if view.task_href:
        node["href"] = view.task_href
    if step.compensation is not None:
        node["mark"] = f"compensation-{step.compensation.value}"
    return node


def _kind(spec: Step) -> str:
    if spec.kind is StepKind.TASK:
        return f"task on {spec.subject}"
    if spec.kind is StepKind.SIGNAL:
        return f"signal {spec.signal}"
    return f"sleep {seconds(spec.duration)}"
