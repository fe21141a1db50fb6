from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("pools", "callers", "overload")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    CALLERS_FIELD_NUMBER: _ClassVar[int]
    OVERLOAD_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolStats]
    callers: _containers.RepeatedCompositeFieldContainer[CallerUsage]
    overload: OverloadStats
    def __init__(self, pools: _Optional[_Iterable[_Union[PoolStats, _Mapping]]] = ..., callers: _Optional[_Iterable[_Union[CallerUsage, _Mapping]]] = ..., overload: _Optional[_Union[OverloadStats, _Mapping]] = ...) -> None: ...

class CallerUsage(_message.Message):
    __slots__ = ("name", "active_streams", "requests", "characters", "generation_requests", "characters_last_minute", "generation_requests_last_minute", "refused")
    class RefusedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_REQUESTS_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    active_streams: int
    requests: int
    characters: int
    generation_requests: int
    characters_last_minute: int
    generation_requests_last_minute: int
    refused: _containers.ScalarMap[str, int]
    def __init__(self, name: _Optional[str] = ..., active_streams: _Optional[int] = ..., requests: _Optional[int] = ..., characters: _Optional[int] = ..., generation_requests: _Optional[int] = ..., characters_last_minute: _Optional[int] = ..., generation_requests_last_minute: _Optional[int] = ..., refused: _Optional[_Mapping[str, int]] = ...) -> None: ...

class OverloadStats(_message.Message):
    __slots__ = ("in_flight", "max_concurrent_rpcs", "refused", "writes_stalled", "salvaged", "salvage_closed", "salvages_in_flight", "rate_limited_waits")
    class RefusedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RPCS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    WRITES_STALLED_FIELD_NUMBER: _ClassVar[int]
    SALVAGED_FIELD_NUMBER: _ClassVar[int]
    SALVAGE_CLOSED_FIELD_NUMBER: _ClassVar[int]
    SALVAGES_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_WAITS_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    max_concurrent_rpcs: int
    refused: _containers.ScalarMap[str, int]
    writes_stalled: int
    salvaged: int
    salvage_closed: int
    salvages_in_flight: int
    rate_limited_waits: int
    def __init__(self, in_flight: _Optional[int] = ..., max_concurrent_rpcs: _Optional[int] = ..., refused: _Optional[_Mapping[str, int]] = ..., writes_stalled: _Optional[int] = ..., salvaged: _Optional[int] = ..., salvage_closed: _Optional[int] = ..., salvages_in_flight: _Optional[int] = ..., rate_limited_waits: _Optional[int] = ...) -> None: ...

class PoolStats(_message.Message):
    __slots__ = ("name", "idle", "in_use", "connecting", "pending", "max_size", "peak_in_use", "created", "connect_failures", "leases", "warm_leases", "reused_leases", "queued_leases", "timeouts", "evicted", "reuse_ratio", "utilization", "peak_utilization", "checking", "overflow_in_use", "overflow_leases", "serving")
    class EvictedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    CONNECTING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    PEAK_IN_USE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CONNECT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    WARM_LEASES_FIELD_NUMBER: _ClassVar[int]
    REUSED_LEASES_FIELD_NUMBER: _ClassVar[int]
    QUEUED_LEASES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    EVICTED_FIELD_NUMBER: _ClassVar[int]
    REUSE_RATIO_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    PEAK_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    CHECKING_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_IN_USE_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_LEASES_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    name: str
    idle: int
    in_use: int
    connecting: int
    pending: int
    max_size: int
    peak_in_use: int
    created: int
    connect_failures: int
    leases: int
    warm_leases: int
    reused_leases: int
    queued_leases: int
    timeouts: int
    evicted: _containers.ScalarMap[str, int]
    reuse_ratio: float
    utilization: float
    peak_utilization: float
    checking: int
    overflow_in_use: int
    overflow_leases: int
    serving: bool
    def __init__(self, name: _Optional[str] = ..., idle: _Optional[int] = ..., in_use: _Optional[int] = ..., connecting: _Optional[int] = ..., pending: _Optional[int] = ..., max_size: _Optional[int] = ..., peak_in_use: _Optional[int] = ..., created: _Optional[int] = ..., connect_failures: _Optional[int] = ..., leases: _Optional[int] = ..., warm_leases: _Optional[int] = ..., reused_leases: _Optional[int] = ..., queued_leases: _Optional[int] = ..., timeouts: _Optional[int] = ..., evicted: _Optional[_Mapping[str, int]] = ..., reuse_ratio: _Optional[float] = ..., utilization: _Optional[float] = ..., peak_utilization: _Optional[float] = ..., checking: _Optional[int] = ..., overflow_in_use: _Optional[int] = ..., overflow_leases: _Optional[int] = ..., serving: _Optional[bool] = ...) -> None: ...
