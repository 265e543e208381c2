from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Worker(_message.Message):
    __slots__ = ("name", "role", "host", "pid", "version", "group", "patterns", "concurrency", "running", "started_at", "seen_at", "expires_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    host: str
    pid: int
    version: str
    group: str
    patterns: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    running: int
    started_at: float
    seen_at: float
    expires_at: float
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., version: _Optional[str] = ..., group: _Optional[str] = ..., patterns: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ..., running: _Optional[int] = ..., started_at: _Optional[float] = ..., seen_at: _Optional[float] = ..., expires_at: _Optional[float] = ...) -> None: ...

class Leader(_message.Message):
    __slots__ = ("lease", "owner", "token", "expires_at")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease: str
    owner: str
    token: int
    expires_at: float
    def __init__(self, lease: _Optional[str] = ..., owner: _Optional[str] = ..., token: _Optional[int] = ..., expires_at: _Optional[float] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerList(_message.Message):
    __slots__ = ("workers", "leader", "registry")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    leader: Leader
    registry: bool
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ..., leader: _Optional[_Union[Leader, _Mapping]] = ..., registry: _Optional[bool] = ...) -> None: ...

class CircuitBreaker(_message.Message):
    __slots__ = ("key", "group", "subject", "circuit", "window_start", "ok", "failed", "prev_ok", "prev_failed", "open_until", "probe", "probe_until", "changed_at", "changed_by")
    KEY_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PREV_OK_FIELD_NUMBER: _ClassVar[int]
    PREV_FAILED_FIELD_NUMBER: _ClassVar[int]
    OPEN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    PROBE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    key: str
    group: str
    subject: str
    circuit: str
    window_start: float
    ok: int
    failed: int
    prev_ok: int
    prev_failed: int
    open_until: float
    probe: str
    probe_until: float
    changed_at: float
    changed_by: str
    def __init__(self, key: _Optional[str] = ..., group: _Optional[str] = ..., subject: _Optional[str] = ..., circuit: _Optional[str] = ..., window_start: _Optional[float] = ..., ok: _Optional[int] = ..., failed: _Optional[int] = ..., prev_ok: _Optional[int] = ..., prev_failed: _Optional[int] = ..., open_until: _Optional[float] = ..., probe: _Optional[str] = ..., probe_until: _Optional[float] = ..., changed_at: _Optional[float] = ..., changed_by: _Optional[str] = ...) -> None: ...

class ListBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BreakerList(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[CircuitBreaker]
    def __init__(self, breakers: _Optional[_Iterable[_Union[CircuitBreaker, _Mapping]]] = ...) -> None: ...
