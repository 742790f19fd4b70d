"""The issue 12 and 13 workloads: a grounded DualChat and a DualChat that calls a tool.

Each has a boto3 caller that asks Bedrock the same thing itself, so the pair's
rows have a baseline doing the same work: for grounding, one
bedrock-agent-runtime Retrieve, then Micro and Pro at once with the passages
written into the question's turn as the inference service writes them; for a
tool, the same toolConfig on both routes. The emulator answers a tool call
deterministically: its input JSON, built from the schema, streamed in
7-character fragments, so a schema with many properties gives many tool input
deltas per route: what the tool scenarios measure the relay's cost per event
with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from bench.clients import (
    BOTO3_FAILURES,
    ROUTES,
    Sample,
    boto3_dual,
    client_config,
    ms_since,
)
from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from inference_service.grounding import DEFAULT_RESULTS, INSTRUCTION

# The emulator's built-in, ACTIVE knowledge base (bedrock_emulator.knowledge_base).
KNOWLEDGE_BASE_ID = "KBDUALNOVA"

TOOL_NAME = "lookup_order"
TOOL_DESCRIPTION = "Look up an order and its shipment by the order's fields."
# 40 properties of each JSON type the emulator fills in: 661 characters of input,
# so 95 tool input fragments per route against a handful of text deltas.
_TYPES = ("string", "integer", "number", "boolean")
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        f"field_{index:02d}": {"type": _TYPES[index % len(_TYPES)]} for index in range(40)
    },
    "required": ["field_00"],
}


def tool_question(question: str) -> str:
    """The question with the tool's name in it: what makes the emulator call the tool."""
    return f"{question} Check it with {TOOL_NAME}."


# ---- the pair's requests ---------------------------------------------------------


def _question(question: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)


def grounded_dual_chat_request(question: str) -> gateway_pb2.DualChatRequest:
    """A bare question grounded in the emulator's knowledge base (Retrieve's defaults)."""
    return gateway_pb2.DualChatRequest(
        messages=[_question(question)],
        grounding=chat_pb2.Grounding(knowledge_base_id=KNOWLEDGE_BASE_ID),
    )


def tool_dual_chat_request(question: str) -> gateway_pb2.DualChatRequest:
    """The tool question, the one tool offered to both routes."""
    tool = chat_pb2.Tool(
        name=TOOL_NAME,
        description=TOOL_DESCRIPTION,
        input_schema_json=json.dumps(TOOL_SCHEMA),
    )
    return gateway_pb2.DualChatRequest(
        messages=[_question(tool_question(question))],
        tool_config=chat_pb2.ToolConfig(tools=[tool]),
    )


# ---- the boto3 callers -------------------------------------------------------------


def tool_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A route's converse_stream arguments with the tool offered (the question already asks)."""
    spec = {
        "name": TOOL_NAME,
        "description": TOOL_DESCRIPTION,
        "inputSchema": {"json": TOOL_SCHEMA},
    }
    return {**kwargs, "toolConfig": {"tools": [{"toolSpec": spec}]}}


def agent_client(aws_env: Mapping[str, str], *, pool_size: int, timeout_s: float) -> Any:
    """A bedrock-agent-runtime client on the emulator, set up as the bedrock-runtime one is."""
    session = boto3.session.Session(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name=aws_env["AWS_REGION"],
    )
    return session.client(
        "bedrock-agent-runtime",
        endpoint_url=aws_env["AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME"],
        config=Config(**client_config(pool_size=pool_size, timeout_s=timeout_s)),
    )


def grounded_messages(question: str, results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The question's turn as the inference service grounds it: "[S1] ..." blocks, most
    relevant first, the instruction, then the question; no passages, the question alone."""
    ranked = sorted(results, key=lambda result: -float(result.get("score") or 0.0))
    blocks: list[dict[str, str]] = [
        {"text": f"[S{rank}] {(result.get('content') or {}).get('text', '')}"}
        for rank, result in enumerate(ranked, start=1)
    ]
    if blocks:
        blocks.append({"text": INSTRUCTION})
    blocks.append({"text": question})
    return [{"role": "user", "content": blocks}]


def boto3_grounded_dual(
    agent: Any,
    runtime: Any,
    question: str,
    kwargs_by_route: Mapping[str, Mapping[str, Any]],
    helper: ThreadPoolExecutor,
) -> list[Sample]:
    """Retrieve, then Micro and Pro at once with the passages; both timed from before Retrieve."""
    started = time.perf_counter()
    try:
        answer = agent.retrieve(
            knowledgeBaseId=KNOWLEDGE_BASE_ID,
            retrievalQuery={"text": question},
            retrievalConfiguration={
                "vectorSearchConfiguration": {"numberOfResults": DEFAULT_RESULTS}
            },
        )
    except BOTO3_FAILURES as exc:
        return [Sample(route, None, ms_since(started), type(exc).__name__) for route in ROUTES]
    messages = grounded_messages(question, answer.get("retrievalResults", []))
    grounded = {
        route: {**kwargs, "messages": messages} for route, kwargs in kwargs_by_route.items()
    }
    return boto3_dual(runtime, grounded, helper, started)
