"""Circuit breakers per subject and worker group: the policy and its arithmetic (ADR 0040).

A breaker watches the outcomes of one subject's handlers in one worker group. While
**closed**, it counts successes and retriable failures over a sliding window; once the
window holds at least ``min_volume`` outcomes and failures make up ``ratio`` of them, it
**opens**: the subject's tasks wait (parked, their attempts refunded) for ``open_for``
seconds. Then the first task to ask becomes the one **probe** (the breaker is
**half-open**); the probe's success closes the breaker and wakes the waiting tasks, its
failure opens it again for another ``open_for``.

The window is two fixed windows of ``window`` seconds, the previous one weighted by the
share of it still inside the sliding window (the approximation Cloudflare and nginx
use): one counter pair per window, whatever the traffic.

Pure functions over plain state, so the memory and SQLite ledgers share one copy and the
Redis script mirrors it line for line (``plugins/redis/lua/breaker_*.lua``); the
conformance suite holds them to the same answers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput

if TYPE_CHECKING:
    from atp.core.ports import Probe, Sample

__all__ = [
    "BREAKER_PREFIX",
    "COUNTED_KINDS",
    "Breaker",
    "BreakerState",
    "Circuit",
    "at_rest",
    "breaker_key",
    "breaker_waiters",
    "check_keys",
    "check_probes",
    "check_samples",
    "current",
    "observe",
    "probe",
    "rest_at",
    "split_key",
    "state_from_dict",
    "state_to_dict",
]

BREAKER_PREFIX = "b:"
"""Waiter lists of tasks held by an open breaker are named ``b:<group>/<subject>``; like
a pause's, no room ever opens them: only a probe's success (or the sweep) wakes them."""
COUNTED_KINDS = frozenset({"error", "timeout"})
"""Attempt error kinds a breaker counts as failures: the handler (or its host) failed in a
way another attempt may not. ``Fail`` (kind ``fail``), invalid payloads and interruptions
say nothing about the downstream and are not counted."""


class Circuit(enum.StrEnum):
    """The state of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class Breaker:
    """A circuit-breaker policy, declared on a handler: ``@app.task(..., breaker=Breaker())``."""

    ratio: float = 0.5
    """Share of failures (0 < ratio <= 1) among the window's outcomes that opens it. Default 0.5."""
    window: float = 60.0
    """Seconds of outcomes the ratio is taken over. Default 60."""
    min_volume: int = 20
    """Outcomes the window must hold before the ratio counts. Default 20."""
    open_for: float = 30.0
    """Seconds an open breaker holds tasks back before a probe may run. Default 30."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", parse_duration(self.window, "breaker window"))
        object.__setattr__(self, "open_for", parse_duration(self.open_for, "breaker open_for"))
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, int | float):
            raise InvalidInput(f"breaker ratio must be a number, got {self.ratio!r}")
        if not 0.0 < float(self.ratio) <= 1.0:
            raise InvalidInput(f"breaker ratio must be in (0, 1], got {self.ratio!r}")
        if isinstance(self.min_volume, bool) or not isinstance(self.min_volume, int):
            raise InvalidInput(f"breaker min_volume must be an integer, got {self.min_volume!r}")
        if self.min_volume < 1:
            raise InvalidInput(f"breaker min_volume must be >= 1, got {self.min_volume}")
        for what, seconds in (("window", self.window), ("open_for", self.open_for)):
            if not 0.0 < seconds <= 86400.0:
                raise InvalidInput(f"breaker {what} must be in (0, 1 day], got {seconds:g}s")
        object.__setattr__(self, "ratio", float(self.ratio))


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One breaker as its ledger keeps it."""

    key: str
    """``<group>/<subject>`` (``breaker_key``)."""
    circuit: Circuit = Circuit.CLOSED
    window_start: float = 0.0
    """Start of the current fixed window (a multiple of the policy's ``window``)."""
    ok: int = 0
    failed: int = 0
    prev_ok: int = 0
    prev_failed: int = 0
    """Counts of the current and the previous fixed window."""
    open_until: float = 0.0
    """While open: when a probe may run."""
    probe: str = ""
    """While half-open: the task id of the probe."""
    probe_until: float = 0.0
    """When the probe's claim on the breaker runs out (its worker died: another may probe)."""
    changed_at: float = 0.0
    """When the circuit last changed."""
    changed_by: str = ""
    """Who changed it then (the ``by`` of that call: a worker's name), so the one worker
    whose call changed it announces the change, whatever the clocks say."""

    @property
    def group(self) -> str:
        return split_key(self.key)[0]

    @property
    def subject(self) -> str:
        return split_key(self.key)[1]

    def failure_ratio(self, window: float, now: float) -> float:
        """The sliding window's share of failures (0 when it holds nothing)."""
        total, failed = _weighted(self, window, now)
        return failed / total if total > 0 else 0.0


