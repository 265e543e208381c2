"""The REST API's request and response bodies, and their conversion to and from core types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atp.core.model import AttemptError, RetryPolicy, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, PublishRequest

__all__ = [
    "BatchIn",
    "BatchOut",
    "CountOut",
    "CountsOut",
    "Health",
    "PageOut",
    "Problem",
    "PublishedOut",
    "PurgeIn",
    "PurgeOut",
    "RequeueIn",
    "TaskIn",
    "TaskOut",
]

SUBJECT_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,15}$"
"""Documents the subject grammar for clients; the core validates it (and its length)."""
Seconds = float | str
"""Seconds as a number, or a duration text such as ``"30s"`` or ``"1h30m"``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryIn(_Strict):
    """Exponential backoff with full jitter between attempts."""

    base: float = Field(1.0, ge=0, le=86400)
    factor: float = Field(2.0, ge=1, le=100)
    cap: float = Field(300.0, ge=0, le=366 * 86400)
    jitter: bool = True


class TaskIn(_Strict):
    """One task to publish. ``delay`` and ``run_at`` are exclusive; neither means now."""

    subject: str = Field(
        description="Dot-separated subject, e.g. orders.close",
        json_schema_extra={"pattern": SUBJECT_PATTERN},
    )
    payload: Any = Field(None, description="Any JSON value")
    delay: Seconds | None = Field(None, description="Run after this many seconds (or '30m')")
    run_at: float | None = Field(None, description="Run at this time, seconds since the epoch")
    idempotency_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_attempts: int | None = None
    timeout: Seconds | None = None
    priority: int = 0
    retry: RetryIn | None = None

    def request(
        self, idempotency_key: str | None, seconds: Callable[[float | str, str], float]
    ) -> PublishRequest:
        """The core request; ``seconds`` parses a duration (raises InvalidInput)."""
        retry = None if self.retry is None else RetryPolicy(**self.retry.model_dump())
        return PublishRequest(
            subject=self.subject,
            payload=self.payload,
            delay=None if self.delay is None else seconds(self.delay, "delay"),
            run_at=self.run_at,
            idempotency_key=self.idempotency_key or idempotency_key,
            headers=self.headers,
            max_attempts=self.max_attempts,
            timeout=None if self.timeout is None else seconds(self.timeout, "timeout"),
            priority=self.priority,
            retry=retry,
        )


class BatchIn(_Strict):
    """Tasks to publish in one store call: all are accepted, or none on bad input."""

    tasks: list[TaskIn]


class PublishedOut(BaseModel):
    """The answer to one publish; ``created`` is false when an idempotency key matched."""

    id: str
    created: bool
    run_at: float

    @classmethod
    def of(cls, published: Published) -> PublishedOut:
        return cls(id=published.id, created=published.created, run_at=published.run_at)


class BatchOut(BaseModel):
    """The answers to a batch publish, in the order of the request."""

    tasks: list[PublishedOut]


class ErrorOut(BaseModel):
    """Why one attempt did not succeed."""

    attempt: int
    at: float
    message: str
    kind: str

    @classmethod
    def of(cls, error: AttemptError) -> ErrorOut:
        return cls(attempt=error.attempt, at=error.at, message=error.message, kind=error.kind)


class TaskOut(BaseModel):
    """A task as the store has it: the envelope, its state and its history."""

    id: str
    subject: str
    state: str
    payload: Any = None
    headers: dict[str, str]
    idempotency_key: str | None
    run_at: float
    created_at: float
    updated_at: float
    attempt: int
    max_attempts: int | None
    timeout: float | None
    priority: int
    lease_owner: str | None
    lease_until: float | None
    result: Any = None
    errors: list[ErrorOut]
    cancel_requested: bool
    finished_at: float | None
    schedule: str | None
    workflow_run: str | None
    step: str | None

    @classmethod
    def of(cls, record: TaskRecord) -> TaskOut:
        task = record.task
        return cls(
            id=task.id, subject=task.subject, state=str(record.state), payload=task.payload,
            headers=dict(task.headers), idempotency_key=task.idempotency_key,
            run_at=task.run_at, created_at=task.created_at, updated_at=record.updated_at,
            attempt=task.attempt, max_attempts=task.max_attempts, timeout=task.timeout,
            priority=task.priority, lease_owner=record.lease_owner,
            lease_until=record.lease_until, result=record.result,
            errors=[ErrorOut.of(e) for e in record.errors],
            cancel_requested=record.cancel_requested, finished_at=record.finished_at,
            schedule=task.schedule, workflow_run=task.workflow_run, step=task.step,
        )  # fmt: skip


class PageOut(BaseModel):
    """One page of tasks, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[TaskOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> PageOut:
        return cls(items=[TaskOut.of(r) for r in page.items], next_cursor=page.next_cursor)


class CountOut(BaseModel):
    """How many tasks one subject holds in one state."""

    subject: str
    state: str
    count: int


class CountsOut(BaseModel):
    """Task counts by subject and state; zero counts are left out."""

    counts: list[CountOut]


class RequeueIn(_Strict):
    """How to give a dead task a new life; ``payload`` replaces the old one if present."""

    delay: Seconds | None = None
    payload: Any = None


class PurgeIn(_Strict):
    """Which dead tasks to delete: these ids, or every dead task when ``ids`` is null."""

    ids: list[str] | None = Field(None, max_length=10_000)


class PurgeOut(BaseModel):
    """How many dead tasks were deleted."""

    purged: int


class Health(BaseModel):
    """Liveness or readiness; ``checks`` names each backend and what it answered."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class Problem(BaseModel):
    """An RFC 9457 problem document; ``type`` is stable per kind of error."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
