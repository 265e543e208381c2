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
    """


# -- Task lifecycle (broadcast, after the fact) --------------------------------------------


@hookspec
def atp_task_enqueued(tasks: Sequence[Task]) -> None:
    """Tasks were accepted by the store (created, not deduplicated by an idempotency key)."""


@hookspec
def atp_task_dispatched(tasks: Sequence[Task]) -> None:
    """Tasks moved to READY and were published to the transport."""


@hookspec
def atp_task_started(task: Task, worker: str) -> None:
    """A worker claimed a task and is about to run attempt ``task.attempt``."""


@hookspec
def atp_task_succeeded(record: TaskRecord, duration: float) -> None:
    """An attempt succeeded; ``duration`` is the handler's run time in seconds.

    Fired by the worker once the store recorded it. Here and in ``failed``, ``dead``
    and ``cancelled`` from a worker, ``record`` is as the worker saw it: ``errors``
    holds this attempt's error only; ``atp task get`` shows the whole history.
    """


@hookspec
def atp_task_failed(record: TaskRecord, error: str, will_retry: bool, duration: float) -> None:
    """An attempt failed; ``will_retry`` tells whether another attempt is scheduled."""


@hookspec
def atp_task_dead(record: TaskRecord, reason: str) -> None:
    """A task entered the dead-letter state (attempts exhausted, Fail, lost lease)."""


@hookspec
def atp_task_cancelled(record: TaskRecord) -> None:
    """A task was cancelled (before it ran, or cooperatively while it ran)."""


@hookspec
def atp_task_recovered(records: Sequence[TaskRecord]) -> None:
    """The reaper took back tasks whose worker's lease expired."""


@hookspec
def atp_cron_fired(schedule: str, tick: float, task: Task) -> None:
    """A cron schedule fired for ``tick`` and enqueued ``task``."""


# -- Workflows -----------------------------------------------------------------------------


@hookspec
def atp_workflow_run_started(run_id: str, workflow: str) -> None:
    """A workflow run was stored, before its first steps are enqueued."""


@hookspec
def atp_workflow_step_finished(run_id: str, step: str, state: str) -> None:
    """A step of run ``run_id`` reached ``state`` (SUCCEEDED, FAILED, SKIPPED or
    CANCELLED), after the write that recorded it; at most once per step."""


@hookspec
def atp_workflow_run_finished(run_id: str, workflow: str, state: str) -> None:
    """Run ``run_id`` reached ``state`` (SUCCEEDED, FAILED or CANCELLED), after the write
    that recorded it; at most once per run."""


# -- Processes -----------------------------------------------------------------------------


@hookspec
def atp_leader_acquired(role: str, owner: str, token: int) -> None:
    """This process became leader of ``role`` with fencing token ``token``."""


@hookspec
def atp_leader_lost(role: str, owner: str) -> None:
    """This process stopped being leader of ``role`` (lost or released its lease)."""


@hookspec
def atp_scheduler_started(scheduler: str) -> None:
    """A scheduler replica started competing for leadership as ``scheduler``."""


@hookspec
def atp_scheduler_stopped(scheduler: str) -> None:
    """A scheduler replica stopped, after releasing its leader lease."""


@hookspec
def atp_worker_started(worker: str, patterns: Sequence[str], group: str) -> None:
    """A worker started consuming ``patterns`` as ``group``."""


@hookspec
def atp_worker_stopped(worker: str) -> None:
    """A worker stopped, after draining."""
