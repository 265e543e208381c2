from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryPolicy(_message.Message):
    __slots__ = ("base", "factor", "cap", "jitter")
    BASE_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    base: float
    factor: float
    cap: float
    jitter: bool
    def __init__(self, base: _Optional[float] = ..., factor: _Optional[float] = ..., cap: _Optional[float] = ..., jitter: _Optional[bool] = ...) -> None: ...

class Dedup(_message.Message):
    __slots__ = ("mode", "period")
    MODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    mode: str
    period: float
    def __init__(self, mode: _Optional[str] = ..., period: _Optional[float] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("subject", "payload", "delay", "run_at", "idempotency_key", "headers", "max_attempts", "timeout", "priority", "retry", "concurrency_key", "rate_key", "dedup", "group_key")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RATE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    payload: bytes
    delay: float
    run_at: float
    idempotency_key: str
    headers: _containers.ScalarMap[str, str]
    max_attempts: int
    timeout: float
    priority: int
    retry: RetryPolicy
    concurrency_key: str
    rate_key: str
    dedup: Dedup
    group_key: str
    def __init__(self, subject: _Optional[str] = ..., payload: _Optional[bytes] = ..., delay: _Optional[float] = ..., run_at: _Optional[float] = ..., idempotency_key: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., max_attempts: _Optional[int] = ..., timeout: _Optional[float] = ..., priority: _Optional[int] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., concurrency_key: _Optional[str] = ..., rate_key: _Optional[str] = ..., dedup: _Optional[_Union[Dedup, _Mapping]] = ..., group_key: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("id", "created", "run_at", "replaced")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: bool
    run_at: float
    replaced: str
    def __init__(self, id: _Optional[str] = ..., created: _Optional[bool] = ..., run_at: _Optional[float] = ..., replaced: _Optional[str] = ...) -> None: ...

class PublishBatchRequest(_message.Message):
    __slots__ = ("tasks", "idempotency_key")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[PublishRequest]
    idempotency_key: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[PublishRequest, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PublishBatchResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[PublishResponse]
    def __init__(self, tasks: _Optional[_Iterable[_Union[PublishResponse, _Mapping]]] = ...) -> None: ...

class AttemptError(_message.Message):
    __slots__ = ("attempt", "at", "message", "kind", "traceback", "worker", "started_at")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    at: float
    message: str
    kind: str
    traceback: str
    worker: str
    started_at: float
    def __init__(self, attempt: _Optional[int] = ..., at: _Optional[float] = ..., message: _Optional[str] = ..., kind: _Optional[str] = ..., traceback: _Optional[str] = ..., worker: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("id", "subject", "state", "payload", "headers", "idempotency_key", "run_at", "created_at", "updated_at", "attempt", "max_attempts", "timeout", "priority", "lease_owner", "lease_until", "result", "errors", "cancel_requested", "finished_at", "schedule", "workflow_run", "step", "concurrency_key", "rate_key", "dedup", "group_key")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LEASE_OWNER_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RATE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    subject: str
    state: str
    payload: bytes
    headers: _containers.ScalarMap[str, str]
    idempotency_key: str
    run_at: float
    created_at: float
    updated_at: float
    attempt: int
    max_attempts: int
    timeout: float
    priority: int
    lease_owner: str
    lease_until: float
    result: bytes
    errors: _containers.RepeatedCompositeFieldContainer[AttemptError]
    cancel_requested: bool
    finished_at: float
    schedule: str
    workflow_run: str
    step: str
    concurrency_key: str
    rate_key: str
    dedup: Dedup
    group_key: str
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[str] = ..., state: _Optional[str] = ..., payload: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., run_at: _Optional[float] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., timeout: _Optional[float] = ..., priority: _Optional[int] = ..., lease_owner: _Optional[str] = ..., lease_until: _Optional[float] = ..., result: _Optional[bytes] = ..., errors: _Optional[_Iterable[_Union[AttemptError, _Mapping]]] = ..., cancel_requested: _Optional[bool] = ..., finished_at: _Optional[float] = ..., schedule: _Optional[str] = ..., workflow_run: _Optional[str] = ..., step: _Optional[str] = ..., concurrency_key: _Optional[str] = ..., rate_key: _Optional[str] = ..., dedup: _Optional[_Union[Dedup, _Mapping]] = ..., group_key: _Optional[str] = ...) -> None: ...

class TaskId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("subject", "states", "cursor", "limit", "created_after", "created_before", "idempotency_key")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    states: _containers.RepeatedScalarFieldContainer[str]
    cursor: str
    limit: int
    created_after: float
    created_before: float
    idempotency_key: str
    def __init__(self, subject: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ..., created_after: _Optional[float] = ..., created_before: _Optional[float] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class TaskPage(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CountsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Count(_message.Message):
    __slots__ = ("subject", "state", "count")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    state: str
    count: int
    def __init__(self, subject: _Optional[str] = ..., state: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class CountsResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[Count]
    def __init__(self, counts: _Optional[_Iterable[_Union[Count, _Mapping]]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("subject", "cursor", "limit")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    cursor: str
    limit: int
    def __init__(self, subject: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class RequeueRequest(_message.Message):
    __slots__ = ("id", "delay", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: str
    delay: float
    payload: bytes
    def __init__(self, id: _Optional[str] = ..., delay: _Optional[float] = ..., payload: _Optional[bytes] = ...) -> None: ...

class PurgeRequest(_message.Message):
    __slots__ = ("ids", "all")
    IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ...) -> None: ...

class PurgeResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...
