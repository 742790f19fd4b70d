"""Every field Converse's full shape added, refused by the inference service itself when it is
wrong: INVALID_ARGUMENT naming the field, and no call to Bedrock (the emulator's log stays empty).

The base request uses every new field at once (an image, a document, a tool call and its
result, guarded text, a cache point, tools, a guardrail, options) and does reach Bedrock, so
each refusal below is its one edit's.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest
from test_inference_converse import png

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.content_rules import MAX_DOCUMENT_BYTES, MAX_IMAGE_BYTES

USER = chat_pb2.ROLE_USER
ASSISTANT = chat_pb2.ROLE_ASSISTANT
Edit = Callable[[inference_pb2.ChatRequest], None]
SCHEMA = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}})
PICTURE = png(4, 3)


def image_block(**fields: object) -> chat_pb2.ContentBlock:
    image = chat_pb2.ImageBlock(
        format=chat_pb2.IMAGE_FORMAT_PNG, source=chat_pb2.MediaSource(bytes=PICTURE)
    )
    for name, value in fields.items():
        setattr(image, name, value) if name == "format" else image.source.CopyFrom(value)
    return chat_pb2.ContentBlock(image=image)


def document_block() -> chat_pb2.ContentBlock:
    return chat_pb2.ContentBlock(
        document=chat_pb2.DocumentBlock(
            format=chat_pb2.DOCUMENT_FORMAT_MD,
            name="Trip notes (v2) [draft]",
            source=chat_pb2.MediaSource(bytes=b"# Notes\n"),
        )
    )


def valid_request() -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model="pro",
        messages=[
            chat_pb2.Message(
                role=USER,
                text="Look at these.",
                content=[
                    image_block(),
                    document_block(),
                    chat_pb2.ContentBlock(cache_point=chat_pb2.CachePoint()),
                ],
            ),
            chat_pb2.Message(
                role=ASSISTANT,
                content=[
                    chat_pb2.ContentBlock(
                        tool_use=chat_pb2.ToolUseBlock(
                            tool_use_id="tooluse_1", name="lookup", input_json='{"city":"Seoul"}'
                        )
                    )
                ],
            ),
            chat_pb2.Message(
                role=USER,
                content=[
                    chat_pb2.ContentBlock(
                        tool_result=chat_pb2.ToolResultBlock(
                            tool_use_id="tooluse_1",
                            content=[chat_pb2.ToolResultContent(text="sunny")],
                        )
                    ),
                    chat_pb2.ContentBlock(
                        guard_content=chat_pb2.GuardContentBlock(
                            text="Is that right?", qualifiers=[chat_pb2.GUARD_QUALIFIER_QUERY]
                        )
                    ),
                ],
            ),
        ],
        tool_config=chat_pb2.ToolConfig(
            tools=[chat_pb2.Tool(name="lookup", input_schema_json=SCHEMA)],
            tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_AUTO),
        ),
        guardrail_config=chat_pb2.GuardrailConfig(identifier="gr-dualnova", version="DRAFT"),
        options=chat_pb2.BedrockOptions(top_k=128, request_metadata={"team": "search"}),
    )


def block(turn: int, index: int, new: chat_pb2.ContentBlock) -> Edit:
    return lambda r: r.messages[turn].content[index].CopyFrom(new)


def source(data: bytes = b"", uri: str = "", owner: str = "") -> chat_pb2.MediaSource:
    if uri:
        return chat_pb2.MediaSource(s3_location=chat_pb2.S3Location(uri=uri, bucket_owner=owner))
    return chat_pb2.MediaSource(bytes=data)


def document(**fields: object) -> Edit:
    def edit(request: inference_pb2.ChatRequest) -> None:
        target = request.messages[0].content[1].document
        for name, value in fields.items():
            if name == "source":
                target.source.CopyFrom(value)
            else:
                setattr(target, name, value)

    return edit


def tool_use(**fields: object) -> Edit:
    return lambda r: [setattr(r.messages[1].content[0].tool_use, k, v) for k, v in fields.items()]


def tool_result(edit: Callable[[chat_pb2.ToolResultBlock], object]) -> Edit:
    return lambda r: edit(r.messages[2].content[0].tool_result)


def tools(*new: chat_pb2.Tool) -> Edit:
    def edit(request: inference_pb2.ChatRequest) -> None:
        del request.tool_config.tools[:]
        request.tool_config.tools.extend(new)

    return edit


def choice(mode: int, name: str = "") -> Edit:
    return lambda r: r.tool_config.tool_choice.CopyFrom(chat_pb2.ToolChoice(mode=mode, name=name))


def guardrail(**fields: object) -> Edit:
    return lambda r: [setattr(r.guardrail_config, k, v) for k, v in fields.items()]


def option(**fields: object) -> Edit:
    return lambda r: [setattr(r.options, k, v) for k, v in fields.items()]


def metadata(pairs: dict[str, str]) -> Edit:
    def edit(request: inference_pb2.ChatRequest) -> None:
        request.options.request_metadata.clear()
        request.options.request_metadata.update(pairs)

    return edit


def set_model(name: str) -> Edit:
    return lambda r: setattr(r, "model", name)


def schema(text: str) -> chat_pb2.Tool:
    return chat_pb2.Tool(name="lookup", input_schema_json=text)


def swap_tool_turns(request: inference_pb2.ChatRequest) -> None:
    use = chat_pb2.ContentBlock()
    use.CopyFrom(request.messages[1].content[0])
    request.messages[0].content.append(use)


def result_in_assistant_turn(request: inference_pb2.ChatRequest) -> None:
    result = chat_pb2.ContentBlock()
    result.CopyFrom(request.messages[2].content[0])
    request.messages[1].content.append(result)


FIRST = "messages[0].content"
ALL_FORMATS = "must be one of png, jpeg, gif, webp"
CASES: dict[str, tuple[Edit, str]] = {
    "block with no kind": (block(0, 2, chat_pb2.ContentBlock()), f"{FIRST}[2]: must set one block"),
    "blank text block": (
        block(0, 2, chat_pb2.ContentBlock(text=" \n")),
        f"{FIRST}[2].text: must not be empty or blank",
    ),
    "blank text beside content": (
        lambda r: setattr(r.messages[0], "text", "  "),
        "messages[0].text: must not be blank",
    ),
    "neither text nor content": (
        lambda r: r.messages[2].ClearField("content"),
        "messages[2].text: must not be empty or blank",
    ),
    "image format unspecified": (
        block(0, 0, image_block(format=chat_pb2.IMAGE_FORMAT_UNSPECIFIED)),
        f"{FIRST}[0].image.format: {ALL_FORMATS}",
    ),
    "image format unknown value": (
        block(0, 0, image_block(format=42)),
        f"{FIRST}[0].image.format: {ALL_FORMATS}",
    ),
    "image bytes not the format": (
        block(0, 0, image_block(format=chat_pb2.IMAGE_FORMAT_JPEG)),
        f"{FIRST}[0].image.source.bytes: do not look like a jpeg image",
    ),
    "image bytes not an image": (
        block(0, 0, image_block(source=source(b"GIF7 not quite"))),
        f"{FIRST}[0].image.source.bytes: do not look like a png image",
    ),
    "image bytes empty": (
        block(0, 0, image_block(source=source(b""))),
        f"{FIRST}[0].image.source.bytes: must not be empty",
    ),
    "image source missing": (
        block(0, 0, image_block(source=chat_pb2.MediaSource())),
        f"{FIRST}[0].image.source: must set bytes or s3_location",
    ),
    "image over 3.75 MB": (
        block(0, 0, image_block(source=source(PICTURE + b"\0" * MAX_IMAGE_BYTES))),
        f"{FIRST}[0].image.source.bytes: {len(PICTURE) + MAX_IMAGE_BYTES} bytes, more than",
    ),
    "image s3 uri not s3": (
        block(0, 0, image_block(source=source(uri="https://bucket/key.png"))),
        f"{FIRST}[0].image.source.s3_location.uri: must be s3://bucket/key",
    ),
    "image s3 owner not an account": (
        block(0, 0, image_block(source=source(uri="s3://bucket/key.png", owner="me"))),
        f"{FIRST}[0].image.source.s3_location.bucket_owner: must be a 12-digit",
    ),
    "twenty-one images": (
        lambda r: r.messages[0].content.extend([image_block() for _ in range(20)]),
        f"{FIRST}[22].image: more than 20 images",
    ),
    "document format unspecified": (
        document(format=chat_pb2.DOCUMENT_FORMAT_UNSPECIFIED),
        f"{FIRST}[1].document.format: must be one of pdf, csv",
    ),
    "document format unknown value": (
        document(format=99),
        f"{FIRST}[1].document.format: must be one of",
    ),
    "document name empty": (document(name=""), f"{FIRST}[1].document.name: must be 1-200"),
    "document name two spaces": (document(name="a  b"), f"{FIRST}[1].document.name: "),
    "document name a dot": (document(name="notes.md"), f"{FIRST}[1].document.name: "),
    "document name too long": (document(name="x" * 201), f"{FIRST}[1].document.name: "),
    "document over 4.5 MB": (
        document(source=source(b"x" * (MAX_DOCUMENT_BYTES + 1))),
        f"{FIRST}[1].document.source.bytes: {MAX_DOCUMENT_BYTES + 1} bytes, more than",
    ),
    "document bytes empty": (
        document(source=source(b"")),
        f"{FIRST}[1].document.source.bytes: must not be empty",
    ),
    "six documents": (
        lambda r: r.messages[0].content.extend([document_block() for _ in range(5)]),
        f"{FIRST}[7].document: more than 5 documents",
    ),
    "tool use in a user turn": (
        swap_tool_turns,
        f"{FIRST}[3].tool_use: a tool call belongs in an assistant turn",
    ),
    "tool result in an assistant turn": (
        result_in_assistant_turn,
        "messages[1].content[1].tool_result: a tool result belongs in a user turn",
    ),
    "tool result answering no call": (
        tool_result(lambda t: setattr(t, "tool_use_id", "tooluse_2")),
        "messages[2].content[0].tool_result.tool_use_id: does not match a tool_use in the"
        " previous assistant turn",
    ),
    "tool result with no content": (
        tool_result(lambda t: t.ClearField("content")),
        "messages[2].content[0].tool_result.content: must contain at least one item",
    ),
    "tool result item with no kind": (
        tool_result(lambda t: t.content.append(chat_pb2.ToolResultContent())),
        "messages[2].content[0].tool_result.content[1]: must set text, json",
    ),
    "tool result json not json": (
        tool_result(lambda t: t.content.append(chat_pb2.ToolResultContent(json="{sunny"))),
        "messages[2].content[0].tool_result.content[1].json: is not valid JSON",
    ),
    "tool result json out of range": (
        tool_result(lambda t: t.content.append(chat_pb2.ToolResultContent(json="[1e400]"))),
        "messages[2].content[0].tool_result.content[1].json: is not valid JSON (1e400 is out",
    ),
    "tool result image bad": (
        tool_result(
            lambda t: t.content.append(
                chat_pb2.ToolResultContent(image=chat_pb2.ImageBlock(format=1))
            )
        ),
        "messages[2].content[0].tool_result.content[1].image.source: must set bytes",
    ),
    "tool result status unknown": (
        tool_result(lambda t: setattr(t, "status", 9)),
        "messages[2].content[0].tool_result.status: unknown value 9",
    ),
    "tool use id empty": (tool_use(tool_use_id=""), "messages[1].content[0].tool_use.tool_use_id"),
    "tool use name bad": (tool_use(name="9lives"), "messages[1].content[0].tool_use.name: must"),
    "tool use input not an object": (
        tool_use(input_json="[1, 2]"),
        "messages[1].content[0].tool_use.input_json: must be a JSON object",
    ),
    "tool use input not json": (
        tool_use(input_json="{'city': 1}"),
        "messages[1].content[0].tool_use.input_json: is not valid JSON",
    ),
    "guarded text blank": (
        lambda r: setattr(r.messages[2].content[1].guard_content, "text", " "),
        "messages[2].content[1].guard_content.text: must not be empty or blank",
    ),
    "guard qualifier unspecified": (
        lambda r: r.messages[2].content[1].guard_content.qualifiers.append(0),
        "messages[2].content[1].guard_content.qualifiers[1]: must be one of",
    ),
    "tool blocks without tool_config": (
        lambda r: r.ClearField("tool_config"),
        "messages[1].content[0].tool_use: tool calls and results need the request's tool_config",
    ),
    "no tools": (tools(), "tool_config.tools: must contain at least one tool"),
    "tool name empty": (
        tools(chat_pb2.Tool(name="", input_schema_json=SCHEMA)),
        "tool_config.tools[0].name: must be 1-64 characters",
    ),
    "tool name with a space": (
        tools(chat_pb2.Tool(name="look up", input_schema_json=SCHEMA)),
        "tool_config.tools[0].name: ",
    ),
    "tool name too long": (
        tools(chat_pb2.Tool(name="t" * 65, input_schema_json=SCHEMA)),
        "tool_config.tools[0].name: ",
    ),
    "tool offered twice": (
        tools(schema(SCHEMA), schema(SCHEMA)),
        "tool_config.tools[1].name: 'lookup' is offered twice",
    ),
    "tool schema not json": (
        tools(schema("{type: object}")),
        "tool_config.tools[0].input_schema_json: is not valid JSON",
    ),
    "tool schema an array": (
        tools(schema("[]")),
        'tool_config.tools[0].input_schema_json: must be a JSON object whose "type" is "object"',
    ),
    "tool schema of type string": (
        tools(schema('{"type": "string"}')),
        "tool_config.tools[0].input_schema_json: must be a JSON object",
    ),
    "tool choice names no offered tool": (
        choice(chat_pb2.TOOL_CHOICE_MODE_TOOL, "weather"),
        "tool_config.tool_choice.name: must name one of the tools offered",
    ),
    "tool choice name without mode tool": (
        choice(chat_pb2.TOOL_CHOICE_MODE_ANY, "lookup"),
        "tool_config.tool_choice.name: must be empty unless",
    ),
    "tool choice mode unknown": (choice(7), "tool_config.tool_choice.mode: unknown value 7"),
    "guardrail identifier empty": (
        guardrail(identifier=""),
        "guardrail_config.identifier: must be a guardrail id or ARN",
    ),
    "guardrail version empty": (guardrail(version=""), "guardrail_config.version: must be"),
    "guardrail version a word": (guardrail(version="latest"), "guardrail_config.version: "),
    "guardrail version leading zero": (guardrail(version="01"), "guardrail_config.version: "),
    "guardrail version lowercase draft": (guardrail(version="draft"), "guardrail_config.version"),
    "guardrail trace unknown": (guardrail(trace=8), "guardrail_config.trace: unknown value 8"),
    "guardrail stream mode unknown": (
        guardrail(stream_processing_mode=5),
        "guardrail_config.stream_processing_mode: unknown value 5",
    ),
    "latency unknown": (option(latency=3), "options.latency: unknown value 3"),
    "service tier unknown": (option(service_tier=-1), "options.service_tier: unknown value -1"),
    "top_k zero": (option(top_k=0), "options.top_k: must be between 1 and 128, got 0"),
    "top_k 129": (option(top_k=129), "options.top_k: must be between 1 and 128, got 129"),
    "seventeen metadata pairs": (
        metadata({f"k{i}": "v" for i in range(17)}),
        "options.request_metadata: 17 pairs, more than Bedrock's limit of 16",
    ),
    "metadata key empty": (metadata({"": "v"}), "options.request_metadata: a key of 0 characters"),
    "metadata key too long": (metadata({"k" * 257: "v"}), "options.request_metadata: a key of 257"),
    "metadata value too long": (
        metadata({"k": "v" * 257}),
        "options.request_metadata: a value of 257 characters",
    ),
    "metadata odd character": (
        metadata({"k": "caf\u00e9"}),
        "options.request_metadata: keys and values may hold only",
    ),
    "media to micro": (
        set_model("micro"),
        f"{FIRST}[0].image: amazon.nova-micro-v1:0 takes text only and cannot read this image;"
        " send images and documents to a model that takes them (Nova Pro or Nova Lite)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_invalid_new_field_is_named_and_never_reaches_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle, case: str
) -> None:
    edit, expected_prefix = CASES[case]
    request = valid_request()
    edit(request)

    with pytest.raises(grpc.RpcError) as failure:
        list(stub.Chat(request, timeout=10))

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith(expected_prefix), failure.value.details()
    assert emulator.requests() == []


def test_the_base_request_of_every_new_field_does_reach_bedrock(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    """Guards the cases above: the base is valid (for us and for Bedrock)."""
    events = list(stub.Chat(valid_request(), timeout=10))
    assert events[-1].WhichOneof("event") == "stop"
    (sent,) = emulator.requests()
    body = sent["body"]
    assert body["messages"][0]["content"][2:] == [
        {
            "document": {
                "format": "md",
                "name": "Trip notes (v2) [draft]",
                "source": {"bytes": "IyBOb3Rlcwo="},
            }
        },
        {"cachePoint": {"type": "default"}},
    ]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}},
        {"guardContent": {"text": {"text": "Is that right?", "qualifiers": ["query"]}}},
    ]
    assert body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert body["guardrailConfig"] == {
        "guardrailIdentifier": "gr-dualnova",
        "guardrailVersion": "DRAFT",
    }
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 128}}


@pytest.mark.parametrize(
    "edit",
    [
        block(
            0,
            0,
            image_block(source=source(uri="s3://dualnova-media/cat.png", owner="123456789012")),
        ),
        tool_use(input_json=""),
        choice(chat_pb2.TOOL_CHOICE_MODE_TOOL, "lookup"),
        guardrail(version="12345678"),
        metadata({f"k{i}": "v" * 256 for i in range(16)}),
        option(top_k=1),
    ],
    ids=[
        "s3 image",
        "tool call of no input",
        "named tool",
        "version number",
        "16 pairs",
        "top_k 1",
    ],
)
def test_boundary_values_of_new_fields_are_accepted(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle, edit: Edit
) -> None:
    request = valid_request()
    edit(request)
    try:
        list(stub.Chat(request, timeout=10))
    except grpc.RpcError as error:  # Bedrock may still refuse (an S3 object it cannot read)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(emulator.requests()) == 1  # we let it through
