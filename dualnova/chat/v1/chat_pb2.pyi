from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_GIF: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]

class DocumentFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_FORMAT_UNSPECIFIED: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_PDF: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_CSV: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_DOC: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_DOCX: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_XLS: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_XLSX: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_HTML: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_TXT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_MD: _ClassVar[DocumentFormat]

class ToolResultStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_RESULT_STATUS_UNSPECIFIED: _ClassVar[ToolResultStatus]
    TOOL_RESULT_STATUS_SUCCESS: _ClassVar[ToolResultStatus]
    TOOL_RESULT_STATUS_ERROR: _ClassVar[ToolResultStatus]

class GuardQualifier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARD_QUALIFIER_UNSPECIFIED: _ClassVar[GuardQualifier]
    GUARD_QUALIFIER_GROUNDING_SOURCE: _ClassVar[GuardQualifier]
    GUARD_QUALIFIER_QUERY: _ClassVar[GuardQualifier]
    GUARD_QUALIFIER_GUARD_CONTENT: _ClassVar[GuardQualifier]

class ToolChoiceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_CHOICE_MODE_UNSPECIFIED: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_AUTO: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_ANY: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_TOOL: _ClassVar[ToolChoiceMode]

class GuardrailTraceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARDRAIL_TRACE_MODE_UNSPECIFIED: _ClassVar[GuardrailTraceMode]
    GUARDRAIL_TRACE_MODE_DISABLED: _ClassVar[GuardrailTraceMode]
    GUARDRAIL_TRACE_MODE_ENABLED: _ClassVar[GuardrailTraceMode]
    GUARDRAIL_TRACE_MODE_ENABLED_FULL: _ClassVar[GuardrailTraceMode]

class GuardrailStreamMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARDRAIL_STREAM_MODE_UNSPECIFIED: _ClassVar[GuardrailStreamMode]
    GUARDRAIL_STREAM_MODE_SYNC: _ClassVar[GuardrailStreamMode]
    GUARDRAIL_STREAM_MODE_ASYNC: _ClassVar[GuardrailStreamMode]

class Latency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LATENCY_UNSPECIFIED: _ClassVar[Latency]
    LATENCY_STANDARD: _ClassVar[Latency]
    LATENCY_OPTIMIZED: _ClassVar[Latency]

class ServiceTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_TIER_UNSPECIFIED: _ClassVar[ServiceTier]
    SERVICE_TIER_DEFAULT: _ClassVar[ServiceTier]
    SERVICE_TIER_PRIORITY: _ClassVar[ServiceTier]
    SERVICE_TIER_FLEX: _ClassVar[ServiceTier]

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_END_TURN: _ClassVar[StopReason]
    STOP_REASON_TOOL_USE: _ClassVar[StopReason]
    STOP_REASON_MAX_TOKENS: _ClassVar[StopReason]
    STOP_REASON_STOP_SEQUENCE: _ClassVar[StopReason]
    STOP_REASON_GUARDRAIL_INTERVENED: _ClassVar[StopReason]
    STOP_REASON_CONTENT_FILTERED: _ClassVar[StopReason]
    STOP_REASON_MODEL_CONTEXT_WINDOW_EXCEEDED: _ClassVar[StopReason]

class SearchType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_TYPE_UNSPECIFIED: _ClassVar[SearchType]
    SEARCH_TYPE_HYBRID: _ClassVar[SearchType]
    SEARCH_TYPE_SEMANTIC: _ClassVar[SearchType]
