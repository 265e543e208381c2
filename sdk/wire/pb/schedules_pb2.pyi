from atp.sdk.wire.pb import tasks_pb2 as _tasks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Schedule(_message.Message):
    __slots__ = ("name", "expression", "subject", "payload", "tz", "misfire", "overlap", "paused", "next_tick", "last_tick", "last_task", "last_fired_at", "created_at", "updated_at", "revision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NEXT_TICK_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_FIELD_NUMBER: _ClassVar[int]
    LAST_TASK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    subject: str
    payload: bytes
    tz: str
    misfire: str
    overlap: str
    paused: bool
    next_tick: float
    last_tick: float
    last_task: str
    last_fired_at: float
    created_at: float
    updated_at: float
    revision: int
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ..., subject: _Optional[str] = ..., payload: _Optional[bytes] = ..., tz: _Optional[str] = ..., misfire: _Optional[str] = ..., overlap: _Optional[str] = ..., paused: _Optional[bool] = ..., next_tick: _Optional[float] = ..., last_tick: _Optional[float] = ..., last_task: _Optional[str] = ..., last_fired_at: _Optional[float] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., revision: _Optional[int] = ...) -> None: ...

class AddScheduleRequest(_message.Message):
    __slots__ = ("name", "expression", "subject", "payload", "tz", "misfire", "overlap")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TZ_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    subject: str
    payload: bytes
    tz: str
    misfire: str
    overlap: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ..., subject: _Optional[str] = ..., payload: _Optional[bytes] = ..., tz: _Optional[str] = ..., misfire: _Optional[str] = ..., overlap: _Optional[str] = ...) -> None: ...

class ScheduleName(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScheduleList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, items: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class RemoveScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
