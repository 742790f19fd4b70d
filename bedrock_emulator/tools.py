"""Tool use: Bedrock's checks of toolConfig, toolUse and toolResult, and the emulated tool call.

When toolConfig is present and toolChoice is `any` or `tool`, or the last
user turn's text names a tool (case-insensitive), and that turn holds no
toolResult, the model calls a tool: toolChoice.tool's, else the first tool
the text names, else (any) the first tool. Its input is built from the
schema's properties in order (string "emulated", integer 1, number 1.5,
boolean true, array [], object {}, any other type null) and streamed in INPUT_FRAGMENT-character
fragments; its id is "tooluse_" and the first 16 hex digits of the SHA-256
of the request body as received (for boto3 and the inference service,
json.dumps of the body the request log keeps). A turn of tool results is
answered by naming what each tool returned. "then explain" in the text
(case-insensitive) adds a text block after the call.

Wording: the coral-style constraints follow Bedrock; the toolUseId mismatch
is the project contract's, and the schema, toolChoice and duplicate-name
messages are the emulator's (no Bedrock text on record for Nova). Bedrock
also refuses toolUse/toolResult blocks without a toolConfig for some models;
the emulator does not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bedrock_emulator.errors import BedrockError, constraint, validation

INPUT_FRAGMENT = 7
EXPLAIN_MARKER = "then explain"
EXPLAIN_TEXT = "After the result, I will explain."
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
_EMULATED: dict[str, Any] = {
    "string": "emulated",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


@dataclass(frozen=True)
class ToolCall:
    """The tool the model decided to call, with its input."""

    tool_use_id: str
    name: str
    input: dict[str, Any]
    explain: bool  # a text block follows the call

    @property
    def input_json(self) -> str:
        return json.dumps(self.input, separators=(",", ":"), ensure_ascii=False)

    def fragments(self) -> tuple[str, ...]:
        text = self.input_json
        return tuple(text[i : i + INPUT_FRAGMENT] for i in range(0, len(text), INPUT_FRAGMENT))


def tool_use_id(raw_body: bytes) -> str:
    return "tooluse_" + hashlib.sha256(raw_body).hexdigest()[:16]


def check_tool_config(config: Any) -> None:
    """Raise Bedrock's ValidationException for a toolConfig it refuses."""
    if config is None:
        return
    if not isinstance(config, Mapping) or not isinstance(config.get("tools"), list):
        raise _malformed()
    tools = config["tools"]
    if not tools:
        raise constraint(
            "toolConfig.tools", "[]", "Member must have length greater than or equal to 1"
        )
    names: list[str] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise _malformed()
        if tool.get("cachePoint") is not None:
            continue
        spec = tool.get("toolSpec")
        if not isinstance(spec, Mapping):
            raise validation(
                f"The tool at toolConfig.tools.{index} must set toolSpec; the emulator answers "
                "toolSpec tools only."
            )
        names.append(_check_spec(spec, index))
    if len(set(names)) != len(names):
        raise validation(
            "The toolConfig contains duplicate tool names. Rename the tools and try again."
        )
    _check_choice(config.get("toolChoice"), names)


def _check_spec(spec: Mapping[str, Any], index: int) -> str:
    where = f"toolConfig.tools.{index}.member.toolSpec"
    name = spec.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise constraint(
            f"{where}.name", name, "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
        )
    schema_holder = spec.get("inputSchema")
    schema = schema_holder.get("json") if isinstance(schema_holder, Mapping) else None
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise validation(
            f"The input schema of tool {name} is not valid: inputSchema.json must be a JSON "
            'schema object with "type": "object".'
        )
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise validation(
            f"The input schema of tool {name} is not valid: properties must be an object."
        )
    return name


def _check_choice(choice: Any, names: list[str]) -> None:
    if choice is None:
        return
    members = (
        [key for key, value in choice.items() if value is not None]
        if isinstance(choice, Mapping)
        else []
    )
    if len(members) != 1 or members[0] not in ("auto", "any", "tool"):
        raise validation(
            "ToolChoice object at toolConfig.toolChoice must set one of the following keys: "
            "auto, any, tool."
        )
    if members[0] == "tool":
        name = choice["tool"].get("name") if isinstance(choice["tool"], Mapping) else None
        if name not in names:
            raise validation(
                f"The tool {name} named in toolConfig.toolChoice is not defined in "
                "toolConfig.tools."
            )


