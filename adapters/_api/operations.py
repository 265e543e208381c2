"""The operations both APIs offer, each checked against the caller's scopes and the limits.

A denied request raises PermissionDenied before anything is written; a breached limit
raises InvalidInput (or PayloadTooLarge). REST and gRPC translate only the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

from atp.adapters._api import dead_letters
from atp.adapters._api.dead_letters import Requeued
from atp.adapters._api.fleet import FleetOperations
from atp.adapters._api.flow import FlowOperations
from atp.adapters._api.schedules import ScheduleOperations
from atp.adapters._api.workflows import WorkflowOperations
from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.guard import Principal
from atp.core.errors import InvalidInput, NotFound
from atp.core.model import JSON, State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Activity, ActivityCount, Page
from atp.core.service import Published, PublishRequest, TaskService
from atp.core.subjects import validate_pattern, validate_subject

__all__ = ["Operations"]


class Operations:
    """Task and dead-letter operations on behalf of one caller at a time; ``schedules``,
    ``workflows``, ``flow`` and ``fleet`` hold the cron schedule, workflow, flow-control
    and fleet operations."""

    def __init__(self, platform: Platform, server: ServerSettings) -> None:
        self.platform = platform
        self.service = TaskService(platform)
        self.schedules = ScheduleOperations(platform)
        self.workflows = WorkflowOperations(platform, server)
        self.flow = FlowOperations(platform)
        self.fleet = FleetOperations(platform)
        self._server = server

    @property
    def server(self) -> ServerSettings:
        """The server's settings: page and batch sizes, the trace viewer's URL."""
        return self._server

    async def publish(self, who: Principal, requests: Sequence[PublishRequest]) -> list[Published]:
        """Publish a batch: every subject must be in the caller's publish scopes."""
        self.check_batch(who, [request.subject for request in requests])
        return await self.service.publish(requests)

    def check_batch(self, who: Principal, subjects: Sequence[str]) -> None:
        """Refuse a batch over ``max_batch`` or a subject outside the caller's scopes; an
        API calls it before decoding the tasks' payloads too."""
        if len(subjects) > self._server.max_batch:
            raise InvalidInput(
                f"a batch holds at most {self._server.max_batch} tasks, got {len(subjects)}"
            )
        for subject in subjects:
            who.scopes.require_publish(validate_subject(subject))

    async def get(self, who: Principal, task_id: str) -> TaskRecord:
        who.scopes.require_read()
        return await self.service.get(task_id)

    async def query(
        self,
        who: Principal,
        *,
        subject: str | None,
        states: Sequence[State] | None,
        cursor: str | None,
        limit: int,
        created_after: float | None = None,
        created_before: float | None = None,
        idempotency_key: str | None = None,
    ) -> Page:
        who.scopes.require_read()
        self._server.check_page(limit)
        return await self.service.query(
            subject=subject,
            states=states,
            cursor=cursor,
            limit=limit,
            created_after=created_after,
            created_before=created_before,
            idempotency_key=idempotency_key,
        )

    async def counts(self, who: Principal) -> dict[tuple[str, State], int]:
        who.scopes.require_read()
        return await self.service.counts()

    async def activity(self, who: Principal, *, since: float) -> list[ActivityCount] | None:
        """The attempts that ended, per minute and subject, from ``since`` on, oldest
        first; None if the store keeps no activity counts (it is no ``Activity``)."""
        who.scopes.require_read()
        store = self.platform.store
        return await store.activity(since=since) if isinstance(store, Activity) else None

    async def oldest_due(self, who: Principal) -> float | None:
        """The earliest run time among the tasks waiting to be due (the scheduler lags
        by ``now`` less it); None when none waits, or the store is no ``Activity``."""
        who.scopes.require_read()
        store = self.platform.store
        return await store.oldest_due() if isinstance(store, Activity) else None

    async def cancel(self, who: Principal, task_id: str) -> TaskRecord:
        """Cancel: the caller may publish to the task's subject, or is an admin."""
        if not who.scopes.admin:
            record = await self.service.get(task_id)
            who.scopes.require_publish(record.subject)
        return await self.service.cancel(task_id)

    async def dead_letters(
        self, who: Principal, *, subject: str | None, cursor: str | None, limit: int
    ) -> Page:
        who.scopes.require_read()
        self._server.check_page(limit)
        return await self.service.dead_letters(subject=subject, cursor=cursor, limit=limit)

    async def dead_letter(self, who: Principal, task_id: str) -> TaskRecord:
        """One dead task; NotFound unless the task exists and is DEAD."""
        who.scopes.require_read()
        record = await self.service.get(task_id)
        if record.state is not State.DEAD:
            raise NotFound(f"task {task_id!r} is {record.state}, not a dead letter")
        return record

    async def requeue(
        self,
        who: Principal,
        task_id: str,
        *,
        delay: float | None,
        payload: JSON,
        replace_payload: bool,
    ) -> TaskRecord:
        who.scopes.require_admin()
        return await self.service.requeue(
            task_id, delay=delay, payload=payload, replace_payload=replace_payload
        )

    async def count_dead(self, who: Principal, subject: str | None) -> int:
        """How many dead tasks the pattern ``subject`` matches (None: all), from the
        store's counters: no scan."""
        who.scopes.require_read()
        if subject is not None:
            validate_pattern(subject)
        return await dead_letters.count_dead(self.service, subject)

    async def requeue_many(
        self, who: Principal, ids: Sequence[str], *, delay: float | None
    ) -> Requeued:
        """Requeue these dead tasks; one unknown or no longer dead is skipped."""
        who.scopes.require_admin()
        if len(ids) > self._server.max_batch:
            raise InvalidInput(f"requeue at most {self._server.max_batch} ids at once")
        return await dead_letters.requeue_each(self.service, ids, delay=delay)

    async def requeue_matching(
        self, who: Principal, subject: str | None, *, delay: float | None
    ) -> Requeued:
        """Requeue every dead task the pattern ``subject`` matches (None: all)."""
        who.scopes.require_admin()
        return await dead_letters.requeue_matching(self.service, subject, delay=delay)

    async def purge_matching(self, who: Principal, subject: str | None) -> int:
        """Purge every dead task the pattern ``subject`` matches (None: all)."""
        who.scopes.require_admin()
        if subject is not None:
            validate_pattern(subject)
        return await dead_letters.purge_matching(self.service, subject)

    async def purge(self, who: Principal, ids: Sequence[str] | None) -> int:
        who.scopes.require_admin()
        if ids is not None and len(ids) > self._server.max_batch:
            raise InvalidInput(f"purge at most {self._server.max_batch} ids at once")
        return await self.service.purge(ids)
