from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Rate(_message.Message):
    __slots__ = ("count", "per")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PER_FIELD_NUMBER: _ClassVar[int]
    count: int
    per: float
    def __init__(self, count: _Optional[int] = ..., per: _Optional[float] = ...) -> None: ...

class Limit(_message.Message):
    __slots__ = ("target", "key", "concurrency", "rate", "burst", "window", "updated_at", "weight")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    target: str
    key: bool
    concurrency: int
    rate: Rate
    burst: int
    window: Rate
    updated_at: float
    weight: int
    def __init__(self, target: _Optional[str] = ..., key: _Optional[bool] = ..., concurrency: _Optional[int] = ..., rate: _Optional[_Union[Rate, _Mapping]] = ..., burst: _Optional[int] = ..., window: _Optional[_Union[Rate, _Mapping]] = ..., updated_at: _Optional[float] = ..., weight: _Optional[int] = ...) -> None: ...

class SetLimitRequest(_message.Message):
    __slots__ = ("target", "key", "concurrency", "rate", "burst", "window", "weight")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    target: str
    key: bool
    concurrency: int
    rate: Rate
    burst: int
    window: Rate
    weight: int
    def __init__(self, target: _Optional[str] = ..., key: _Optional[bool] = ..., concurrency: _Optional[int] = ..., rate: _Optional[_Union[Rate, _Mapping]] = ..., burst: _Optional[int] = ..., window: _Optional[_Union[Rate, _Mapping]] = ..., weight: _Optional[int] = ...) -> None: ...

class LimitTarget(_message.Message):
    __slots__ = ("target", "key")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    target: str
    key: bool
    def __init__(self, target: _Optional[str] = ..., key: _Optional[bool] = ...) -> None: ...

class RemoveLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlowStatus(_message.Message):
    __slots__ = ("limits", "pauses", "waiting", "version")
    class WaitingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PAUSES_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    pauses: _containers.RepeatedScalarFieldContainer[str]
    waiting: _containers.ScalarMap[str, int]
    version: int
    def __init__(self, limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., pauses: _Optional[_Iterable[str]] = ..., waiting: _Optional[_Mapping[str, int]] = ..., version: _Optional[int] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ("pattern",)
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    def __init__(self, pattern: _Optional[str] = ...) -> None: ...

class PauseResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class ResumeResponse(_message.Message):
    __slots__ = ("woken",)
    WOKEN_FIELD_NUMBER: _ClassVar[int]
    woken: int
    def __init__(self, woken: _Optional[int] = ...) -> None: ...