def breaker_key(group: str, subject: str) -> str:
    return f"{group}/{subject}"


def split_key(key: str) -> tuple[str, str]:
    group, _, subject = key.partition("/")
    return group, subject


def breaker_waiters(key: str) -> str:
    """The waiter list of the tasks an open breaker holds."""
    return BREAKER_PREFIX + key


def observe(
    state: BreakerState, policy: Breaker, ok: int, failed: int, now: float, by: str = ""
) -> BreakerState:
    """The state after ``ok`` successes and ``failed`` counted failures reported at ``now``.

    Closed: count them; open once the window holds ``min_volume`` outcomes of which a
    ``ratio`` failed. Half-open: a failure opens it again, else a success closes it.
    Open: outcomes of attempts that started before it opened change nothing. A change
    is stamped ``changed_at=now, changed_by=by``.
    """
    if state.circuit is Circuit.OPEN:
        return state
    if state.circuit is Circuit.HALF_OPEN:
        if failed > 0:
            return _opened(state, policy, now, by)
        if ok > 0:
            start = _start(policy, now)
            return BreakerState(state.key, window_start=start, changed_at=now, changed_by=by)
        return state
    state = _rolled(state, policy, now)
    state = replace(state, ok=state.ok + ok, failed=state.failed + failed)
    total, weighted_failed = _weighted(state, policy.window, now)
    if total >= policy.min_volume and weighted_failed >= policy.ratio * total:
        return _opened(state, policy, now, by)
    return state


def probe(
    state: BreakerState, policy: Breaker, task_id: str, now: float, until: float, by: str = ""
) -> BreakerState:
    """The state after ``task_id`` asks to run at ``now``: it may if the state after names
    it as the probe, or is closed. An open breaker whose time is up turns half-open with
    this task as its probe; a half-open one whose probe ran out takes this one instead."""
    if state.circuit is Circuit.CLOSED:
        return state
    if state.circuit is Circuit.OPEN:
        if now < state.open_until:
            return state
        return replace(
            state,
            circuit=Circuit.HALF_OPEN,
            probe=task_id,
            probe_until=until,
            changed_at=now,
            changed_by=by,
        )
    if state.probe == task_id or state.probe_until <= now:
        return replace(state, probe=task_id, probe_until=until)
    return state


def _opened(state: BreakerState, policy: Breaker, now: float, by: str) -> BreakerState:
    return BreakerState(
        state.key,
        Circuit.OPEN,
        window_start=_start(policy, now),
        open_until=now + policy.open_for,
        changed_at=now,
        changed_by=by,
    )


def _start(policy: Breaker, now: float) -> float:
    return math.floor(now / policy.window) * policy.window


def _rolled(state: BreakerState, policy: Breaker, now: float) -> BreakerState:
    """Move the fixed windows on to the one holding ``now``."""
    start = _start(policy, now)
    if start <= state.window_start:
        return state
    if start - state.window_start <= policy.window:
        return replace(
            state, window_start=start, ok=0, failed=0, prev_ok=state.ok, prev_failed=state.failed
        )
    return replace(state, window_start=start, ok=0, failed=0, prev_ok=0, prev_failed=0)


