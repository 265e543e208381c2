"""Every hook atp defines. Implement them with ``@hookimpl`` from ``atp.core.plugins``.

All hooks are synchronous: providers are sync factories returning objects with async
methods, and lifecycle listeners must return at once (hand I/O to a task of your own).
An ``async def`` implementation is refused when the plugin is registered.

Lifecycle hooks are fired through ``HookEmitter`` after the fact: a listener that raises
is logged with its plugin's name and counted, and never changes a task's state or stops
the other listeners. Listeners must not mutate the objects they receive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from atp.core.model import Task, TaskRecord
    from atp.core.platform import Platform
    from atp.core.ports import Clock, Coordinator, Limiter, TaskStore, Transport
    from atp.core.settings import Settings
    from atp.core.worker.interceptors import Interceptor

__all__ = ["PROJECT", "hookspec"]

PROJECT = "atp"
hookspec = pluggy.HookspecMarker(PROJECT)


# -- Configuration -------------------------------------------------------------------------


@hookspec(historic=True)
def atp_configure(settings: Settings) -> None:
    """Called once the settings are loaded; historic, so late plugins see it too.

    :param settings: the frozen settings of this process.
    """


@hookspec
def atp_platform_built(platform: Platform) -> None:
    """A Platform was built from the settings in this process; nothing is connected yet.

    Called by ``Platform.build`` (so by every atp process, short CLI commands too). A
    listener may keep the platform to read from it later in a task of its own (the
    store's ``counts``, the ``clock``); it must not close it, write through it, or do
    I/O in the hook itself.

    :param platform: the platform just built.
    """


@hookspec
def atp_url_schemes() -> dict[str, list[str]]:  # type: ignore[empty-body]
    """Declare the URL schemes this plugin serves, for ``atp plugins``.

    :return: ``{"transport": [...], "store": [...], "coordinator": [...]}``; omit a kind
        the plugin does not serve.
    """


# -- Providers (firstresult) ---------------------------------------------------------------


@hookspec(firstresult=True)
def atp_make_transport(url: str, settings: Settings, clock: Clock) -> Transport | None:
    """Build the Transport for ``url``, or return None if this plugin does not own its scheme.

    Called once per process. Must not do I/O: connect lazily or in an async ``open``
    that the returned object performs on first use. Raise InvalidInput for a malformed
    URL of your own scheme, naming the URL.

    :param url: the transport URL from the settings.
    :param settings: the frozen settings of this process.
    :param clock: the clock the backend must take its time from.
    :return: the transport, not yet connected; None for a scheme of another plugin.
    """


@hookspec(firstresult=True)
def atp_make_store(url: str, settings: Settings, clock: Clock) -> TaskStore | None:
    """Build the TaskStore for ``url``, or return None if this plugin does not own its scheme.

    Same rules as ``atp_make_transport``.
    """


@hookspec(firstresult=True)
def atp_make_coordinator(url: str, settings: Settings, clock: Clock) -> Coordinator | None:
    """Build the Coordinator for ``url``, or return None if this plugin does not own its scheme.

    Same rules as ``atp_make_transport``.
    """


@hookspec(firstresult=True)
def atp_make_limiter(url: str, settings: Settings, clock: Clock) -> Limiter | None:
    """Build the rate Limiter for ``url``, or return None if this plugin does not own its scheme.

    Called by ``atp server`` once at start-up. Same rules as ``atp_make_transport``.
    """


# -- Execution wrapper ---------------------------------------------------------------------


@hookspec
def atp_interceptors(settings: Settings) -> Sequence[Interceptor]:  # type: ignore[empty-body]
    """Contribute interceptors that the worker chains around every handler call.

    Called once per worker at start-up. Interceptors are async (``Interceptor.execute``);
    the first one registered is the outermost.

    :param settings: the frozen settings of this process.
    :return: the interceptors to chain, outermost first.
    """


# -- HTTP mounts ---------------------------------------------------------------------------


@hookspec
def atp_http_mounts(settings: Settings) -> Sequence[tuple[str, object]]:  # type: ignore[empty-body]
    """Contribute ASGI apps that ``atp server`` mounts next to its own API.

    Called once by ``atp server`` while it builds its app, before it serves. Return
    ``(path, app)`` pairs: ``path`` starts with ``/`` (e.g. ``"/metrics"``) and ``app``
    is an ASGI application. Must not do I/O or start tasks here (do that in the app's
    own lifespan or on first request), and must not claim a path the server's API uses;
    a path claimed twice is refused at start-up.

    :param settings: the frozen settings of this process.
    """


# -- Publishing ----------------------------------------------------------------------------


@hookspec
def atp_task_headers(tasks: Sequence[Task]) -> Sequence[Mapping[str, str] | None] | None:
    """Contribute headers to tasks being published, before the store creates them.

    Called by ``TaskService.publish`` once per batch, after validation. Return None, or
    one entry per task (None: nothing to add); the entries are merged into each task's
    headers, a plugin's value winning over the producer's (a ``traceparent`` is
    replaced by the producer span's). Must return at once, without I/O. A plugin that
    raises is logged and skipped: the tasks are published without its headers.

    :param tasks: the validated tasks, not yet stored; read them, do not change them.
    :return: None, or one mapping (or None) per task, in the order of ``tasks``.
    """


# -- Task lifecycle (broadcast, after the fact) --------------------------------------------
#
# Fired through ``HookEmitter`` once the store has recorded the change. Every listener of
# this section and the next two may: read its arguments, count, log, and hand work to a
# task or thread of its own. It must not: block or do I/O in the hook, raise on purpose
# (a raise is logged and counted, and changes nothing), mutate what it receives (tasks,
# records and sequences are shared with the core and the other listeners), or call back
# into the Platform to change task state.


@hookspec
def atp_task_enqueued(tasks: Sequence[Task]) -> None:
    """Tasks were created by the store, once per publish batch.

    Fired by ``TaskService.publish``; a publish deduplicated by its idempotency key
    creates nothing and is not announced.

    :param tasks: the tasks created, due or not.
    """


@hookspec
def atp_task_dispatched(tasks: Sequence[Task]) -> None:
    """Tasks moved to READY were published to the transport, once per published batch.

    Fired by the ``Dispatcher`` for a producer's due tasks (or by ``TaskService`` itself
    when its store publishes in the same call), the forwarder and the reaper: a task the
    reaper publishes again is announced again. A publish that failed is not announced.

    :param tasks: the tasks published, in the order given to the transport.
    """


@hookspec
def atp_task_started(task: Task, worker: str) -> None:
    """A worker claimed a task in the store and is about to run attempt ``task.attempt``.

    :param task: the claimed task.
    :param worker: the name of the worker running it.
    """


@hookspec
def atp_task_succeeded(record: TaskRecord, duration: float) -> None:
    """An attempt succeeded and the store recorded it.

    Fired by the worker once the store recorded it. Here and in ``failed``, ``dead``
    and ``cancelled`` from a worker, ``record`` is as the worker saw it: ``errors``
    holds this attempt's error only; ``atp task get`` shows the whole history.

    :param record: the task's record, state SUCCEEDED.
    :param duration: the handler's run time in seconds.
    """


@hookspec
def atp_task_failed(record: TaskRecord, error: str, will_retry: bool, duration: float) -> None:
    """An attempt failed (raised, timed out, or signalled ``Retry``/``Fail``).

    Not fired for an attempt stopped by the worker's shutdown or for a subject without
    a handler. A last failure is followed by ``atp_task_dead``.

    :param record: the task's record, state SCHEDULED (will retry) or DEAD.
    :param error: the attempt's error message.
    :param will_retry: whether another attempt is scheduled.
    :param duration: the handler's run time in seconds.
    """


@hookspec
def atp_task_dead(record: TaskRecord, reason: str) -> None:
    """A task entered the dead-letter state.

    Fired by the worker (attempts exhausted, ``Fail``) and by the reaper (a lease lost
    on the last attempt).

    :param record: the task's record, state DEAD.
    :param reason: the last error's message.
    """


@hookspec
def atp_task_cancelled(record: TaskRecord) -> None:
    """A task was cancelled: by ``TaskService.cancel`` before it ran, or by the worker
    once a running handler honoured the request.

    :param record: the task's record, state CANCELLED.
    """


@hookspec
def atp_task_recovered(records: Sequence[TaskRecord]) -> None:
    """The reaper took back tasks whose worker's lease expired, once per batch.

    :param records: the records after recovery: SCHEDULED for another attempt, or DEAD
        (each of those also fires ``atp_task_dead``).
    """


@hookspec
def atp_cron_fired(schedule: str, tick: float, task: Task) -> None:
    """A cron schedule fired for ``tick`` and its task was created, once per tick.

    Fired by the leader's cron component; a tick fired again after a failover matches
    the existing task's idempotency key and is not announced.

    :param schedule: the schedule's name.
    :param tick: the tick fired, seconds since the epoch.
    :param task: the task created for it.
    """


# -- Workflows -----------------------------------------------------------------------------


@hookspec
def atp_workflow_run_started(run_id: str, workflow: str) -> None:
    """A workflow run was stored, before its first steps are enqueued.

    :param run_id: the run's id.
    :param workflow: the workflow's name.
    """


@hookspec
def atp_workflow_step_finished(run_id: str, step: str, state: str) -> None:
    """A step of a run reached a final state, after the write that recorded it; at most
    once per step.

    :param run_id: the run's id.
    :param step: the step's name.
    :param state: SUCCEEDED, FAILED, SKIPPED or CANCELLED.
    """


@hookspec
def atp_workflow_run_finished(run_id: str, workflow: str, state: str) -> None:
    """A run reached a final state, after the write that recorded it; at most once per run.

    :param run_id: the run's id.
    :param workflow: the workflow's name.
    :param state: SUCCEEDED, FAILED or CANCELLED.
    """


# -- Processes -----------------------------------------------------------------------------


@hookspec
def atp_leader_acquired(role: str, owner: str, token: int) -> None:
    """This process became leader of ``role``, before its components start.

    :param role: the lease's name (``"scheduler"``).
    :param owner: this replica's name.
    :param token: the fencing token of the new lease; it grows with every new leader.
    """


@hookspec
def atp_leader_lost(role: str, owner: str) -> None:
    """This process stopped leading ``role`` (lease lost, fenced out, or stopping), once
    its components have stopped.

    :param role: the lease's name (``"scheduler"``).
    :param owner: this replica's name.
    """


@hookspec
def atp_scheduler_started(scheduler: str) -> None:
    """A scheduler replica started competing for leadership.

    :param scheduler: the replica's name.
    """


@hookspec
def atp_scheduler_stopped(scheduler: str) -> None:
    """A scheduler replica stopped, after releasing its leader lease.

    :param scheduler: the replica's name.
    """


@hookspec
def atp_worker_started(worker: str, patterns: Sequence[str], group: str) -> None:
    """A worker opened its consumers and starts fetching.

    :param worker: the worker's name.
    :param patterns: the subject patterns it consumes.
    :param group: the consumer group it consumes them as.
    """


@hookspec
def atp_worker_stopped(worker: str) -> None:
    """A worker stopped, after draining its running tasks.

    :param worker: the worker's name.
    """


@hookspec
def atp_breaker_changed(group: str, subject: str, circuit: str, previous: str, at: float) -> None:
    """A circuit breaker changed state (ADR 0040), fired once, by the worker that changed it.

    :param group: the worker group whose breaker it is.
    :param subject: the subject it guards.
    :param circuit: ``open``, ``half-open`` or ``closed``: the state now.
    :param previous: the state before.
    :param at: when it changed.

    Must not block or raise into the core.
    """
