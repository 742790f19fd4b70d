"""Images and documents through DualChat: to Pro alone, never to Micro.

Nova Micro is text only, so the gateway refuses media in the messages micro
would be sent (the shared messages when micro has none of its own, or
micro.messages) with INVALID_ARGUMENT naming the route, before either route
calls upstream. Media reach Pro through pro.messages while Micro answers the
shared text.
"""

from __future__ import annotations

import base64

import grpc
import pytest
from converse_support import (
    MICRO_MODEL,
    WEATHER_TOOL,
    assistant,
    bodies,
    document_block,
    image_block,
    png,
    refused,
    user,
)
from gateway_client import dual_chat, route_converse_request

from bedrock_emulator.answers import compose_answer
from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2

QUESTION = "What is in the picture?"
TEXT_ONLY = (
    "micro: Nova Micro takes text only; send images and documents to pro alone through pro.messages"
)


def test_pro_describes_an_image_sent_through_pro_messages_while_micro_answers_the_text(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    picture = png(7, 3)
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user(QUESTION)],
            pro=gateway_pb2.RouteOverride(messages=[user(QUESTION, image_block(picture))]),
        ),
    )
    assert result.routes["micro"].error is None and result.routes["pro"].error is None
    assert "I see a png image of 7x3 pixels." in result.routes["pro"].text
    expected = compose_answer(MICRO_MODEL, route_converse_request("micro", QUESTION))
    assert result.routes["micro"].text == expected.text

    sent = bodies(emulator)
    assert sent["micro"]["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]
    assert sent["pro"]["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": QUESTION},
                {
                    "image": {
                        "format": "png",
                        "source": {"bytes": base64.b64encode(picture).decode()},
                    }
                },
            ],
        }
    ]


def test_pro_reads_a_document_sent_through_pro_messages(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    notes = b"DualNova fans one conversation out to two models.\n"
    question = "Summarise the notes."
    result = dual_chat(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user(question)],
            pro=gateway_pb2.RouteOverride(
                messages=[user(question, document_block("Release notes (v2)", notes))]
            ),
        ),
    )
    assert result.routes["micro"].error is None
    assert f"I read the document Release notes (v2) ({len(notes)} bytes)." in (
        result.routes["pro"].text
    )


# Media that would reach micro, each way a request can send them there.
_CALL = chat_pb2.ContentBlock(
    tool_use=chat_pb2.ToolUseBlock(
        tool_use_id="tooluse_0123456789abcdef", name="get_weather", input_json="{}"
    )
)
_CHART_RESULT = chat_pb2.ContentBlock(
    tool_result=chat_pb2.ToolResultBlock(
        tool_use_id="tooluse_0123456789abcdef",
        content=[chat_pb2.ToolResultContent(image=image_block(png(2, 2)).image)],
    )
)


@pytest.mark.parametrize(
    ("request_", "where"),
    [
        pytest.param(
            gateway_pb2.DualChatRequest(messages=[user(QUESTION, image_block(png(4, 4)))]),
            "messages[0].content[0].image is an image",
            id="shared-image-to-both",
        ),
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[user("Summarise it.")],
                micro=gateway_pb2.RouteOverride(
                    messages=[user("Summarise it.", document_block("notes", b"some notes"))]
                ),
            ),
            "micro.messages[0].content[0].document is a document",
            id="document-in-micro-messages",
        ),
        pytest.param(
            gateway_pb2.DualChatRequest(
                messages=[
                    user("Chart the weather with get_weather."),
                    assistant("I will call get_weather.", _CALL),
                    user("", _CHART_RESULT),
                ],
                tool_config=chat_pb2.ToolConfig(tools=[WEATHER_TOOL]),
                # Pro has its own messages; micro would get the shared ones, with the chart.
                pro=gateway_pb2.RouteOverride(messages=[user("Chart the weather.")]),
            ),
            "messages[2].content[0].tool_result.content[0].image is an image",
            id="image-in-a-tool-result-to-micro",
        ),
    ],
)
def test_media_that_would_reach_micro_are_refused_naming_micro_before_any_upstream_call(
    gateway: ServiceHandle,
    emulator: EmulatorHandle,
    request_: gateway_pb2.DualChatRequest,
    where: str,
) -> None:
    error = refused(gateway.address, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{TEXT_ONLY} ({where})"
    assert emulator.requests() == []


def test_an_image_whose_bytes_are_not_its_format_is_refused_naming_the_pro_field(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    jpeg_bytes = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    error = refused(
        gateway.address,
        gateway_pb2.DualChatRequest(
            messages=[user(QUESTION)],
            pro=gateway_pb2.RouteOverride(messages=[user(QUESTION, image_block(jpeg_bytes))]),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("pro.messages[0].content[0].image.source.bytes: ")
    assert emulator.requests() == []


def test_the_shared_messages_may_be_empty_only_when_both_routes_bring_their_own(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    own = {
        "micro": gateway_pb2.RouteOverride(messages=[user("Short answer, please.")]),
        "pro": gateway_pb2.RouteOverride(messages=[user(QUESTION, image_block(png(1, 1)))]),
    }
    result = dual_chat(gateway.address, gateway_pb2.DualChatRequest(**own))
    assert result.routes["micro"].error is None and result.routes["pro"].error is None
    assert "I see a png image of 1x1 pixels." in result.routes["pro"].text
    assert bodies(emulator)["micro"]["messages"] == [
        {"role": "user", "content": [{"text": "Short answer, please."}]}
    ]

    emulator.reset()
    error = refused(gateway.address, gateway_pb2.DualChatRequest(pro=own["pro"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "messages: must contain at least one message: micro has no micro.messages of its own"
    )
    assert emulator.requests() == []