ROLE_UNSPECIFIED: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_GIF: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
DOCUMENT_FORMAT_UNSPECIFIED: DocumentFormat
DOCUMENT_FORMAT_PDF: DocumentFormat
DOCUMENT_FORMAT_CSV: DocumentFormat
DOCUMENT_FORMAT_DOC: DocumentFormat
DOCUMENT_FORMAT_DOCX: DocumentFormat
DOCUMENT_FORMAT_XLS: DocumentFormat
DOCUMENT_FORMAT_XLSX: DocumentFormat
DOCUMENT_FORMAT_HTML: DocumentFormat
DOCUMENT_FORMAT_TXT: DocumentFormat
DOCUMENT_FORMAT_MD: DocumentFormat
TOOL_RESULT_STATUS_UNSPECIFIED: ToolResultStatus
TOOL_RESULT_STATUS_SUCCESS: ToolResultStatus
TOOL_RESULT_STATUS_ERROR: ToolResultStatus
GUARD_QUALIFIER_UNSPECIFIED: GuardQualifier
GUARD_QUALIFIER_GROUNDING_SOURCE: GuardQualifier
GUARD_QUALIFIER_QUERY: GuardQualifier
GUARD_QUALIFIER_GUARD_CONTENT: GuardQualifier
TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode
TOOL_CHOICE_MODE_AUTO: ToolChoiceMode
TOOL_CHOICE_MODE_ANY: ToolChoiceMode
TOOL_CHOICE_MODE_TOOL: ToolChoiceMode
GUARDRAIL_TRACE_MODE_UNSPECIFIED: GuardrailTraceMode
GUARDRAIL_TRACE_MODE_DISABLED: GuardrailTraceMode
GUARDRAIL_TRACE_MODE_ENABLED: GuardrailTraceMode
GUARDRAIL_TRACE_MODE_ENABLED_FULL: GuardrailTraceMode
GUARDRAIL_STREAM_MODE_UNSPECIFIED: GuardrailStreamMode
GUARDRAIL_STREAM_MODE_SYNC: GuardrailStreamMode
GUARDRAIL_STREAM_MODE_ASYNC: GuardrailStreamMode
LATENCY_UNSPECIFIED: Latency
LATENCY_STANDARD: Latency
LATENCY_OPTIMIZED: Latency
SERVICE_TIER_UNSPECIFIED: ServiceTier
SERVICE_TIER_DEFAULT: ServiceTier
SERVICE_TIER_PRIORITY: ServiceTier
SERVICE_TIER_FLEX: ServiceTier
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_END_TURN: StopReason
STOP_REASON_TOOL_USE: StopReason
STOP_REASON_MAX_TOKENS: StopReason
STOP_REASON_STOP_SEQUENCE: StopReason
STOP_REASON_GUARDRAIL_INTERVENED: StopReason
STOP_REASON_CONTENT_FILTERED: StopReason
STOP_REASON_MODEL_CONTEXT_WINDOW_EXCEEDED: StopReason
SEARCH_TYPE_UNSPECIFIED: SearchType
SEARCH_TYPE_HYBRID: SearchType
SEARCH_TYPE_SEMANTIC: SearchType

class Message(_message.Message):
    __slots__ = ("role", "text", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: Role
    text: str
    content: _containers.RepeatedCompositeFieldContainer[ContentBlock]
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., text: _Optional[str] = ..., content: _Optional[_Iterable[_Union[ContentBlock, _Mapping]]] = ...) -> None: ...

class ContentBlock(_message.Message):
    __slots__ = ("text", "image", "document", "tool_use", "tool_result", "guard_content", "cache_point")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    GUARD_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CACHE_POINT_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: ImageBlock
    document: DocumentBlock
    tool_use: ToolUseBlock
    tool_result: ToolResultBlock
    guard_content: GuardContentBlock
    cache_point: CachePoint
    def __init__(self, text: _Optional[str] = ..., image: _Optional[_Union[ImageBlock, _Mapping]] = ..., document: _Optional[_Union[DocumentBlock, _Mapping]] = ..., tool_use: _Optional[_Union[ToolUseBlock, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResultBlock, _Mapping]] = ..., guard_content: _Optional[_Union[GuardContentBlock, _Mapping]] = ..., cache_point: _Optional[_Union[CachePoint, _Mapping]] = ...) -> None: ...

class MediaSource(_message.Message):
    __slots__ = ("bytes", "s3_location")
    BYTES_FIELD_NUMBER: _ClassVar[int]
    S3_LOCATION_FIELD_NUMBER: _ClassVar[int]
    bytes: bytes
    s3_location: S3Location
    def __init__(self, bytes: _Optional[bytes] = ..., s3_location: _Optional[_Union[S3Location, _Mapping]] = ...) -> None: ...

class S3Location(_message.Message):
    __slots__ = ("uri", "bucket_owner")
    URI_FIELD_NUMBER: _ClassVar[int]
    BUCKET_OWNER_FIELD_NUMBER: _ClassVar[int]
    uri: str
    bucket_owner: str
    def __init__(self, uri: _Optional[str] = ..., bucket_owner: _Optional[str] = ...) -> None: ...

