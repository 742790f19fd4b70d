from dualnova.chat.v1 import chat_pb2 as _chat_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatRequest(_message.Message):
    __slots__ = ("model", "messages", "system", "inference_config", "cache_system")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CACHE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    system: _containers.RepeatedScalarFieldContainer[str]
    inference_config: _chat_pb2.InferenceConfig
    cache_system: bool
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., system: _Optional[_Iterable[str]] = ..., inference_config: _Optional[_Union[_chat_pb2.InferenceConfig, _Mapping]] = ..., cache_system: _Optional[bool] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("start", "delta", "usage", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: _chat_pb2.Start
    delta: _chat_pb2.Delta
    usage: _chat_pb2.Usage
    stop: _chat_pb2.Stop
    def __init__(self, start: _Optional[_Union[_chat_pb2.Start, _Mapping]] = ..., delta: _Optional[_Union[_chat_pb2.Delta, _Mapping]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., stop: _Optional[_Union[_chat_pb2.Stop, _Mapping]] = ...) -> None: ...