def _weighted(state: BreakerState, window: float, now: float) -> tuple[float, float]:
    """(outcomes, failures) in the sliding window ending at ``now``."""
    elapsed = now - state.window_start
    if elapsed >= 2 * window:
        return 0.0, 0.0
    if elapsed >= window:  # the current fixed window is over: it is the previous one now
        share = 1.0 - (elapsed - window) / window
        return (state.ok + state.failed) * share, state.failed * share
    share = 1.0 - max(elapsed, 0.0) / window
    total = state.ok + state.failed + (state.prev_ok + state.prev_failed) * share
    return total, state.failed + state.prev_failed * share


def state_to_dict(state: BreakerState) -> dict[str, Any]:
    return {
        "key": state.key,
        "circuit": state.circuit.value,
        "window_start": state.window_start,
        "ok": state.ok,
        "failed": state.failed,
        "prev_ok": state.prev_ok,
        "prev_failed": state.prev_failed,
        "open_until": state.open_until,
        "probe": state.probe,
        "probe_until": state.probe_until,
        "changed_at": state.changed_at,
        "changed_by": state.changed_by,
    }


def state_from_dict(data: dict[str, Any]) -> BreakerState:
    return BreakerState(
        str(data["key"]),
        Circuit(data.get("circuit", "closed")),
        window_start=float(data.get("window_start", 0.0)),
        ok=int(data.get("ok", 0)),
        failed=int(data.get("failed", 0)),
        prev_ok=int(data.get("prev_ok", 0)),
        prev_failed=int(data.get("prev_failed", 0)),
        open_until=float(data.get("open_until", 0.0)),
        probe=str(data.get("probe", "")),
        probe_until=float(data.get("probe_until", 0.0)),
        changed_at=float(data.get("changed_at", 0.0)),
        changed_by=str(data.get("changed_by", "")),
    )


# -- what every ledger shares ----------------------------------------------------------------
# A closed breaker that counted nothing in its last two windows is at rest: every ledger
# reads it as a key never written (so they answer alike however soon each forgot it) and
# forgets it, so state does not grow with the subjects that ever reported. A ledger checks
# a whole batch before it changes anything.


def rest_at(state: BreakerState, window: float) -> float | None:
    """When a breaker in ``state`` comes to rest under a policy of ``window`` seconds (None:
    open or half-open, it never does; ``-inf``: closed with nothing counted, it is)."""
    if state.circuit is not Circuit.CLOSED:
        return None
    if state.ok or state.failed:
        return state.window_start + 2 * window
    if state.prev_ok or state.prev_failed:
        return state.window_start + window
    return -math.inf


def at_rest(state: BreakerState, window: float, now: float) -> bool:
    """Whether ``state`` is closed and counted nothing in the two windows up to ``now``."""
    rest = rest_at(state, window)
    return rest is not None and now >= rest


def current(state: BreakerState | None, key: str, policy: Breaker, now: float) -> BreakerState:
    """The breaker as a call at ``now`` reads it: a key never written, or at rest, is new."""
    if state is None or at_rest(state, policy.window, now):
        return BreakerState(key)
    return state


def check_keys(keys: Iterable[object]) -> None:
    """InvalidInput unless every key is a non-empty string."""
    for key in keys:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"a breaker key must be a non-empty string, got {key!r}")


def check_samples(samples: Sequence[Sample]) -> None:
    """InvalidInput, for the whole batch, unless every sample has a key and counts >= 0."""
    check_keys(sample.key for sample in samples)
    for sample in samples:
        for what, count in (("ok", sample.ok), ("failed", sample.failed)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidInput(
                    f"breaker {sample.key!r}: {what} must be an integer >= 0, got {count!r}"
                )


def check_probes(probes: Sequence[Probe]) -> None:
    """InvalidInput, for the whole batch, unless every probe has a key and a task id."""
    check_keys(probe.key for probe in probes)
    for probe in probes:
        if not isinstance(probe.task_id, str) or not probe.task_id:
            raise InvalidInput(
                f"breaker {probe.key!r}: a probe needs a task id, got {probe.task_id!r}"
            )
