"""The chaos invariants pass on a clean run and catch each kind of violation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from atp.core.model import State, Task, TaskRecord
from atp.core.workflows.runs import Run, RunState, StepRun, StepState
from chaos.app import DOOMED, HOSTILE, HOSTILE_ATTEMPTS, WORK
from chaos.faults import FaultEvent
from chaos.invariants import Evidence, check_all
from chaos.ledger import Ledger, LedgerView, record


def _record(task_id: str, state: State, subject: str = WORK, key: str | None = None) -> TaskRecord:
    task = Task(id=task_id, subject=subject, idempotency_key=key or f"k-{task_id}")
    return TaskRecord(task=task, state=state, updated_at=0.0)


def _clean(tmp_path: Path) -> tuple[Ledger, dict[str, TaskRecord | None]]:
    ledger = Ledger(tmp_path)
    records: dict[str, TaskRecord | None] = {}
    for n, (subject, state) in enumerate(
        [(WORK, State.SUCCEEDED), (WORK, State.SUCCEEDED), (DOOMED, State.DEAD)]
    ):
        task_id = f"t{n}"
        ledger.accepted(f"k-{task_id}", task_id, subject, 0.0)
        record(tmp_path, "exec-1", ev="start", task=task_id, attempt=1)
        if subject == WORK:
            record(tmp_path, "exec-1", ev="done", task=task_id, attempt=1)
        records[task_id] = _record(task_id, state, subject)
    return ledger, records


def _verdicts(evidence: Evidence) -> dict[str, bool]:
    return {check.name: check.passed for check in check_all(evidence)}


def _evidence(ledger: Ledger, records: dict[str, TaskRecord | None]) -> Evidence:
    stored = [r for r in records.values() if r is not None]
    return Evidence(ledger.read(), records, stored)


def test_a_clean_run_passes_every_invariant(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    assert all(_verdicts(_evidence(ledger, records)).values())


def test_an_unfinished_or_unknown_task_is_lost(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    records["t0"] = _record("t0", State.RUNNING)
    records["t1"] = None
    checks = {c.name: c for c in check_all(_evidence(ledger, records))}
    lost = checks["every accepted task reached a final state"]
    assert not lost.passed
    assert "t0" in lost.detail
    assert "t1" in lost.detail


def test_a_success_without_an_execution_fails(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    ledger.accepted("k-t9", "t9", WORK, 0.0)
    records["t9"] = _record("t9", State.SUCCEEDED)
    verdicts = _verdicts(_evidence(ledger, records))
    assert not verdicts["each success ran to its end; extra runs counted"]


def test_extra_executions_are_counted_and_explained(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    record(tmp_path, "exec-2", ev="start", task="t0", attempt=2)
    record(tmp_path, "exec-2", ev="done", task="t0", attempt=2)
    evidence = _evidence(ledger, records)
    evidence.killed = {int(line["pid"]) for line in evidence.ledger.starts["t0"]}
    check = next(c for c in check_all(evidence) if c.name.startswith("each success"))
    assert check.passed
    assert check.figures["extra executions"] == 1
    assert check.figures["explained by a killed worker"] == 1


def test_a_dead_task_not_designed_to_fail_is_caught(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    records["t0"] = _record("t0", State.DEAD)
    assert not _verdicts(_evidence(ledger, records))["dead letters only for tasks designed to fail"]


def test_a_doomed_task_that_succeeded_is_caught(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    records["t2"] = _record("t2", State.SUCCEEDED, DOOMED)
    assert not _verdicts(_evidence(ledger, records))["dead letters only for tasks designed to fail"]


def test_a_start_after_a_cancel_is_caught(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    ledger.accepted("k-t5", "t5", WORK, 5.0)
    ledger.cancelled("k-t5", "t5", "CANCELLED")
    record(tmp_path, "exec-3", ev="start", task="t5", attempt=1)
    records["t5"] = _record("t5", State.CANCELLED)
    assert not _verdicts(_evidence(ledger, records))["no task ran after it was cancelled"]


def test_a_cancel_that_only_requested_is_not_held_against_the_run(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    ledger.cancelled("k-t0", "t0", "RUNNING")  # a cancel request on a running task
    record(tmp_path, "exec-3", ev="start", task="t0", attempt=2)
    assert _verdicts(_evidence(ledger, records))["no task ran after it was cancelled"]


def test_a_key_stored_twice_is_caught(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    ledger.refused(["k-t0"], "BackendUnavailable: timeout")
    twin = _record("t7", State.SUCCEEDED, key="k-t0")
    evidence = Evidence(ledger.read(), records, [*filter(None, records.values()), twin])
    check = next(c for c in check_all(evidence) if c.name.startswith("no task published"))
    assert not check.passed
    assert check.figures["producer errors"] == 1


def test_a_key_answered_with_two_ids_is_caught(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    ledger.accepted("k-t0", "t8", WORK, 0.0)
    assert not _verdicts(_evidence(ledger, records))["no task published twice, errors included"]


def test_a_resumed_leader_must_show_a_refusal(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    evidence = _evidence(ledger, records)
    evidence.scheduler_log_after_pause = "forwarder: fenced out, stepping down: token 3 < 4\n"
    assert all(_verdicts(evidence).values())
    evidence.scheduler_log_after_pause = "forwarder: moved 12 tasks\n"
    assert not _verdicts(evidence)["a leader resumed after its lease is refused"]


def test_a_torn_last_ledger_line_is_skipped(tmp_path: Path) -> None:
    _clean(tmp_path)
    with (tmp_path / "exec-1.jsonl").open("a") as out:
        out.write('{"ev":"done","task":"t0"')  # the writer was killed mid-line
    assert LedgerView.load(tmp_path).done["t0"] == 1


def _run(run_id: str, state: str, steps: tuple[str, ...] = ("a", "b")) -> Run:
    return Run(
        id=run_id,
        workflow="chaos.flow",
        version=1,
        state=RunState(state),
        steps={name: StepRun(state=StepState.SUCCEEDED) for name in steps},
    )


def _step_tasks(run_id: str, steps: tuple[str, ...], state: State) -> list[TaskRecord]:
    return [_record(f"{run_id}-{s}", state, key=f"wf:{run_id}:{s}") for s in steps]


def test_workflow_runs_must_succeed_with_one_task_per_step(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    stored = [r for r in records.values() if r is not None]
    evidence = Evidence(
        ledger.read(),
        records,
        stored + _step_tasks("r1", ("a", "b"), State.SUCCEEDED),
        runs={"r1": _run("r1", "SUCCEEDED")},
    )
    assert all(_verdicts(evidence).values())
    name = "every workflow run succeeded, each step enqueued once"
    evidence.runs = {"r1": _run("r1", "RUNNING")}
    assert not _verdicts(evidence)[name]
    evidence.runs = {"r1": _run("r1", "SUCCEEDED")}
    evidence.stored = [*evidence.stored, _record("r1-a2", State.SUCCEEDED, key="wf:r1:a")]
    assert not _verdicts(evidence)[name]


def _hostile(tmp_path: Path, ledger: Ledger, records: dict[str, TaskRecord | None]) -> str:
    """One hostile task that raised on each of its attempts and is DEAD: by the rules."""
    ledger.accepted("k-h0", "h0", HOSTILE["raises"], 0.0)
    for attempt in range(1, HOSTILE_ATTEMPTS + 1):
        record(tmp_path, "exec-1", ev="start", task="h0", attempt=attempt)
    task = Task(id="h0", subject=HOSTILE["raises"], idempotency_key="k-h0")
    records["h0"] = TaskRecord(
        task=replace(task, attempt=HOSTILE_ATTEMPTS), state=State.DEAD, updated_at=0.0
    )
    return "hostile handlers: each task final per its policy, within its attempts"


def test_a_hostile_task_dead_within_its_attempts_passes(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    name = _hostile(tmp_path, ledger, records)
    verdicts = _verdicts(_evidence(ledger, records))
    assert verdicts[name]
    assert verdicts["dead letters only for tasks designed to fail"]


def test_a_hostile_task_run_beyond_its_attempts_fails(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    name = _hostile(tmp_path, ledger, records)
    record(tmp_path, "exec-2", ev="start", task="h0", attempt=HOSTILE_ATTEMPTS + 1)
    checks = {c.name: c for c in check_all(_evidence(ledger, records))}
    assert not checks[name].passed
    assert "h0" in checks[name].detail


def test_a_hostile_task_not_dead_fails(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    name = _hostile(tmp_path, ledger, records)
    hostile = records["h0"]
    assert hostile is not None
    records["h0"] = replace(hostile, state=State.SUCCEEDED)
    assert not _verdicts(_evidence(ledger, records))[name]


def test_an_atp_process_that_exited_on_its_own_fails_the_hostile_check(tmp_path: Path) -> None:
    ledger, records = _clean(tmp_path)
    name = _hostile(tmp_path, ledger, records)
    evidence = _evidence(ledger, records)
    evidence.exits = ["worker-0 (pid 12) exited with 1"]
    checks = {c.name: c for c in check_all(evidence)}
    assert not checks[name].passed
    assert "worker-0" in checks[name].detail


def _twice(tmp_path: Path, first: float, second: float) -> tuple[Ledger, Evidence]:
    """Task t9 executed at ``first`` and again at ``second`` (wall times)."""
    ledger, records = _clean(tmp_path)
    ledger.accepted("k-t9", "t9", WORK, 0.0)
    records["t9"] = _record("t9", State.SUCCEEDED)
    for at in (first, second):
        line = {"ev": "start", "task": "t9", "attempt": 1, "at": at, "pid": 7}
        with (tmp_path / "exec-7.jsonl").open("a") as out:
            out.write(json.dumps(line) + "\n" + json.dumps({**line, "ev": "done"}) + "\n")
    return ledger, _evidence(ledger, records)


def _by_fault(evidence: Evidence) -> dict[str, int]:
    check = next(c for c in check_all(evidence) if c.name.startswith("each success"))
    by_fault: dict[str, int] = check.figures["extra executions by fault"]
    return by_fault


def test_an_extra_execution_is_put_down_to_the_fault_running_then(tmp_path: Path) -> None:
    _, evidence = _twice(tmp_path, 1000.0, 1010.0)
    cut = FaultEvent(offset=5.0, at=1002.0, fault="cut link to redis", detail="", ended=8.0)
    earlier = FaultEvent(offset=0.0, at=900.0, fault="SIGKILL worker", detail="", ended=1.0)
    evidence.faults = [earlier, cut]
    assert _by_fault(evidence) == {"cut link to redis": 1}


def test_an_extra_execution_without_a_fault_is_said_so(tmp_path: Path) -> None:
    _, evidence = _twice(tmp_path, 1000.0, 1010.0)
    evidence.faults = [FaultEvent(offset=0.0, at=900.0, fault="SIGKILL worker", detail="")]
    assert _by_fault(evidence) == {"no fault at the time": 1}