def check_tool_use(block: Any, path: str) -> None:
    if not isinstance(block, Mapping):
        raise _malformed()
    _check_id(block.get("toolUseId"), f"{path}.toolUse.toolUseId")
    name = block.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise constraint(
            f"{path}.toolUse.name",
            name,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        )
    if "input" not in block:
        raise _malformed()


def check_tool_result_shape(block: Any, path: str) -> list[Mapping[str, Any]]:
    """The result's content blocks (each to be checked by the caller), after its own fields."""
    if not isinstance(block, Mapping):
        raise _malformed()
    _check_id(block.get("toolUseId"), f"{path}.toolResult.toolUseId")
    status = block.get("status")
    if status is not None and status not in ("success", "error"):
        raise constraint(
            f"{path}.toolResult.status",
            status,
            "Member must satisfy enum value set: [success, error]",
        )
    content = block.get("content")
    if not isinstance(content, list) or not all(isinstance(b, Mapping) for b in content):
        raise _malformed()
    return content


def _check_id(value: Any, path: str) -> None:
    if not isinstance(value, str) or not _TOOL_USE_ID.fullmatch(value):
        raise constraint(
            path, value, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+"
        )


def check_pairing(messages: list[Mapping[str, Any]]) -> None:
    """Each toolResult answers a toolUse of the assistant turn just before it."""
    for index, message in enumerate(messages):
        results = _members(message, "toolResult")
        if not results:
            continue
        previous = messages[index - 1] if index else {}
        used = {use.get("toolUseId") for use in _members(previous, "toolUse")}
        for result in results:
            if result.get("toolUseId") not in used:
                raise validation(
                    f"The toolUseId {result.get('toolUseId')} in a toolResult does not match a "
                    "toolUse in the previous assistant turn."
                )


def _members(message: Mapping[str, Any], member: str) -> list[Mapping[str, Any]]:
    return [
        block[member]
        for block in message.get("content") or []
        if isinstance(block, Mapping) and isinstance(block.get(member), Mapping)
    ]


def plan_call(body: Mapping[str, Any], user_text: str, raw_body: bytes) -> ToolCall | None:
    """The tool call the model makes for this (valid) request, or None for a plain answer."""
    config = body.get("toolConfig")
    if not isinstance(config, Mapping):
        return None
    last_user = _last_user(body)
    if last_user is None or _members(last_user, "toolResult"):
        return None
    specs = [
        tool["toolSpec"] for tool in config["tools"] if isinstance(tool.get("toolSpec"), Mapping)
    ]
    choice = config.get("toolChoice") or {}
    lowered = user_text.lower()
    mentioned = [spec for spec in specs if spec["name"].lower() in lowered]
    if choice.get("tool") is not None:
        chosen = next(spec for spec in specs if spec["name"] == choice["tool"]["name"])
    elif mentioned:
        chosen = mentioned[0]
    elif choice.get("any") is not None and specs:
        chosen = specs[0]
    else:
        return None
    return ToolCall(
        tool_use_id=tool_use_id(raw_body),
        name=chosen["name"],
        input=emulated_input(chosen["inputSchema"]["json"]),
        explain=EXPLAIN_MARKER in lowered,
    )


def emulated_input(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An input object for `schema`: every property, in schema order, with its type's value."""
    result: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, Mapping) else None
        if isinstance(kind, list):  # e.g. ["string", "null"]: the first type
            kind = kind[0] if kind else None
        value = _EMULATED.get(kind) if isinstance(kind, str) else None
        # Fresh containers, so two properties never share one list or dict.
        result[name] = type(value)() if isinstance(value, (list, dict)) else value
    return result


def result_text(body: Mapping[str, Any]) -> str | None:
    """The answer to a turn of tool results, or None when the last user turn holds none."""
    messages = body.get("messages") or []
    last_user = _last_user(body)
    if last_user is None:
        return None
    results = _members(last_user, "toolResult")
    if not results:
        return None
    position = max(i for i, message in enumerate(messages) if message is last_user)
    uses = {
        use.get("toolUseId"): use.get("name") for use in _members(messages[position - 1], "toolUse")
    }
    return " ".join(
        f"The {uses.get(result.get('toolUseId'))} tool returned: {_first_output(result)}."
        for result in results
    )


def _first_output(result: Mapping[str, Any]) -> str:
    for block in result.get("content") or []:
        if isinstance(block.get("text"), str):
            return str(block["text"])
        if "json" in block:
            return json.dumps(block["json"], separators=(",", ":"), ensure_ascii=False)
    return "nothing"


def _last_user(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message
    return None


def _malformed() -> BedrockError:
    return validation("Malformed input request, please reformat your input and try again.")
