"""Checks a ChatRequest before it costs a Bedrock call.

The conversation rules are dualnova.server.conversation's, shared with the gateway so
both services refuse the same things with the same words; this module adds
what only the inference service knows: which models it serves, and its
INFERENCE_MAX_MESSAGE_BYTES (gRPC's own cut-off sits at twice that, so a request
somewhat over it gets a message naming the limit, not gRPC's). Each failure
names the field it is about ("messages[2].role: ..."). Limits that depend on
the model (the largest max_tokens, the context window) are Bedrock's to
enforce: a request over them reaches Bedrock and comes back as its
ValidationException, with Bedrock's own message.
"""

from __future__ import annotations

from dualnova.chat.v1 import chat_pb2
from dualnova.inference.v1 import inference_pb2
from dualnova.server.conversation import (
    InvalidRequest,
    media_blocks,
    validate_grounded_messages,
    validate_grounding,
    validate_guardrail_config,
    validate_inference_config,
    validate_messages,
    validate_options,
    validate_query,
    validate_retrieval,
    validate_size,
    validate_system,
    validate_tool_config,
    validate_tools_offered,
)
from inference_service.config import KNOWLEDGE_BASE, MAX_MESSAGE_BYTES, Settings

__all__ = [
    "InvalidRequest",
    "knowledge_base_of",
    "takes_media",
    "validate",
    "validate_capabilities",
    "validate_retrieve",
]


def validate(request: inference_pb2.ChatRequest, settings: Settings) -> str:
    """Raise InvalidRequest for the first problem; return the resolved Bedrock model id."""
    validate_size(request, settings.max_message_bytes, MAX_MESSAGE_BYTES.variable)
    model_id = _resolve_model(request.model, settings)
    validate_messages(request.messages)
    validate_system(request.system)
    if request.HasField("inference_config"):
        validate_inference_config(request.inference_config)
    if request.HasField("tool_config"):
        validate_tool_config(request.tool_config)
    validate_tools_offered(request.messages, request.HasField("tool_config"))
    if request.HasField("guardrail_config"):
        validate_guardrail_config(request.guardrail_config)
    if request.HasField("options"):
        validate_options(request.options)
    validate_capabilities(request, model_id)
    if request.HasField("grounding"):
        if request.HasField("retrieval"):
            raise InvalidRequest("retrieval", "set grounding or retrieval, not both")
        validate_grounding(request.grounding)
        knowledge_base_of(request.grounding, settings)
        validate_grounded_messages(request.messages)
    elif request.HasField("retrieval"):
        validate_retrieval(request.retrieval)
    return model_id


def validate_retrieve(request: inference_pb2.RetrieveRequest, settings: Settings) -> str:
    """Raise InvalidRequest for the first problem; return the knowledge base id to search."""
    validate_size(request, settings.max_message_bytes, MAX_MESSAGE_BYTES.variable)
    validate_query(request.query)
    validate_grounding(request.grounding)
    return knowledge_base_of(request.grounding, settings)


def knowledge_base_of(
    grounding: chat_pb2.Grounding, settings: Settings, field: str = "grounding"
) -> str:
    """The grounding's knowledge base, or the server's DUALNOVA_KNOWLEDGE_BASE_ID."""
    if grounding.knowledge_base_id:
        return grounding.knowledge_base_id
    if settings.knowledge_base_id is None:
        raise InvalidRequest(
            f"{field}.knowledge_base_id",
            f"is required: this server has no default ({KNOWLEDGE_BASE.variable} is unset)",
        )
    return settings.knowledge_base_id


# Models that read text only: Bedrock refuses any image or document sent to them.
TEXT_ONLY_MODELS = ("nova-micro",)


def takes_media(model_id: str) -> bool:
    """Whether the model reads images and documents (Nova Micro does not; Lite and Pro do)."""
    return not any(marker in model_id for marker in TEXT_ONLY_MODELS)


def validate_capabilities(request: inference_pb2.ChatRequest, model_id: str) -> None:
    """Media only for models that take them, refused here rather than after Bedrock's round trip."""
    if takes_media(model_id):
        return
    found = media_blocks(request.messages)
    if found:
        where, kind = found[0]
        raise InvalidRequest(
            where,
            f"{model_id} takes text only and cannot read this {kind};"
            " send images and documents to a model that takes them (Nova Pro or Nova Lite)",
        )


# How much of a refused model name the message repeats: the message travels in the
# status trailers, and a caller's name of some kilobytes would overflow gRPC's metadata
# limit (the caller would hear RESOURCE_EXHAUSTED "metadata size exceeds hard limit").
_QUOTED_CHARS = 64


def quoted_name(name: str) -> str:
    """A caller's name short enough for a status message or a log field, its length said."""
    if len(name) <= _QUOTED_CHARS:
        return repr(name)
    return f"{name[:_QUOTED_CHARS]!r}... ({len(name)} characters)"


def _resolve_model(requested: str, settings: Settings) -> str:
    model_id = settings.resolve_model(requested)
    if model_id is None:
        accepted = ", ".join(repr(name) for name in dict.fromkeys(settings.accepted_models()))
        what = "is required" if not requested else f"{quoted_name(requested)} is not accepted"
        raise InvalidRequest("model", f"{what}; use one of {accepted}")
    return model_id
