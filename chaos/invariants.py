"""The invariants checked after each run, from the store and the ledger.

Each check returns a ``Check``: passed or not, the figures behind the verdict, and in a
failure the first offending task ids, so a report says what broke and where to look.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atp.core.model import FINAL_STATES, State, TaskRecord
from atp.core.workflows.runs import Run, RunState
from chaos.app import DOOMED, HOSTILE, HOSTILE_ATTEMPTS
from chaos.faults import FaultEvent
from chaos.ledger import LedgerView

__all__ = ["Check", "CronWindow", "Evidence", "check_all"]

SHOWN = 10
"""How many offending ids a failed check lists."""
ERROR_TEXT = 120
"""How much of a producer error's text the report shows."""
DESIGNED_TO_DIE = {DOOMED, *HOSTILE.values()}
"""Subjects whose tasks may end DEAD: the doomed and the hostile handlers."""
HOSTILE_FINAL = {HOSTILE["nan"]: {State.DEAD, State.SUCCEEDED}}
"""Final states a hostile task may end in, by subject; DEAD for the others. NaN may be
refused as unserialisable (DEAD) or stored as JSON null (SUCCEEDED)."""
AFTERMATH = 5.0
"""Seconds after a fault ends during which a redelivery is still put down to it
(leases run out, clients reconnect)."""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    figures: dict[str, Any]
    detail: str = ""


@dataclass
class Evidence:
    """What the checks read: the ledger, the store's records, what the faults did."""

    ledger: LedgerView
    records: Mapping[str, TaskRecord | None]
    """Every accepted task id -> its record now (None: the store does not know it)."""
    stored: Sequence[TaskRecord]
    """Every task of the run's subjects in the store, whoever published it."""
    killed: set[int] = field(default_factory=set)
    scheduler_log_after_pause: str | None = None
    """What the paused leader logged after it was resumed, when a suite paused one."""
    cron: CronWindow | None = None
    runs: Mapping[str, Run | None] = field(default_factory=dict)
    """Every workflow run the producer started -> the run now."""
    faults: Sequence[FaultEvent] = ()
    """The faults injected, to which extra executions are attributed."""
    exits: Sequence[str] = ()
    """atp processes that exited on their own (not by a fault) during the run."""
    crashes: Sequence[str] = ()
    """Servers that exited on their own during the run (the watchdog restarted them)."""


@dataclass(frozen=True)
class CronWindow:
    """A one-second schedule that ran through the faults: every tick in [start, end]."""

    schedule: str
    start: float
    end: float

    def ticks(self) -> list[int]:
        """Every whole second in the window, in milliseconds (the key's unit)."""
        return [s * 1000 for s in range(math.ceil(self.start), math.floor(self.end) + 1)]


def check_all(evidence: Evidence) -> list[Check]:
    checks = [
        none_lost(evidence),
        executions(evidence),
        dead_only_by_design(evidence),
        nothing_ran_after_cancel(evidence),
        no_key_twice(evidence),
    ]
    if any(r and r.subject in HOSTILE.values() for r in evidence.records.values()):
        checks.append(hostile_handled(evidence))
    if evidence.runs:
        checks.append(workflows_complete(evidence))
    if evidence.cron is not None:
        checks.append(cron_once(evidence, evidence.cron))
    if evidence.scheduler_log_after_pause is not None:
        checks.append(late_leader_refused(evidence.scheduler_log_after_pause))
    return checks


def none_lost(evidence: Evidence) -> Check:
    """Every accepted task reached a final state."""
    states = Counter(r.state.value if r else "UNKNOWN" for r in evidence.records.values())
    open_ = [i for i, r in evidence.records.items() if r is None or r.state not in FINAL_STATES]
    figures = {
        "accepted": len(evidence.records),
        "lost": len(open_),
        "servers that exited on their own": len(evidence.crashes),
        **dict(sorted(states.items())),
    }
    return Check(
        "every accepted task reached a final state", not open_, figures, _ids("not final", open_)
    )


def executions(evidence: Evidence) -> Check:
    """Every success ran to its end at least once; executions beyond one are explained."""
    done = evidence.ledger.done
    succeeded = [i for i, r in evidence.records.items() if r and r.state is State.SUCCEEDED]
    missing = [i for i in succeeded if done[i] == 0]
    extra = {i: n - 1 for i, n in done.items() if n > 1}
    by_kill = sum(n for i, n in extra.items() if _started_by_killed(evidence, i))
    starts = evidence.ledger.starts.items()
    designed = DESIGNED_TO_DIE
    started = sum(len(s) for t, s in starts if evidence.ledger.subjects.get(t) not in designed)
    causes: Counter[str] = Counter()
    for task_id, n in extra.items():
        causes[_cause(evidence, task_id)] += n
    figures = {
        "executions": sum(done.values()),
        "cut short (started, never ended)": started - sum(done.values()),
        "tasks run more than once": len(extra),
        "extra executions": sum(extra.values()),
        "explained by a killed worker": by_kill,
        "explained by a lost lease (pause, partition, slow link)": sum(extra.values()) - by_kill,
        "extra executions by fault": dict(causes.most_common()),
    }
    return Check(
        "each success ran to its end; extra runs counted",
        not missing,
        figures,
        _ids("succeeded without a recorded execution", missing),
    )


