from dualnova.chat.v1 import chat_pb2 as _chat_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ordering(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDERING_UNSPECIFIED: _ClassVar[Ordering]
    ORDERING_INTERLEAVED: _ClassVar[Ordering]
    ORDERING_MICRO_FIRST: _ClassVar[Ordering]
ORDERING_UNSPECIFIED: Ordering
ORDERING_INTERLEAVED: Ordering
ORDERING_MICRO_FIRST: Ordering

class DualChatSessionRequest(_message.Message):
    __slots__ = ("start", "stop_route")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_ROUTE_FIELD_NUMBER: _ClassVar[int]
    start: DualChatRequest
    stop_route: StopRoute
    def __init__(self, start: _Optional[_Union[DualChatRequest, _Mapping]] = ..., stop_route: _Optional[_Union[StopRoute, _Mapping]] = ...) -> None: ...

class DualChatSessionResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: DualChatResponse
    def __init__(self, event: _Optional[_Union[DualChatResponse, _Mapping]] = ...) -> None: ...

class StopRoute(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: str
    def __init__(self, route: _Optional[str] = ...) -> None: ...

class RouteStopped(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class RouteOverride(_message.Message):
    __slots__ = ("system", "inference_config", "messages", "tool_config", "guardrail_config", "options", "skip_grounding")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SKIP_GROUNDING_FIELD_NUMBER: _ClassVar[int]
    system: _containers.RepeatedScalarFieldContainer[str]
    inference_config: _chat_pb2.InferenceConfig
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    tool_config: _chat_pb2.ToolConfig
    guardrail_config: _chat_pb2.GuardrailConfig
    options: _chat_pb2.BedrockOptions
    skip_grounding: bool
    def __init__(self, system: _Optional[_Iterable[str]] = ..., inference_config: _Optional[_Union[_chat_pb2.InferenceConfig, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., tool_config: _Optional[_Union[_chat_pb2.ToolConfig, _Mapping]] = ..., guardrail_config: _Optional[_Union[_chat_pb2.GuardrailConfig, _Mapping]] = ..., options: _Optional[_Union[_chat_pb2.BedrockOptions, _Mapping]] = ..., skip_grounding: _Optional[bool] = ...) -> None: ...

class DualChatRequest(_message.Message):
    __slots__ = ("messages", "system", "inference_config", "ordering", "micro", "pro", "cache_system", "tool_config", "guardrail_config", "options", "grounding")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ORDERING_FIELD_NUMBER: _ClassVar[int]
    MICRO_FIELD_NUMBER: _ClassVar[int]
    PRO_FIELD_NUMBER: _ClassVar[int]
    CACHE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    TOOL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    system: _containers.RepeatedScalarFieldContainer[str]
    inference_config: _chat_pb2.InferenceConfig
    ordering: Ordering
    micro: RouteOverride
    pro: RouteOverride
    cache_system: bool
    tool_config: _chat_pb2.ToolConfig
    guardrail_config: _chat_pb2.GuardrailConfig
    options: _chat_pb2.BedrockOptions
    grounding: _chat_pb2.Grounding
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., system: _Optional[_Iterable[str]] = ..., inference_config: _Optional[_Union[_chat_pb2.InferenceConfig, _Mapping]] = ..., ordering: _Optional[_Union[Ordering, str]] = ..., micro: _Optional[_Union[RouteOverride, _Mapping]] = ..., pro: _Optional[_Union[RouteOverride, _Mapping]] = ..., cache_system: _Optional[bool] = ..., tool_config: _Optional[_Union[_chat_pb2.ToolConfig, _Mapping]] = ..., guardrail_config: _Optional[_Union[_chat_pb2.GuardrailConfig, _Mapping]] = ..., options: _Optional[_Union[_chat_pb2.BedrockOptions, _Mapping]] = ..., grounding: _Optional[_Union[_chat_pb2.Grounding, _Mapping]] = ...) -> None: ...

class RouteError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("usage_by_route", "total", "trace_id", "cost_by_route", "total_cost")
    class UsageByRouteEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _chat_pb2.Usage
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...
    class CostByRouteEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _chat_pb2.Cost
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_chat_pb2.Cost, _Mapping]] = ...) -> None: ...
    USAGE_BY_ROUTE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    COST_BY_ROUTE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    usage_by_route: _containers.MessageMap[str, _chat_pb2.Usage]
    total: _chat_pb2.Usage
    trace_id: str
    cost_by_route: _containers.MessageMap[str, _chat_pb2.Cost]
    total_cost: _chat_pb2.Cost
    def __init__(self, usage_by_route: _Optional[_Mapping[str, _chat_pb2.Usage]] = ..., total: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., trace_id: _Optional[str] = ..., cost_by_route: _Optional[_Mapping[str, _chat_pb2.Cost]] = ..., total_cost: _Optional[_Union[_chat_pb2.Cost, _Mapping]] = ...) -> None: ...

class DualChatResponse(_message.Message):
    __slots__ = ("route", "start", "delta", "usage", "stop", "error", "summary", "tool_use_start", "tool_input_delta", "content_block_stop", "guardrail_trace", "retrieval", "citation", "route_stopped")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_START_FIELD_NUMBER: _ClassVar[int]
    TOOL_INPUT_DELTA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCK_STOP_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_TRACE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_STOPPED_FIELD_NUMBER: _ClassVar[int]
    route: str
    start: _chat_pb2.Start
    delta: _chat_pb2.Delta
    usage: _chat_pb2.Usage
    stop: _chat_pb2.Stop
    error: RouteError
    summary: Summary
    tool_use_start: _chat_pb2.ToolUseStart
    tool_input_delta: _chat_pb2.ToolInputDelta
    content_block_stop: _chat_pb2.ContentBlockStop
    guardrail_trace: _chat_pb2.GuardrailTrace
    retrieval: _chat_pb2.Retrieval
    citation: _chat_pb2.Citation
    route_stopped: RouteStopped
    def __init__(self, route: _Optional[str] = ..., start: _Optional[_Union[_chat_pb2.Start, _Mapping]] = ..., delta: _Optional[_Union[_chat_pb2.Delta, _Mapping]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., stop: _Optional[_Union[_chat_pb2.Stop, _Mapping]] = ..., error: _Optional[_Union[RouteError, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., tool_use_start: _Optional[_Union[_chat_pb2.ToolUseStart, _Mapping]] = ..., tool_input_delta: _Optional[_Union[_chat_pb2.ToolInputDelta, _Mapping]] = ..., content_block_stop: _Optional[_Union[_chat_pb2.ContentBlockStop, _Mapping]] = ..., guardrail_trace: _Optional[_Union[_chat_pb2.GuardrailTrace, _Mapping]] = ..., retrieval: _Optional[_Union[_chat_pb2.Retrieval, _Mapping]] = ..., citation: _Optional[_Union[_chat_pb2.Citation, _Mapping]] = ..., route_stopped: _Optional[_Union[RouteStopped, _Mapping]] = ...) -> None: ...
