"""The REST API's request and response bodies, and their conversion to and from core types."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atp.core.model import TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, PublishRequest
from atp.sdk.wire import rest

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

    def request(self, idempotency_key: str | None) -> PublishRequest:
        """The core request, ``idempotency_key`` (the header's) unless the body names one.

        Raises InvalidInput for a malformed duration.
        """
        return rest.request_in(self.model_dump(), idempotency_key)


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
        return cls.model_validate(rest.published_out(published))


class BatchOut(BaseModel):
    """The answers to a batch publish, in the order of the request."""

    tasks: list[PublishedOut]


class ErrorOut(BaseModel):
    """Why one attempt did not succeed."""

    attempt: int
    at: float
    message: str
    kind: str


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
        return cls.model_validate(rest.record_out(record))


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