def _cause(evidence: Evidence, task_id: str) -> str:
    """The fault that ran during the task's first execution window and before its last
    start: the latest such; ``no fault at the time`` when none did."""
    starts = [s["at"] for s in evidence.ledger.starts[task_id]]
    first, last = min(starts), max(starts)
    overlapping = [
        f
        for f in evidence.faults
        if f.at <= last and f.at + (f.ended - f.offset) + AFTERMATH >= first
    ]
    return max(overlapping, key=lambda f: f.at).fault if overlapping else "no fault at the time"


def _started_by_killed(evidence: Evidence, task_id: str) -> bool:
    return any(start["pid"] in evidence.killed for start in evidence.ledger.starts[task_id])


def dead_only_by_design(evidence: Evidence) -> Check:
    """Only ``chaos.doomed`` tasks are dead, and every accepted one of them is."""
    dead = [r for r in evidence.stored if r.state is State.DEAD]
    wrong = [r.id for r in dead if r.subject not in DESIGNED_TO_DIE]
    doomed = [i for i, r in evidence.records.items() if r and r.subject == DOOMED]
    alive = [i for i in doomed if (r := evidence.records[i]) and r.state is not State.DEAD]
    hostile = sum(1 for r in evidence.records.values() if r and r.subject in HOSTILE.values())
    figures = {
        "dead": len(dead),
        "designed to fail": len(doomed),
        "hostile": hostile,
        "dead by accident": len(wrong),
    }
    detail = _ids("dead but not designed to fail", wrong) + _ids("doomed but not dead", alive)
    return Check(
        "dead letters only for tasks designed to fail", not wrong and not alive, figures, detail
    )


def hostile_handled(evidence: Evidence) -> Check:
    """Each hostile task ended as its policy says, within its attempts, and no atp
    process died of one."""
    hostile = {i: r for i, r in evidence.records.items() if r and r.subject in HOSTILE.values()}
    wrong = [
        i for i, r in hostile.items() if r.state not in HOSTILE_FINAL.get(r.subject, {State.DEAD})
    ]
    attempts = {i: _attempts(evidence, i, r) for i, r in hostile.items()}
    beyond = [i for i, n in attempts.items() if n > HOSTILE_ATTEMPTS]
    kinds = {subject: kind for kind, subject in HOSTILE.items()}
    figures: dict[str, Any] = {}
    for kind, subject in HOSTILE.items():
        mine = [r for r in hostile.values() if r.subject == subject]
        if mine:
            states = Counter(r.state.value for r in mine)
            figures[kind] = f"{len(mine)} ({', '.join(f'{k} {v}' for k, v in states.items())})"
    figures["most attempts"] = max(attempts.values(), default=0)
    figures["allowed attempts"] = HOSTILE_ATTEMPTS
    figures["atp processes that exited on their own"] = len(evidence.exits)
    detail = (
        _ids(
            "hostile tasks in the wrong final state",
            [f"{i} ({kinds[hostile[i].subject]})" for i in wrong],
        )
        + _ids("hostile tasks run beyond their attempts", beyond)
        + _ids("atp processes exited", list(evidence.exits))
    )
    return Check(
        "hostile handlers: each task final per its policy, within its attempts",
        not (wrong or beyond or evidence.exits),
        figures,
        detail,
    )


def _attempts(evidence: Evidence, task_id: str, record: TaskRecord) -> int:
    """The highest attempt number the store or the ledger saw for the task."""
    seen = [int(s.get("attempt", 0)) for s in evidence.ledger.starts[task_id]]
    return max([record.task.attempt, *seen])


def nothing_ran_after_cancel(evidence: Evidence) -> Check:
    """No execution started after a cancel that ended its task."""
    late = [
        task
        for task, cancel in evidence.ledger.cancels.items()
        if any(s["at"] > cancel["at"] for s in evidence.ledger.starts[task])
    ]
    now = [r for t in evidence.ledger.cancels if (r := evidence.records.get(t))]
    states = Counter(r.state.value for r in now)
    figures = {
        "cancelled by the producer": len(evidence.ledger.cancels),
        "ran after the cancel": len(late),
        **{f"now {k}": v for k, v in states.items()},
    }
    wrong_state = [
        t
        for t in evidence.ledger.cancels
        if (r := evidence.records.get(t)) and r.state is not State.CANCELLED
    ]
    return Check(
        "no task ran after it was cancelled",
        not late and not wrong_state,
        figures,
        _ids("ran after cancel", late) + _ids("cancelled, now another state", wrong_state),
    )


