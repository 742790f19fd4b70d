import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus

class ListDetailsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDetailsResponse(_message.Message):
    __slots__ = ("details",)
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HealthDetails
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HealthDetails, _Mapping]] = ...) -> None: ...
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    details: _containers.MessageMap[str, HealthDetails]
    def __init__(self, details: _Optional[_Mapping[str, HealthDetails]] = ...) -> None: ...

class HealthDetails(_message.Message):
    __slots__ = ("status", "reason", "change_time")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    reason: str
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ..., reason: _Optional[str] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
