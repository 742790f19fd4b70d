"""What goes in a ConverseStream call: a validated conversation as Bedrock's JSON request.

Conversation is the call in Bedrock's terms, independent of the gRPC message
that asked for it; converse_request() gives the keyword arguments of
bedrock-runtime converse_stream (modelId and the JSON body's fields, blobs
already base64 as botocore serializes them). The *_json helpers turn the
chat.v1 protos (already checked by dualnova.server.conversation) into
Bedrock's shapes: content blocks, toolConfig, guardrailConfig. A text-only
request comes out exactly as before content blocks existed: one text block per
turn, and no key for a feature the caller did not use.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dualnova.chat.v1 import chat_pb2
from dualnova.server.content_rules import (
    DOCUMENT_FORMATS,
    GUARD_QUALIFIERS,
    IMAGE_FORMATS,
    tool_input,
)

__all__ = [
    "ASSISTANT",
    "USER",
    "Conversation",
    "LATENCIES",
    "SERVICE_TIERS",
    "content_json",
    "converse_request",
    "guardrail_json",
    "tool_config_json",
]

USER = "user"
ASSISTANT = "assistant"

JsonObject = dict[str, Any]

# Proto enum value -> Bedrock's name (unspecified values are left out of the request).
LATENCIES = {chat_pb2.LATENCY_STANDARD: "standard", chat_pb2.LATENCY_OPTIMIZED: "optimized"}
SERVICE_TIERS = {
    chat_pb2.SERVICE_TIER_DEFAULT: "default",
    chat_pb2.SERVICE_TIER_PRIORITY: "priority",
    chat_pb2.SERVICE_TIER_FLEX: "flex",
}
_TRACES = {
    chat_pb2.GUARDRAIL_TRACE_MODE_DISABLED: "disabled",
    chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED: "enabled",
    chat_pb2.GUARDRAIL_TRACE_MODE_ENABLED_FULL: "enabled_full",
}
_STREAM_MODES = {
    chat_pb2.GUARDRAIL_STREAM_MODE_SYNC: "sync",
    chat_pb2.GUARDRAIL_STREAM_MODE_ASYNC: "async",
}
_RESULT_STATUSES = {
    chat_pb2.TOOL_RESULT_STATUS_SUCCESS: "success",
    chat_pb2.TOOL_RESULT_STATUS_ERROR: "error",
}


@dataclass(frozen=True)
class Conversation:
    """One validated Converse call, independent of the gRPC message that asked for it."""

    model_id: str
    # (role, content) pairs, role "user" or "assistant", oldest first; content is a
    # text (one text block) or the turn's blocks in Bedrock's JSON shape.
    messages: tuple[tuple[str, str | Sequence[JsonObject]], ...]
    system: tuple[str, ...] = ()
    cache_system: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()
    # Bedrock's toolConfig and guardrailConfig, as tool_config_json / guardrail_json build them.
    tool_config: Mapping[str, Any] | None = None
    guardrail_config: Mapping[str, Any] | None = None
    # performanceConfig.latency and serviceTier.type, Bedrock's names.
    latency: str | None = None
    service_tier: str | None = None
    # requestMetadata: passed to Bedrock, never logged.
    request_metadata: Mapping[str, str] | None = None
    # additionalModelRequestFields.inferenceConfig.topK (Nova's own field).
    top_k: int | None = None


def converse_request(conversation: Conversation) -> dict[str, Any]:
    """The keyword arguments of bedrock-runtime converse_stream for a conversation."""
    request: dict[str, Any] = {
        "modelId": conversation.model_id,
        "messages": [
            {"role": role, "content": [{"text": content}] if isinstance(content, str) else content}
            for role, content in conversation.messages
        ],
    }
    if conversation.system:
        system: list[dict[str, Any]] = [{"text": text} for text in conversation.system]
        if conversation.cache_system:
            # A separate block: everything before it is the cached prefix.
            system.append({"cachePoint": {"type": "default"}})
        request["system"] = system
    inference: dict[str, Any] = {}
    if conversation.max_tokens is not None:
        inference["maxTokens"] = conversation.max_tokens
    if conversation.temperature is not None:
        inference["temperature"] = _tidy_float(conversation.temperature)
    if conversation.top_p is not None:
        inference["topP"] = _tidy_float(conversation.top_p)
    if conversation.stop_sequences:
        inference["stopSequences"] = list(conversation.stop_sequences)
    if inference:
        request["inferenceConfig"] = inference
    if conversation.tool_config is not None:
        request["toolConfig"] = dict(conversation.tool_config)
    if conversation.guardrail_config is not None:
        request["guardrailConfig"] = dict(conversation.guardrail_config)
    if conversation.top_k is not None:
        request["additionalModelRequestFields"] = {"inferenceConfig": {"topK": conversation.top_k}}
    if conversation.latency is not None:
        request["performanceConfig"] = {"latency": conversation.latency}
    if conversation.service_tier is not None:
        request["serviceTier"] = {"type": conversation.service_tier}
    if conversation.request_metadata:
        request["requestMetadata"] = dict(sorted(conversation.request_metadata.items()))
    return request


def _tidy_float(value: float) -> float:
    """0.3 rather than float32's 0.30000001192092896 on the wire."""
    return float(f"{value:.6g}")


