"""The REST API's request and response bodies, and their conversion to and from core types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.config import JsonDict

from atp.core.errors import InvalidInput
from atp.core.flow.rules import MAX_KEY_LENGTH as MAX_FLOW_KEY
from atp.core.flow.rules import MAX_LIMIT, MAX_WEIGHT, Limit
from atp.core.flow.service import FlowStatus
from atp.core.model import MAX_DEDUP_PERIOD, TaskRecord
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
    "DedupIn",
    "DedupOut",
    "FlowStatusOut",
    "Health",
    "LimitIn",
    "LimitOut",
    "PageOut",
    "PauseIn",
    "PauseOut",
    "Problem",
    "PublishedOut",
    "PurgeIn",
    "PurgeOut",
    "RateIn",
    "RequeueIn",
    "ResumeOut",
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
INT_RANGE = (-(2**63), 2**64 - 1)
"""The integers a payload may hold (the codec's, orjson's): one outside is refused (400)."""
PAYLOAD = (
    f"Any JSON value whose integers lie in [{INT_RANGE[0]}, {INT_RANGE[1]}] (a JSON Schema "
    "cannot say so of a value of any shape), up to max_payload bytes"
)
REPLACEMENT = f"Replaces the dead task's payload: {PAYLOAD}"
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
Whole = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_integer)]
"""A count of a flow-control limit: 1 to a million."""
Weight = Annotated[int, Field(ge=1, le=MAX_WEIGHT), BeforeValidator(_integer)]
"""A fair group's share of wake-ups (ADR 0039): 1 to 1000."""
SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What Python's ``str.isspace`` calls whitespace (core refuses it in a key), spelt out: a
JSON Schema ``\\s`` is ECMAScript's, which differs."""
KEY_PATTERN = f"^[^*{SPACE}]+$"
FlowKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_FLOW_KEY,
        description="No whitespace and no '*'",
        json_schema_extra={"pattern": KEY_PATTERN},
    ),
]
"""A task's concurrency, rate or group key."""
RATE_PATTERN = r"^(1000000|[1-9][0-9]{0,5})/(ms|s|m|h|d)$"
"""A rate as text: a count per one unit (``10/s``, ``100/m``); other periods as objects."""
KEY_PATTERN_PATTERN = f"^(\\*|[^*{SPACE}]{{1,{MAX_FLOW_KEY}}}\\*?)$"
"""A key pattern: a key, a key prefix then ``*``, or ``*`` alone."""


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


_SET: JsonDict = {"not": {"type": "null"}}
DEDUP_SHAPES: JsonDict = {
    "anyOf": [
        {"properties": {"mode": {"const": "unique"}, "period": {"type": "null"}}},
        {
            "required": ["period"],
            "properties": {"mode": {"enum": ["debounce", "throttle"]}, "period": _SET},
        },
    ]
}
"""unique takes no period; debounce and throttle need one."""
DEDUP_NEEDS: JsonDict = {
    "allOf": [
        {"anyOf": [{"not": _all_set("dedup")}, _all_set("idempotency_key")]},
        {
            "not": {
                **_all_set("dedup"),
                "properties": {
                    "dedup": {
                        "type": "object",
                        "required": ["mode"],
                        "properties": {"mode": {"const": "debounce"}},
                    }
                },
                "anyOf": [_all_set("delay"), _all_set("run_at")],
            }
        },
    ]
}
"""A dedup needs an ``idempotency_key`` in the task (not the Idempotency-Key header); a
debounce sets the run time itself: no delay or run_at beside it."""


class DedupIn(_Strict):
    """Debounce, throttle or unique-while-active on the task's idempotency key (ADR 0038).

    ``debounce``: replace the key's pending task and run ``period`` after this publish;
    ``throttle``: at most one task of the key per ``period``; ``unique``: refused (409
    ``key-active``) while the key's task is queued or running (no period)."""

    model_config = ConfigDict(json_schema_extra=DEDUP_SHAPES)

    mode: Literal["debounce", "throttle", "unique"]
    period: Number | None = Field(
        None, gt=0, le=MAX_DEDUP_PERIOD, description="Seconds; debounce and throttle only"
    )


class TaskIn(_Strict):
    """One task to publish. ``delay`` and ``run_at`` are exclusive; neither means now."""

    model_config = ConfigDict(json_schema_extra={"not": _all_set("delay", "run_at"), **DEDUP_NEEDS})

    subject: str = Field(
        max_length=MAX_SUBJECT_LENGTH,
        description="Dot-separated subject, e.g. orders.close",
        json_schema_extra={"pattern": SUBJECT_PATTERN},
    )
    payload: Any = Field(None, description=PAYLOAD)
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
    concurrency_key: FlowKey | None = Field(
        None, description="Tasks of one key run at most the key's limit at once (default 1)"
    )
    rate_key: FlowKey | None = Field(None, description="Tasks of one key share its rate limits")
    group_key: FlowKey | None = Field(
        None, description="The fair group (a tenant) by which waiting tasks are woken"
    )
    dedup: DedupIn | None = Field(
        None, description="Acts on idempotency_key, which this body must then name"
    )

    def request(self, idempotency_key: str | None) -> PublishRequest:
        """The core request, ``idempotency_key`` (the header's) unless the body names one.

        Raises InvalidInput for a malformed duration, or a dedup without a key of its own.
        """
        if self.dedup is not None and self.idempotency_key is None:
            # The document can state a body field, not a header beside it: the key a
            # dedup acts on is the body's, so what the document promises is exact.
            raise InvalidInput("dedup needs an idempotency_key in the task itself")
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
    replaced: str | None = None
    """Debounce: the pending task this one replaced (now cancelled)."""

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
    worker: str | None = None
    """The worker that ran the attempt; null where it is not known."""
    started_at: float | None = None
    """When the attempt began (it took ``at - started_at``); null where it is not known."""


