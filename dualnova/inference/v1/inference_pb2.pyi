from dualnova.chat.v1 import chat_pb2 as _chat_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieveRequest(_message.Message):
    __slots__ = ("grounding", "query")
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    grounding: _chat_pb2.Grounding
    query: str
    def __init__(self, grounding: _Optional[_Union[_chat_pb2.Grounding, _Mapping]] = ..., query: _Optional[str] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("retrieval",)
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    retrieval: _chat_pb2.Retrieval
    def __init__(self, retrieval: _Optional[_Union[_chat_pb2.Retrieval, _Mapping]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("model", "messages", "system", "inference_config", "cache_system", "tool_config", "guardrail_config", "options", "grounding", "retrieval")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CACHE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    TOOL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    system: _containers.RepeatedScalarFieldContainer[str]
    inference_config: _chat_pb2.InferenceConfig
    cache_system: bool
    tool_config: _chat_pb2.ToolConfig
    guardrail_config: _chat_pb2.GuardrailConfig
    options: _chat_pb2.BedrockOptions
    grounding: _chat_pb2.Grounding
    retrieval: _chat_pb2.Retrieval
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., system: _Optional[_Iterable[str]] = ..., inference_config: _Optional[_Union[_chat_pb2.InferenceConfig, _Mapping]] = ..., cache_system: _Optional[bool] = ..., tool_config: _Optional[_Union[_chat_pb2.ToolConfig, _Mapping]] = ..., guardrail_config: _Optional[_Union[_chat_pb2.GuardrailConfig, _Mapping]] = ..., options: _Optional[_Union[_chat_pb2.BedrockOptions, _Mapping]] = ..., grounding: _Optional[_Union[_chat_pb2.Grounding, _Mapping]] = ..., retrieval: _Optional[_Union[_chat_pb2.Retrieval, _Mapping]] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("start", "delta", "usage", "stop", "tool_use_start", "tool_input_delta", "content_block_stop", "guardrail_trace", "retrieval", "citation")
    START_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_START_FIELD_NUMBER: _ClassVar[int]
    TOOL_INPUT_DELTA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCK_STOP_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_TRACE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    start: _chat_pb2.Start
    delta: _chat_pb2.Delta
    usage: _chat_pb2.Usage
    stop: _chat_pb2.Stop
    tool_use_start: _chat_pb2.ToolUseStart
    tool_input_delta: _chat_pb2.ToolInputDelta
    content_block_stop: _chat_pb2.ContentBlockStop
    guardrail_trace: _chat_pb2.GuardrailTrace
    retrieval: _chat_pb2.Retrieval
    citation: _chat_pb2.Citation
    def __init__(self, start: _Optional[_Union[_chat_pb2.Start, _Mapping]] = ..., delta: _Optional[_Union[_chat_pb2.Delta, _Mapping]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., stop: _Optional[_Union[_chat_pb2.Stop, _Mapping]] = ..., tool_use_start: _Optional[_Union[_chat_pb2.ToolUseStart, _Mapping]] = ..., tool_input_delta: _Optional[_Union[_chat_pb2.ToolInputDelta, _Mapping]] = ..., content_block_stop: _Optional[_Union[_chat_pb2.ContentBlockStop, _Mapping]] = ..., guardrail_trace: _Optional[_Union[_chat_pb2.GuardrailTrace, _Mapping]] = ..., retrieval: _Optional[_Union[_chat_pb2.Retrieval, _Mapping]] = ..., citation: _Optional[_Union[_chat_pb2.Citation, _Mapping]] = ...) -> None: ...
