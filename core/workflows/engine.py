"""The workflow engine: register definitions, start, advance, signal, cancel and read runs.

Every way in (the SDK Client, the CLI, the REST adapter) and every process that moves a
run on (a worker after a step's task finished, the scheduler's sweep) goes through
``WorkflowEngine``. Advancing is: read the run, ``plan`` it, publish the planned tasks
through ``TaskService.publish`` with keys from run and step (idempotent), then write the
run with a compare-and-set; on a lost race, read again and plan anew. A step's task is
therefore created once however many processes advance the run at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from atp.core import codec
from atp.core.errors import (
    AtpError,
    ConfigError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StateConflict,
)
from atp.core.ids import new_id
from atp.core.model import JSON, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import WorkflowStore
from atp.core.service import PublishRequest, TaskService
from atp.core.urls import mask
from atp.core.workflows.definition import Definition, StepKind
from atp.core.workflows.planner import Plan, StepTask, plan, step_key
from atp.core.workflows.runs import (
    Run,
    RunPage,
    RunQuery,
    RunState,
    StepRun,
    StepState,
)

__all__ = ["StepListener", "WorkflowEngine", "workflow_store"]

log = logging.getLogger("atp.workflows")

CAS_ATTEMPTS = 64
"""Reads and compare-and-sets before a run changing under us is reported; every lost
round means another process's write landed, so this bounds concurrent advancers."""
MAX_PAGE = 1000
RETRY_BROKEN = 60.0
"""Seconds before the sweep looks again at a run it could not advance."""


def workflow_store(platform: Platform) -> WorkflowStore:
    """The platform's store as a WorkflowStore; ConfigError if it keeps no workflows."""
    store = platform.store
    if not isinstance(store, WorkflowStore):
        raise ConfigError(
            f"task store {mask(platform.settings.store)!r} does not keep workflows "
            "(it does not implement WorkflowStore); use sqlite://, redis:// or memory://"
        )
    return store


