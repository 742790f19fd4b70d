"""`dualnova chat --tools FILE.json [--tool-choice auto|any|NAME]`: tools for both routes.

The file is a JSON list of tools, each {"name", "description", "input_schema"},
or Bedrock's own shape, [{"toolSpec": {"name", "description", "inputSchema":
{"json": {...}}}}], so a tool list written for the Converse API works as it is.
The config is checked by the services' own rules (validate_tool_config), and
a problem is one line naming the file and the tool (counted from 1, with its name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dualnova.chat.v1 import chat_pb2
from dualnova.server.content_rules import InvalidRequest, parse_json
from dualnova.server.conversation import validate_tool_config

__all__ = ["ToolsFileError", "read_tool_config"]

_MODES = {"auto": chat_pb2.TOOL_CHOICE_MODE_AUTO, "any": chat_pb2.TOOL_CHOICE_MODE_ANY}


class ToolsFileError(ValueError):
    """A tools file that cannot be offered; str() is one line for the person."""


def read_tool_config(path: str, choice: str | None = None) -> chat_pb2.ToolConfig:
    """The ToolConfig of the tools in `path`; `choice` is auto, any or a tool's name."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ToolsFileError(f"--tools {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ToolsFileError(f"--tools {path}: not UTF-8 text (byte {error.start})") from None
    try:
        listed = parse_json(text, "--tools")
    except InvalidRequest as error:
        raise ToolsFileError(f"--tools {path}: {error.reason}") from None
    if not isinstance(listed, list) or not listed:
        raise ToolsFileError(f"--tools {path}: must be a JSON list of at least one tool")
    config = chat_pb2.ToolConfig(
        tools=[
            _tool(item, f"--tools {path}: tool {index + 1}") for index, item in enumerate(listed)
        ]
    )
    if choice is not None:
        mode = _MODES.get(choice, chat_pb2.TOOL_CHOICE_MODE_TOOL)
        config.tool_choice.mode = mode
        if mode == chat_pb2.TOOL_CHOICE_MODE_TOOL:
            if choice not in {tool.name for tool in config.tools}:
                raise ToolsFileError(
                    f"--tool-choice {choice}: not auto, any or the name of a tool in {path}"
                )
            config.tool_choice.name = choice
    try:
        validate_tool_config(config, "tools")
    except InvalidRequest as error:
        raise ToolsFileError(f"--tools {path}: {_where(error, config)}: {error.reason}") from None
    return config


def _tool(item: Any, where: str) -> chat_pb2.Tool:
    if isinstance(item, Mapping) and "toolSpec" in item:
        spec = item["toolSpec"]
        if not isinstance(spec, Mapping):
            raise ToolsFileError(f"{where}: toolSpec must be an object")
        schema = spec.get("inputSchema")
        if not isinstance(schema, Mapping) or "json" not in schema:
            raise ToolsFileError(f'{where}: toolSpec needs "inputSchema": {{"json": {{...}}}}')
        name, description, input_schema = spec.get("name"), spec.get("description"), schema["json"]
    elif isinstance(item, Mapping):
        if "input_schema" not in item:
            raise ToolsFileError(f'{where}: needs "input_schema" (the input\'s JSON schema)')
        name, description, input_schema = (
            item.get("name"),
            item.get("description"),
            item["input_schema"],
        )
    else:
        raise ToolsFileError(
            f'{where}: must be an object, {{"name", "description", "input_schema"}} or'
            ' {"toolSpec": {...}}'
        )
    if not isinstance(name, str):
        raise ToolsFileError(f'{where}: needs a "name" string')
    if description is not None and not isinstance(description, str):
        raise ToolsFileError(f"{where} ({name}): the description must be a string")
    return chat_pb2.Tool(
        name=name,
        description=description or "",
        input_schema_json=json.dumps(input_schema, separators=(",", ":")),
    )


def _where(error: InvalidRequest, config: chat_pb2.ToolConfig) -> str:
    """The failing field said as the file's terms: which tool, by position and name."""
    for index, tool in enumerate(config.tools):
        if error.field.startswith(f"tools.tools[{index}]"):
            part = error.field.removeprefix(f"tools.tools[{index}]").removeprefix(".")
            label = {"input_schema_json": "input_schema"}.get(part, part)
            return f"tool {index + 1} ({tool.name}) {label}".rstrip()
    return "the tools"