class ImageBlock(_message.Message):
    __slots__ = ("format", "source")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    format: ImageFormat
    source: MediaSource
    def __init__(self, format: _Optional[_Union[ImageFormat, str]] = ..., source: _Optional[_Union[MediaSource, _Mapping]] = ...) -> None: ...

class DocumentBlock(_message.Message):
    __slots__ = ("format", "name", "source", "citations")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    format: DocumentFormat
    name: str
    source: MediaSource
    citations: bool
    def __init__(self, format: _Optional[_Union[DocumentFormat, str]] = ..., name: _Optional[str] = ..., source: _Optional[_Union[MediaSource, _Mapping]] = ..., citations: _Optional[bool] = ...) -> None: ...

class ToolUseBlock(_message.Message):
    __slots__ = ("tool_use_id", "name", "input_json")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    name: str
    input_json: str
    def __init__(self, tool_use_id: _Optional[str] = ..., name: _Optional[str] = ..., input_json: _Optional[str] = ...) -> None: ...

class ToolResultBlock(_message.Message):
    __slots__ = ("tool_use_id", "content", "status")
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    tool_use_id: str
    content: _containers.RepeatedCompositeFieldContainer[ToolResultContent]
    status: ToolResultStatus
    def __init__(self, tool_use_id: _Optional[str] = ..., content: _Optional[_Iterable[_Union[ToolResultContent, _Mapping]]] = ..., status: _Optional[_Union[ToolResultStatus, str]] = ...) -> None: ...

class ToolResultContent(_message.Message):
    __slots__ = ("text", "json", "image", "document")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    text: str
    json: str
    image: ImageBlock
    document: DocumentBlock
    def __init__(self, text: _Optional[str] = ..., json: _Optional[str] = ..., image: _Optional[_Union[ImageBlock, _Mapping]] = ..., document: _Optional[_Union[DocumentBlock, _Mapping]] = ...) -> None: ...

class GuardContentBlock(_message.Message):
    __slots__ = ("text", "qualifiers")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    QUALIFIERS_FIELD_NUMBER: _ClassVar[int]
    text: str
    qualifiers: _containers.RepeatedScalarFieldContainer[GuardQualifier]
    def __init__(self, text: _Optional[str] = ..., qualifiers: _Optional[_Iterable[_Union[GuardQualifier, str]]] = ...) -> None: ...