class WorkflowEngine:
    """Workflow operations over one Platform; ConfigError if its store keeps no workflows."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._store = workflow_store(platform)
        self._tasks = TaskService(platform)
        self._clock = platform.clock
        self._definitions: dict[tuple[str, int], Definition] = {}

    # -- definitions -------------------------------------------------------------------

    async def register(self, definitions: Sequence[Definition]) -> list[bool]:
        """Check and store definitions; per item whether it was new. A stored version with
        other steps is AlreadyExists: publish a new version instead. Nothing of a bad
        batch is stored."""
        checked = [definition.check() for definition in definitions]
        return await self._store.put_definitions(checked, now=self._clock.now())

    async def definition(self, name: str, version: int | None = None) -> Definition:
        """The definition of ``name`` at ``version`` (None: the latest); NotFound if none."""
        if version is not None and (name, version) in self._definitions:
            return self._definitions[name, version]
        (found,) = await self._store.get_definitions([(name, version)])
        if found is None:
            at = "" if version is None else f" version {version}"
            raise NotFound(f"no workflow {name!r}{at} is registered")
        self._definitions[found.name, found.version] = found
        return found

    async def definitions(self) -> list[Definition]:
        """Every registered definition, by name, then version."""
        return await self._store.list_definitions()

    # -- runs --------------------------------------------------------------------------

    async def start(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Start a run of ``name`` (the latest version unless ``version``) and enqueue the
        steps that have no parents. ``run_id`` lets a caller retry a start safely: the
        second start is AlreadyExists. The run keeps its version to the end."""
        definition = await self.definition(name, version)
        self._check_size(input, "workflow input")
        now = self._clock.now()
        run = Run(
            id=run_id or new_id(now),
            workflow=definition.name,
            version=definition.version,
            input=codec.loads(codec.dumps(input)),
            steps={step.name: StepRun() for step in definition.steps},
            created_at=now,
            updated_at=now,
            wake_at=now,  # the sweep finishes the start if this process dies first
        )
        (stored,) = await self._store.create_runs([run])
        self._platform.emit("atp_workflow_run_started", run_id=run.id, workflow=run.workflow)
        try:
            return await self._change(run.id, lambda current, _: current, first=stored)
        except AtpError as exc:  # the run is stored: the caller gets its id, the sweep goes on
            log.warning("run %s started, its first steps wait for the sweep: %s", run.id, exc)
            return stored

    async def advance(self, run_id: str) -> Run:
        """Move the run on from what its tasks, signals and timeouts say; return it."""
        return await self._change(run_id, lambda current, _: current)

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        """Deliver signal ``name`` to the run. A signal arriving before its step waits is
        kept until it does. InvalidInput if the workflow waits for no such signal;
        StateConflict if the run is over or the signal was received already."""
        self._check_size(payload, "signal payload")
        payload = codec.loads(codec.dumps(payload))

        def receive(run: Run, definition: Definition) -> Run:
            if run.state is not RunState.RUNNING:
                raise StateConflict(f"run {run.id!r} is {run.state}; it takes no more signals")
            if not any(s.kind is StepKind.SIGNAL and s.signal == name for s in definition.steps):
                raise InvalidInput(
                    f"workflow {run.workflow!r} v{run.version} waits for no signal {name!r}"
                )
            if name in run.signals:
                raise StateConflict(f"run {run.id!r} received signal {name!r} already")
            return run.replace(signals={**run.signals, name: payload})

        return await self._change(run_id, receive)

    async def cancel(self, run_id: str) -> Run:
        """Cancel a run: steps not started are cancelled, running step tasks are cancelled
        (a running one is asked to stop). No compensation runs. Cancelling twice is a
        no-op; StateConflict for a run that succeeded or failed."""
        for _ in range(CAS_ATTEMPTS):
            run = await self._run(run_id)
            if run.state is RunState.CANCELLED:
                return run
            if run.finished:
                raise StateConflict(f"run {run_id!r} is {run.state}; it can no longer be cancelled")
            cancelled, task_ids = _cancelled(run, self._clock.now())
            (applied,) = await self._store.update_runs([cancelled])
            if applied:
                stored = cancelled.replace(revision=run.revision + 1)
                await self._cancel_tasks(task_ids)
                self._announce(
                    run, stored, [n for n in run.steps if run.steps[n] != stored.steps[n]]
                )
                return stored
        raise StateConflict(f"run {run_id!r} kept changing; cancel it again")

    async def get(self, run_id: str) -> Run:
        """The run, with the live attempt count of each running step; NotFound if unknown."""
        run = await self._run(run_id)
        records = await self._records(run)
        steps = {name: _live(step, records) for name, step in run.steps.items()}
        return run.replace(steps=steps)

    async def list(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage:
        """List runs, newest first, by workflow name and states."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        try:
            wanted = frozenset(RunState(str(s).upper()) for s in states) if states else None
        except ValueError as exc:
            raise InvalidInput(f"unknown run state: {exc}") from exc
        return await self._store.list_runs(RunQuery(workflow, wanted, cursor, limit))

    async def sweep(self, limit: int) -> int:
        """Advance up to ``limit`` runs whose ``wake_at`` passed; return how many were due.

        This is how timeouts fire, and how a run moves on when the process that should
        have advanced it died after recording its step's outcome.
        """
        due = await self._store.due_runs(now=self._clock.now(), limit=limit)
        for run in due:
            try:
                await self.advance(run.id)
            except AtpError as exc:
                log.warning(
                    "workflow run %s could not be advanced, retrying later: %s", run.id, exc
                )
                await self._postpone(run)
        return len(due)

    # -- internals ---------------------------------------------------------------------

    async def _change(
        self, run_id: str, mutate: Callable[[Run, Definition], Run], first: Run | None = None
    ) -> Run:
        """Read, mutate, plan, publish and compare-and-set, until one write lands."""
        run = first
        for _ in range(CAS_ATTEMPTS):
            run = run or await self._run(run_id)
            definition = await self.definition(run.workflow, run.version)
            done = await self._apply(run, mutate(run, definition), definition)
            if done is not None:
                return done
            run = None
        raise StateConflict(f"run {run_id!r} kept changing under {CAS_ATTEMPTS} attempts")

    async def _apply(self, original: Run, run: Run, definition: Definition) -> Run | None:
        now = self._clock.now()
        decided = plan(definition, run, await self._records(run), now, self._platform.settings)
        if decided.run == original and not decided.publish:
            await self._cancel_tasks(decided.cancel)
            return original
        updated = (await self._publish(decided)).replace(updated_at=now)
        (applied,) = await self._store.update_runs([updated])
        if not applied:
            return None
        stored = updated.replace(revision=original.revision + 1)
        await self._cancel_tasks(decided.cancel)
        self._announce(original, stored, [name for name, _ in decided.finished])
        return stored

    async def _publish(self, decided: Plan) -> Run:
        run = decided.run
        if not decided.publish:
            return run
        requests = [_request(run, task) for task in decided.publish]
        published = await self._tasks.publish(requests)
        steps = dict(run.steps)
        for task, result in zip(decided.publish, published, strict=True):
            step = steps[task.step]
            if task.compensation:
                steps[task.step] = step.replace(compensation_task=result.id)
            else:
                steps[task.step] = step.replace(task_id=result.id)
        return run.replace(steps=steps)

    async def _records(self, run: Run) -> dict[str, TaskRecord]:
        ids = [task_id for step in run.steps.values() for task_id in _active_tasks(step)]
        if not ids:
            return {}
        return {r.id: r for r in await self._platform.store.get(ids) if r is not None}

    async def _run(self, run_id: str) -> Run:
        (run,) = await self._store.get_runs([run_id])
        if run is None:
            raise NotFound(f"no workflow run with id {run_id!r}")
        return run

    async def _cancel_tasks(self, ids: Sequence[str]) -> None:
        if ids:
            await self._platform.store.cancel(list(dict.fromkeys(ids)), now=self._clock.now())

    async def _postpone(self, run: Run) -> None:
        try:
            await self._store.update_runs([run.replace(wake_at=self._clock.now() + RETRY_BROKEN)])
        except AtpError as exc:
            log.warning("workflow run %s: postponing failed: %s", run.id, exc)

    def _announce(self, before: Run, after: Run, finished: Sequence[str]) -> None:
        emit = self._platform.emit
        for name in finished:
            state = after.steps[name].state.value
            emit("atp_workflow_step_finished", run_id=after.id, step=name, state=state)
        if not before.finished and after.finished:
            log.info("workflow run %s (%s) %s", after.id, after.workflow, after.state)
            workflow, state = after.workflow, after.state.value
            emit("atp_workflow_run_finished", run_id=after.id, workflow=workflow, state=state)

    def _check_size(self, value: JSON, what: str) -> None:
        size, limit = len(codec.dumps(value)), self._platform.settings.max_payload
        if size > limit:
            raise PayloadTooLarge(f"{what} is {size} bytes of JSON, the limit is {limit}")


class StepListener:
    """What a worker calls once a workflow step's task reached a final state.

    It advances the run at once. It never raises: if advancing fails, or this process dies
    first, the scheduler's sweep advances the run within ``RECHECK`` seconds. Steps of one
    run finishing together in this process are coalesced: while one call advances the run,
    the others only ask it for one more pass, which sees their outcomes (recorded before
    they called). So a fan-in does not become a crowd of compare-and-sets on one run.
    """

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._engine: WorkflowEngine | None = None
        self._disabled = False
        self._advancing: set[str] = set()
        self._again: set[str] = set()

    async def finished(self, task: Task) -> None:
        """Advance the run of ``task`` (a step's or a compensation's task)."""
        run_id = task.workflow_run
        if run_id is None or self._disabled:
            return
        if run_id in self._advancing:
            self._again.add(run_id)
            return
        self._advancing.add(run_id)
        try:
            await self._advance(run_id, task)
        finally:
            self._advancing.discard(run_id)
            self._again.discard(run_id)

    async def _advance(self, run_id: str, task: Task) -> None:
        try:
            self._engine = self._engine or WorkflowEngine(self._platform)
            while True:
                self._again.discard(run_id)
                await self._engine.advance(run_id)
                if run_id not in self._again:
                    return
        except ConfigError as exc:
            self._disabled = True
            log.error("workflow steps finish but runs cannot advance: %s", exc)
        except AtpError as exc:
            message = "run %s not advanced after step %s, the sweep will: %s"
            log.warning(message, task.workflow_run, task.step, exc)
        except Exception:
            log.exception("run %s not advanced after step %s", task.workflow_run, task.step)


def _request(run: Run, task: StepTask) -> PublishRequest:
    return PublishRequest(
        subject=task.subject,
        payload=task.payload,
        delay=task.delay,
        idempotency_key=step_key(run.id, task.step, task.compensation),
        max_attempts=task.max_attempts,
        timeout=task.timeout,
        workflow_run=run.id,
        step=task.step,
    )


def _cancelled(run: Run, now: float) -> tuple[Run, list[str]]:
    steps: dict[str, StepRun] = {}
    task_ids: list[str] = []
    for name, step in run.steps.items():
        task_ids += _active_tasks(step)
        if step.state in (StepState.PENDING, StepState.ACTIVE):
            step = step.replace(state=StepState.CANCELLED, finished_at=now, deadline=None)
        steps[name] = step
    changes: dict[str, Any] = {
        "state": RunState.CANCELLED,
        "steps": steps,
        "finished_at": now,
        "updated_at": now,
        "wake_at": None,
    }
    return run.replace(**changes), task_ids


def _live(step: StepRun, records: dict[str, TaskRecord]) -> StepRun:
    """``step`` with the attempt count of its running task, where that task was read."""
    if step.state is StepState.ACTIVE and step.task_id in records:
        return step.replace(attempts=records[step.task_id].task.attempt)
    return step


def _active_tasks(step: StepRun) -> list[str]:
    """The ids of ``step``'s tasks that are still active: its own, its compensation's."""
    ids: list[str] = []
    if step.state is StepState.ACTIVE and step.task_id:
        ids.append(step.task_id)
    if step.compensation is StepState.ACTIVE and step.compensation_task:
        ids.append(step.compensation_task)
    return ids
