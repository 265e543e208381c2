"""The overview: every subject's depth by state, the last hour's throughput and failures
as charts, the workers alive, the scheduler's leader and how far it lags."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from atp.adapters.console._render import ConsoleRoute, Look, operations, platform, render
from atp.core.model import State
from atp.core.ports import ACTIVITY_BUCKET, ActivityCount

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

HOUR = 3600.0
"""Seconds of activity the charts span."""
DEPTH = (State.SCHEDULED, State.READY, State.RUNNING, State.DEAD)
"""The states a subject's depth is shown in; a task waiting to retry is SCHEDULED."""
FAILED = frozenset({State.SCHEDULED, State.DEAD})
"""How a failed attempt ends in the activity counts: SCHEDULED (to retry) or DEAD."""
PARTS = {"summary": "_overview_summary.html", "charts": "_overview_charts.html"}
"""The live parts of the page, refreshed apart (the charts less often)."""


@dataclass(frozen=True, slots=True)
class Depth:
    """One subject's row: its tasks by state now, its attempts ended in the last hour."""

    subject: str
    states: Mapping[State, int]
    """Tasks by state, from the store's maintained counts (never a scan)."""
    succeeded: int = 0
    failed: int = 0
    """Attempts that failed in the last hour, to be retried or dead."""

    def of(self, state: State | str) -> int:
        """The tasks in ``state`` (a template names it: ``row.of("READY")``)."""
        return self.states.get(State(state), 0)

    @property
    def total(self) -> int:
        """The tasks in the ``DEPTH`` states."""
        return sum(self.of(state) for state in DEPTH)

    @property
    def waiting(self) -> int:
        return self.of(State.SCHEDULED) + self.of(State.READY)


@router.get("/")
async def overview(
    request: Request,
    viewer: Look,
    part: Annotated[Literal["summary", "charts"], Query()] = "summary",
) -> Response:
    """The whole page, or one live part of it (``part``) for a refresh."""
    ops, who = operations(request), viewer.principal
    now = platform(request).clock.now()
    counts = await ops.counts(who)
    activity = await ops.activity(who, since=now - HOUR)
    due = await ops.oldest_due(who) if activity is not None else None
    rows = depths(counts, activity or [])
    context = {
        "rows": rows,
        "totals": _total(rows),
        "depth_states": DEPTH,
        "fleet": await ops.fleet.workers(who),
        "kept": activity is not None,
        "due": due,
        "lag": None if due is None else max(0.0, now - due),
        "charts": None if activity is None else charts(activity, since=now - HOUR, now=now),
    }
    return render(request, "overview.html", context, fragment=PARTS[part])


def depths(
    counts: Mapping[tuple[str, State], int], activity: Iterable[ActivityCount]
) -> list[Depth]:
    """A row per subject with tasks or with attempts ended lately, by subject."""
    states: dict[str, Counter[State]] = {}
    for (subject, state), n in counts.items():
        if n > 0:
            states.setdefault(subject, Counter())[state] += n
    succeeded: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for count in activity:
        states.setdefault(count.subject, Counter())
        if count.state is State.SUCCEEDED:
            succeeded[count.subject] += count.count
        elif count.state in FAILED:
            failed[count.subject] += count.count
    return [
        Depth(subject, by_state, succeeded[subject], failed[subject])
        for subject, by_state in sorted(states.items())
    ]


def _total(rows: Iterable[Depth]) -> Depth:
    states: Counter[State] = Counter()
    succeeded = failed = 0
    for row in rows:
        states.update(row.states)
        succeeded += row.succeeded
        failed += row.failed
    return Depth("all subjects", states, succeeded, failed)


def charts(activity: Iterable[ActivityCount], *, since: float, now: float) -> dict[str, Any]:
    """What ``static/chart.js`` draws: attempts per minute from ``since`` to ``now``, all
    subjects together, succeeded in one chart, retried and dead in the other."""
    minutes = _minutes(since, now)
    ended = list(activity)
    succeeded = _per_minute(ended, minutes, {State.SUCCEEDED})
    retried = _per_minute(ended, minutes, {State.SCHEDULED})
    dead = _per_minute(ended, minutes, {State.DEAD})
    return {
        "throughput": _chart(minutes, [("Succeeded", "chart-succeeded", succeeded)]),
        "failures": _chart(
            minutes, [("Retried", "chart-retrying", retried), ("Dead", "chart-dead", dead)]
        ),
        "succeeded": sum(succeeded),
        "retried": sum(retried),
        "dead": sum(dead),
    }


def _minutes(since: float, now: float) -> list[float]:
    """The start of every bucket from ``since``'s to ``now``'s."""
    first = math.floor(since / ACTIVITY_BUCKET)
    last = math.floor(now / ACTIVITY_BUCKET)
    return [n * ACTIVITY_BUCKET for n in range(first, last + 1)]


def _per_minute(
    activity: Iterable[ActivityCount], minutes: list[float], states: set[State]
) -> list[int]:
    index = {at: n for n, at in enumerate(minutes)}
    values = [0] * len(minutes)
    for count in activity:
        n = index.get(count.at)
        if n is not None and count.state in states:
            values[n] += count.count
    return values


def _chart(minutes: list[float], series: list[tuple[str, str, list[int]]]) -> dict[str, Any]:
    """One chart: ``color`` names a CSS variable of console.css, so both themes read."""
    return {
        "x": [int(at) for at in minutes],
        "series": [
            {"label": label, "color": color, "values": values} for label, color, values in series
        ],
    }