class DedupOut(BaseModel):
    """A task's dedup mode and its period in seconds (null for unique)."""

    mode: str
    period: float | None = None


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
    """RUNNING: the worker holding the lease; SUCCEEDED: the worker that ran it."""
    lease_until: float | None
    result: Any = None
    errors: list[ErrorOut]
    cancel_requested: bool
    finished_at: float | None
    schedule: str | None
    workflow_run: str | None
    step: str | None
    concurrency_key: str | None = None
    rate_key: str | None = None
    group_key: str | None = None
    dedup: DedupOut | None = None

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
    payload: Any = Field(default=None, description=REPLACEMENT)


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
    """``idempotency-conflict`` and ``key-active`` only: the refused items."""
    accepted: list[str | None] | None = None
    """``idempotency-conflict`` and ``key-active`` only: the task id accepted per item,
    null if refused."""


# -- flow control (ADR 0038) -----------------------------------------------------------------


class RateIn(_Strict):
    """``count`` per ``per`` seconds."""

    count: Whole
    per: Number = Field(ge=0.001, le=86400)


RateText = Annotated[
    str, Field(max_length=64, pattern=RATE_PATTERN, description="A count per unit: 10/s, 100/m")
]


LIMIT_SHAPES: JsonDict = {
    "allOf": [
        {
            "anyOf": [
                {
                    "properties": {
                        "key": {"const": False},
                        "target": {"maxLength": MAX_SUBJECT_LENGTH, "pattern": PATTERN_PATTERN},
                    }
                },
                {
                    "required": ["key"],
                    "properties": {
                        "key": {"const": True},
                        "target": {"pattern": KEY_PATTERN_PATTERN},
                    },
                },
            ]
        },
        {"anyOf": [_all_set(name) for name in ("concurrency", "rate", "window", "weight")]},
        {"anyOf": [{"not": _all_set("burst")}, _all_set("rate")]},
        {
            "anyOf": [
                {"not": _all_set("weight")},
                {"required": ["key"], "properties": {"key": {"const": True}}},
            ]
        },
    ]
}
"""The target is a subject pattern, or a key pattern when ``key``; a limit sets a
concurrency, a rate, a window or a weight; a burst needs a rate, a weight a key rule."""


class LimitIn(_Strict):
    """A limit on a subject pattern, or on task keys when ``key`` (``customer:*``, ``*``):
    a concurrency, a token bucket (``rate``, ``burst``) and/or a sliding ``window``; a key
    rule may also give the fair groups it matches a ``weight`` (ADR 0039). It replaces the
    limit of the same target."""

    model_config = ConfigDict(json_schema_extra=LIMIT_SHAPES)

    target: str = Field(
        min_length=1,
        max_length=max(MAX_SUBJECT_LENGTH, MAX_FLOW_KEY + 1),
        description="A subject pattern (orders.*), or a key pattern when key is true",
    )
    key: Flag = False
    concurrency: Whole | None = Field(None, description="Tasks running at once, everywhere")
    rate: RateIn | RateText | None = Field(None, description="Runs started per period")
    burst: Whole | None = Field(None, description="Runs that may start at once (needs rate)")
    window: RateIn | RateText | None = Field(
        None, description="At most count runs started in any per seconds"
    )
    weight: Weight | None = Field(
        None, description="Key rules only: the matching groups' share of wake-ups (default 1)"
    )

    def limit(self) -> Limit:
        """The core Limit; InvalidInput for a malformed rule."""
        return rest.limit_in(self.model_dump(exclude_none=True))


class RateOut(BaseModel):
    count: int
    per: float


class LimitOut(BaseModel):
    """A stored limit; ``name`` is ``subject:<target>`` or ``key:<target>``."""

    name: str
    target: str
    key: bool
    concurrency: int | None = None
    rate: RateOut | None = None
    burst: int | None = None
    window: RateOut | None = None
    weight: int | None = None
    updated_at: float

    @classmethod
    def of(cls, limit: Limit) -> LimitOut:
        return cls.model_validate(rest.limit_out(limit))


class FlowStatusOut(BaseModel):
    """Every limit and pause; ``waiting``: tasks held per waiter list (``k:<key>`` or
    ``s:<pattern>`` behind a full slot, ``p:<subject>`` behind a pause)."""

    limits: list[LimitOut]
    pauses: list[str]
    waiting: dict[str, int]
    version: int

    @classmethod
    def of(cls, status: FlowStatus) -> FlowStatusOut:
        return cls.model_validate(rest.status_out(status))


class PauseIn(_Strict):
    """A subject pattern whose tasks workers stop taking until it is resumed."""

    pattern: str = Field(
        max_length=MAX_SUBJECT_LENGTH, json_schema_extra={"pattern": PATTERN_PATTERN}
    )


class PauseOut(BaseModel):
    """The paused pattern; ``changed`` is false if it was paused already."""

    pattern: str
    changed: bool


class ResumeOut(BaseModel):
    """How many held tasks the resume woke."""

    woken: int
