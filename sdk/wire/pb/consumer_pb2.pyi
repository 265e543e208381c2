from atp.sdk.wire.pb import tasks_pb2 as _tasks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieveRequest(_message.Message):
    __slots__ = ("pattern", "group", "max_in_flight", "lease")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    group: str
    max_in_flight: int
    lease: float
    def __init__(self, pattern: _Optional[str] = ..., group: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., lease: _Optional[float] = ...) -> None: ...

class LeasedTask(_message.Message):
    __slots__ = ("task", "lease_id", "lease_until")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    task: _tasks_pb2.TaskRecord
    lease_id: str
    lease_until: float
    def __init__(self, task: _Optional[_Union[_tasks_pb2.TaskRecord, _Mapping]] = ..., lease_id: _Optional[str] = ..., lease_until: _Optional[float] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("task_id", "lease_id", "result")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_id: str
    result: bytes
    def __init__(self, task_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., result: _Optional[bytes] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NackRequest(_message.Message):
    __slots__ = ("task_id", "lease_id", "delay", "error", "terminate")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_id: str
    delay: float
    error: str
    terminate: bool
    def __init__(self, task_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., delay: _Optional[float] = ..., error: _Optional[str] = ..., terminate: _Optional[bool] = ...) -> None: ...

class NackResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("task_ids", "lease_id", "lease")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    lease_id: str
    lease: float
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., lease_id: _Optional[str] = ..., lease: _Optional[float] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, statuses: _Optional[_Iterable[str]] = ...) -> None: ...