def content_json(message: chat_pb2.Message) -> str | list[JsonObject]:
    """A turn's content: its text alone when it has no blocks (as before blocks existed)."""
    if not message.content:
        return message.text
    blocks: list[JsonObject] = [{"text": message.text}] if message.text else []
    blocks.extend(_block_json(block) for block in message.content)
    return blocks


def _block_json(block: chat_pb2.ContentBlock) -> JsonObject:
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"text": block.text}
    if kind == "image":
        return {"image": _image_json(block.image)}
    if kind == "document":
        return {"document": _document_json(block.document)}
    if kind == "tool_use":
        use = block.tool_use
        return {
            "toolUse": {
                "toolUseId": use.tool_use_id,
                "name": use.name,
                "input": tool_input(use.input_json, "tool_use.input_json"),
            }
        }
    if kind == "tool_result":
        return {"toolResult": _tool_result_json(block.tool_result)}
    if kind == "guard_content":
        guarded = block.guard_content
        text: JsonObject = {"text": guarded.text}
        if guarded.qualifiers:
            text["qualifiers"] = [GUARD_QUALIFIERS[q] for q in guarded.qualifiers]
        return {"guardContent": {"text": text}}
    if kind == "cache_point":
        return {"cachePoint": {"type": "default"}}
    raise ValueError(f"a content block of no known kind ({kind})")  # validation refuses these


def _source_json(source: chat_pb2.MediaSource) -> JsonObject:
    if source.WhichOneof("source") == "s3_location":
        location: JsonObject = {"uri": source.s3_location.uri}
        if source.s3_location.bucket_owner:
            location["bucketOwner"] = source.s3_location.bucket_owner
        return {"s3Location": location}
    # A blob travels base64 in the JSON body, as botocore serializes it.
    return {"bytes": base64.b64encode(source.bytes).decode("ascii")}


def _image_json(image: chat_pb2.ImageBlock) -> JsonObject:
    return {"format": IMAGE_FORMATS[image.format], "source": _source_json(image.source)}


def _document_json(document: chat_pb2.DocumentBlock) -> JsonObject:
    out: JsonObject = {
        "format": DOCUMENT_FORMATS[document.format],
        "name": document.name,
        "source": _source_json(document.source),
    }
    if document.citations:
        # Converse's CitationsConfig: the answer's citation deltas point into this document.
        out["citations"] = {"enabled": True}
    return out


def _tool_result_json(result: chat_pb2.ToolResultBlock) -> JsonObject:
    content: list[JsonObject] = []
    for item in result.content:
        kind = item.WhichOneof("content")
        if kind == "text":
            content.append({"text": item.text})
        elif kind == "json":
            content.append({"json": json.loads(item.json)})
        elif kind == "image":
            content.append({"image": _image_json(item.image)})
        else:
            content.append({"document": _document_json(item.document)})
    out: JsonObject = {"toolUseId": result.tool_use_id, "content": content}
    status = _RESULT_STATUSES.get(result.status)
    if status is not None:
        out["status"] = status
    return out


def tool_config_json(config: chat_pb2.ToolConfig) -> JsonObject:
    """Bedrock's toolConfig; an unspecified tool choice is left to Bedrock (auto)."""
    tools: list[JsonObject] = []
    for tool in config.tools:
        spec: JsonObject = {"name": tool.name}
        if tool.description:
            spec["description"] = tool.description
        spec["inputSchema"] = {"json": json.loads(tool.input_schema_json)}
        tools.append({"toolSpec": spec})
    out: JsonObject = {"tools": tools}
    mode = config.tool_choice.mode
    if mode == chat_pb2.TOOL_CHOICE_MODE_AUTO:
        out["toolChoice"] = {"auto": {}}
    elif mode == chat_pb2.TOOL_CHOICE_MODE_ANY:
        out["toolChoice"] = {"any": {}}
    elif mode == chat_pb2.TOOL_CHOICE_MODE_TOOL:
        out["toolChoice"] = {"tool": {"name": config.tool_choice.name}}
    return out


def guardrail_json(config: chat_pb2.GuardrailConfig) -> JsonObject:
    """Bedrock's guardrailConfig; unspecified trace and stream modes take Bedrock's defaults."""
    out: JsonObject = {
        "guardrailIdentifier": config.identifier,
        "guardrailVersion": config.version,
    }
    trace = _TRACES.get(config.trace)
    if trace is not None:
        out["trace"] = trace
    mode = _STREAM_MODES.get(config.stream_processing_mode)
    if mode is not None:
        out["streamProcessingMode"] = mode
    return out