class CachePoint(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "input_schema_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[str] = ...) -> None: ...

class ToolChoice(_message.Message):
    __slots__ = ("mode", "name")
    MODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    mode: ToolChoiceMode
    name: str
    def __init__(self, mode: _Optional[_Union[ToolChoiceMode, str]] = ..., name: _Optional[str] = ...) -> None: ...

class ToolConfig(_message.Message):
    __slots__ = ("tools", "tool_choice")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    tool_choice: ToolChoice
    def __init__(self, tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., tool_choice: _Optional[_Union[ToolChoice, _Mapping]] = ...) -> None: ...

class GuardrailConfig(_message.Message):
    __slots__ = ("identifier", "version", "trace", "stream_processing_mode")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    STREAM_PROCESSING_MODE_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    version: str
    trace: GuardrailTraceMode
    stream_processing_mode: GuardrailStreamMode
    def __init__(self, identifier: _Optional[str] = ..., version: _Optional[str] = ..., trace: _Optional[_Union[GuardrailTraceMode, str]] = ..., stream_processing_mode: _Optional[_Union[GuardrailStreamMode, str]] = ...) -> None: ...

class BedrockOptions(_message.Message):
    __slots__ = ("latency", "service_tier", "request_metadata", "top_k")
    class RequestMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_METADATA_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    latency: Latency
    service_tier: ServiceTier
    request_metadata: _containers.ScalarMap[str, str]
    top_k: int
    def __init__(self, latency: _Optional[_Union[Latency, str]] = ..., service_tier: _Optional[_Union[ServiceTier, str]] = ..., request_metadata: _Optional[_Mapping[str, str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class InferenceConfig(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "stop_sequences")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., stop_sequences: _Optional[_Iterable[str]] = ...) -> None: ...

class Start(_message.Message):
    __slots__ = ("model_id", "request_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    request_id: str
    def __init__(self, model_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Delta(_message.Message):
    __slots__ = ("text", "content_block_index")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    text: str
    content_block_index: int
    def __init__(self, text: _Optional[str] = ..., content_block_index: _Optional[int] = ...) -> None: ...

class ToolUseStart(_message.Message):
    __slots__ = ("content_block_index", "tool_use_id", "name")
    CONTENT_BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    content_block_index: int
    tool_use_id: str
    name: str
    def __init__(self, content_block_index: _Optional[int] = ..., tool_use_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ToolInputDelta(_message.Message):
    __slots__ = ("content_block_index", "input_json")
    CONTENT_BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    content_block_index: int
    input_json: str
    def __init__(self, content_block_index: _Optional[int] = ..., input_json: _Optional[str] = ...) -> None: ...

class ContentBlockStop(_message.Message):
    __slots__ = ("content_block_index",)
    CONTENT_BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    content_block_index: int
    def __init__(self, content_block_index: _Optional[int] = ...) -> None: ...

class GuardrailTrace(_message.Message):
    __slots__ = ("trace_json", "intervened")
    TRACE_JSON_FIELD_NUMBER: _ClassVar[int]
    INTERVENED_FIELD_NUMBER: _ClassVar[int]
    trace_json: str
    intervened: bool
    def __init__(self, trace_json: _Optional[str] = ..., intervened: _Optional[bool] = ...) -> None: ...

class Applied(_message.Message):
    __slots__ = ("latency", "service_tier")
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    latency: Latency
    service_tier: ServiceTier
    def __init__(self, latency: _Optional[_Union[Latency, str]] = ..., service_tier: _Optional[_Union[ServiceTier, str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens", "cache_write_input_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ..., cache_write_input_tokens: _Optional[int] = ...) -> None: ...

class Stop(_message.Message):
    __slots__ = ("stop_reason", "time_to_first_token_ms", "latency_ms", "reason", "applied")
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    stop_reason: str
    time_to_first_token_ms: float
    latency_ms: float
    reason: StopReason
    applied: Applied
    def __init__(self, stop_reason: _Optional[str] = ..., time_to_first_token_ms: _Optional[float] = ..., latency_ms: _Optional[float] = ..., reason: _Optional[_Union[StopReason, str]] = ..., applied: _Optional[_Union[Applied, _Mapping]] = ...) -> None: ...

class Grounding(_message.Message):
    __slots__ = ("knowledge_base_id", "number_of_results", "search_type", "filter_json")
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_OF_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    number_of_results: int
    search_type: SearchType
    filter_json: str
    def __init__(self, knowledge_base_id: _Optional[str] = ..., number_of_results: _Optional[int] = ..., search_type: _Optional[_Union[SearchType, str]] = ..., filter_json: _Optional[str] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("text", "score", "source_id", "location_uri", "location_type", "metadata_json")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_URI_FIELD_NUMBER: _ClassVar[int]
    LOCATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    source_id: str
    location_uri: str
    location_type: str
    metadata_json: str
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., source_id: _Optional[str] = ..., location_uri: _Optional[str] = ..., location_type: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class Retrieval(_message.Message):
    __slots__ = ("knowledge_base_id", "passages", "query", "latency_ms")
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    query: str
    latency_ms: float
    def __init__(self, knowledge_base_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., query: _Optional[str] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("content_block_index", "title", "source_text", "location_json")
    CONTENT_BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_JSON_FIELD_NUMBER: _ClassVar[int]
    content_block_index: int
    title: str
    source_text: str
    location_json: str
    def __init__(self, content_block_index: _Optional[int] = ..., title: _Optional[str] = ..., source_text: _Optional[str] = ..., location_json: _Optional[str] = ...) -> None: ...

class Cost(_message.Message):
    __slots__ = ("input_usd", "output_usd", "cache_read_usd", "cache_write_usd", "total_usd", "estimated")
    INPUT_USD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_USD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_USD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    input_usd: float
    output_usd: float
    cache_read_usd: float
    cache_write_usd: float
    total_usd: float
    estimated: bool
    def __init__(self, input_usd: _Optional[float] = ..., output_usd: _Optional[float] = ..., cache_read_usd: _Optional[float] = ..., cache_write_usd: _Optional[float] = ..., total_usd: _Optional[float] = ..., estimated: _Optional[bool] = ...) -> None: ...
