"""The REST API's request and response bodies, and their conversion to and from core types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from atp.core.model import TaskRecord
from atp.core.ports import Page
from atp.core.service import (
    MAX_ATTEMPTS_LIMIT,
    MAX_BATCH,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_KEY_LENGTH,
    MAX_PRIORITY,
    Published,
    PublishRequest,
)
from atp.core.settings import Settings
from atp.core.subjects import MAX_SUBJECT_LENGTH
from atp.sdk.wire import rest

__all__ = [
    "PATTERN_PATTERN",
    "SUBJECT_PATTERN",
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
PATTERN_PATTERN = r"^(([A-Za-z0-9_-]+|\*)\.){0,15}([A-Za-z0-9_-]+|\*|>)$"
"""The same for subject patterns: ``*`` for one token, ``>`` last for the rest."""
COMPONENTS = "#/components/schemas/"
"""Where the OpenAPI document keeps the models' schemas."""
EARLIEST_RUN_AT = 946_684_800.0
"""2000-01-01: the core refuses an earlier ``run_at`` as a unit mistake."""
MAX_DELAY = Settings().max_delay
"""The default ``max_delay``; each server's document states its own."""
DURATION_FORMAT = "atp-duration"
"""The OpenAPI format of a duration text: a number, then a unit (``ms``, ``s``, ``m``,
``h``, ``d``, ``w``; seconds without one), whose value keeps to the field's bounds."""
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d|w)?$"
POSITIVE_DURATION_PATTERN = (
    r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(ms|s|m|h|d|w)?$"
)


def _integer(value: Any) -> Any:
    """Let JSON's integers through (``3.0`` too), not ``true`` or ``"3"``, which pydantic's
    lax mode would turn into integers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    return value


Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite JSON number; not a boolean or a text."""
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS_LIMIT), BeforeValidator(_integer)]
"""How many attempts a task may have."""
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), BeforeValidator(_integer)]
"""A task's priority: higher first among tasks due at the same instant (Redis Streams and
NATS deliver in publish order)."""
Version = Annotated[int, Field(ge=1), BeforeValidator(_integer)]
"""A workflow definition's version."""
Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` only."""
DurationText = Annotated[
    str,
    Field(max_length=64, pattern=DURATION_PATTERN, json_schema_extra={"format": DURATION_FORMAT}),
]
PositiveText = Annotated[
    str,
    Field(
        max_length=64,
        pattern=POSITIVE_DURATION_PATTERN,
        json_schema_extra={"format": DURATION_FORMAT},
    ),
]
Seconds = Annotated[Number, Field(gt=0)] | PositiveText
"""A positive duration: seconds as a number, or a duration text such as ``"30s"``."""
Delay = Annotated[Number, Field(ge=0, le=MAX_DELAY)] | DurationText
"""How long to wait, at most ``max_delay``: seconds, or a duration text."""


def _all_set(*names: str) -> dict[str, Any]:
    """The JSON schema of an object in which every one of ``names`` is set, not null."""
    return {"required": list(names), "properties": {n: {"not": {"type": "null"}} for n in names}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryIn(_Strict):
    """Exponential backoff with full jitter between attempts."""

    base: Number = Field(1.0, ge=0, le=86400)
    factor: Number = Field(2.0, ge=1, le=100)
    cap: Number = Field(300.0, ge=0, le=366 * 86400)
    jitter: Flag = True


class TaskIn(_Strict):
    """One task to publish. ``delay`` and ``run_at`` are exclusive; neither means now."""

    model_config = ConfigDict(json_schema_extra={"not": _all_set("delay", "run_at")})

    subject: str = Field(
        max_length=MAX_SUBJECT_LENGTH,
        description="Dot-separated subject, e.g. orders.close",
        json_schema_extra={"pattern": SUBJECT_PATTERN},
    )
    payload: Any = Field(None, description="Any JSON value, up to max_payload bytes")
    delay: Delay | None = Field(None, description="Run after this many seconds (or '30m')")
    run_at: Number | None = Field(
        None,
        ge=EARLIEST_RUN_AT,
        description="Run at this time, seconds since the epoch, at most max_delay ahead",
    )
    idempotency_key: str | None = Field(None, min_length=1, max_length=MAX_KEY_LENGTH)
    headers: dict[Annotated[str, Field(min_length=1)], str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description=f"Names and values of {MAX_HEADER_BYTES} characters in all",
    )
    max_attempts: Attempts | None = None
    timeout: Seconds | None = Field(None, description="Seconds per attempt (or '5m')")
    priority: Priority = 0
    retry: RetryIn | None = None

    def request(self, idempotency_key: str | None) -> PublishRequest:
        """The core request, ``idempotency_key`` (the header's) unless the body names one.

        Raises InvalidInput for a malformed duration.
        """
        return rest.request_in(self.model_dump(), idempotency_key)


class BatchIn(_Strict):
    """Tasks to publish in one store call: all are accepted, or none on bad input."""

    tasks: list[TaskIn] = Field(max_length=MAX_BATCH)

    @classmethod
    def request_body(cls) -> dict[str, Any]:
        """The OpenAPI request body of a route that reads this model itself."""
        schema = {"$ref": f"{COMPONENTS}{cls.__name__}"}
        return {"required": True, "content": {"application/json": {"schema": schema}}}


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
    traceback: str | None = None
    """The handler's traceback, cut past 16384 characters; null where nothing was raised."""


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

    delay: Delay | None = None
    payload: Any = None


class PurgeIn(_Strict):
    """Which dead tasks to delete: these ids, or every dead task when ``ids`` is null."""

    ids: list[str] | None = Field(None, max_length=MAX_BATCH)


class PurgeOut(BaseModel):
    """How many dead tasks were deleted."""

    purged: int


class Health(BaseModel):
    """Liveness or readiness; ``checks`` names each backend and what it answered."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ConflictOut(BaseModel):
    """One item of a publish refused because its idempotency key names another task."""

    index: int
    """The item's place in the request (0 for a single publish)."""
    task_id: str | None
    """The task that holds the key; null when the key's owner is another item of the
    same request."""
    fields: list[str]
    """The parameters that differ (never their values)."""


class Problem(BaseModel):
    """An RFC 9457 problem document; ``type`` is stable per kind of error."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    conflicts: list[ConflictOut] | None = None
    """``idempotency-conflict`` only: the refused items."""
    accepted: list[str | None] | None = None
    """``idempotency-conflict`` only: the task id accepted per item, null if refused."""