def no_key_twice(evidence: Evidence) -> Check:
    """Each idempotency key is one task, in the producer's answers and in the store."""
    stored = Counter(r.task.idempotency_key for r in evidence.stored if r.task.idempotency_key)
    twice_stored = [k for k, n in stored.items() if n > 1]
    twice_answered = [k for k, ids in evidence.ledger.ids_per_key.items() if len(ids) > 1]
    refused = {k for e in evidence.ledger.errors for k in e["keys"]}
    figures = {
        "producer errors": len(evidence.ledger.errors),
        "keys refused at least once": len(refused),
        "refused keys accepted later": len(refused & set(stored)),
        "keys stored twice": len(twice_stored),
        "errors seen": _common(e["error"] for e in evidence.ledger.errors),
    }
    detail = _ids("keys stored twice", twice_stored) + _ids(
        "keys answered with two ids", twice_answered
    )
    return Check(
        "no task published twice, errors included",
        not twice_stored and not twice_answered,
        figures,
        detail,
    )


def cron_once(evidence: Evidence, window: CronWindow) -> Check:
    """Every tick in the window was fired by exactly one task, and that task succeeded."""
    prefix = f"cron:{window.schedule}:"
    fired: dict[int, list[TaskRecord]] = {}
    for r in evidence.stored:
        key = r.task.idempotency_key or ""
        if key.startswith(prefix):
            fired.setdefault(int(key[len(prefix) :]), []).append(r)
    expected = window.ticks()
    missed = [t for t in expected if t not in fired]
    doubled = [t for t in expected if len(fired.get(t, [])) > 1]
    failed = [t for t in expected if any(r.state is not State.SUCCEEDED for r in fired.get(t, []))]
    runs = Counter(evidence.ledger.done[r.id] for t in expected for r in fired.get(t, []))
    figures = {
        "ticks in the window": len(expected),
        "fired once": len(expected) - len(missed) - len(doubled),
        "missed": len(missed),
        "fired twice": len(doubled),
        "not succeeded": len(failed),
        "executions per tick": dict(sorted(runs.items())),
    }
    detail = (
        _ids("ticks missed (epoch ms)", [str(t) for t in missed])
        + _ids("ticks fired twice", [str(t) for t in doubled])
        + _ids("ticks not succeeded", [str(t) for t in failed])
    )
    return Check(
        "every cron tick in the window fired once",
        not (missed or doubled or failed),
        figures,
        detail,
    )


def workflows_complete(evidence: Evidence) -> Check:
    """Every run succeeded, each of its steps by exactly one task that succeeded."""
    keys = Counter(r.task.idempotency_key for r in evidence.stored if r.task.idempotency_key)
    tasks = {r.task.idempotency_key: r for r in evidence.stored}
    unfinished = [
        i for i, run in evidence.runs.items() if run is None or run.state is not RunState.SUCCEEDED
    ]
    twice, failed, steps = [], [], 0
    for run_id, run in evidence.runs.items():
        for name in run.steps if run else ():
            key, steps = f"wf:{run_id}:{name}", steps + 1
            if keys[key] != 1:
                twice.append(key)
            elif tasks[key].state is not State.SUCCEEDED:
                failed.append(key)
    figures = {
        "runs": len(evidence.runs),
        "succeeded": len(evidence.runs) - len(unfinished),
        "steps": steps,
        "steps without exactly one task": len(twice),
        "step tasks not succeeded": len(failed),
    }
    detail = (
        _ids("runs not succeeded", unfinished)
        + _ids("steps without one task", twice)
        + _ids("step tasks not succeeded", failed)
    )
    return Check(
        "every workflow run succeeded, each step enqueued once",
        not (unfinished or twice or failed),
        figures,
        detail,
    )


REFUSALS = ("fenced out", "lease ran out", "leader_lost")
"""What a resumed leader logs when its late writes or ticks are refused."""


def late_leader_refused(log: str) -> Check:
    """The resumed leader's late writes were refused, or it stepped down before any."""
    counts = {marker: log.count(marker) for marker in REFUSALS}
    refused = any(counts.values())
    detail = "" if refused else "the resumed leader logged no refusal"
    figures = {f"'{k}' lines": v for k, v in counts.items()}
    return Check("a leader resumed after its lease is refused", refused, figures, detail)


def _common(errors: Iterable[str], shown: int = 3) -> str:
    """The most frequent error texts, cut short, with their counts."""
    counts = Counter(text[:ERROR_TEXT] for text in errors)
    return "; ".join(f"{n}x {text}" for text, n in counts.most_common(shown)) or "none"


def _ids(what: str, ids: Sequence[str]) -> str:
    if not ids:
        return ""
    shown = ", ".join(list(ids)[:SHOWN]) + (" ..." if len(ids) > SHOWN else "")
    return f"{len(ids)} {what}: {shown}. "
