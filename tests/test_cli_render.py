"""The chat views' reading of Converse's events, from DualChatResponse messages as sent.

Cases the emulator does not produce on its own: a stop reason newer than
this version (Stop.reason unspecified), a tool call whose block never ends,
the guardrail trace of other policies; and the document names files get.
"""

from __future__ import annotations

import io
import json

import pytest

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.attachments import document_name
from dualnova.cli.render import ChatState, PlainView, guardrail_line, stop_reason_name
from dualnova.gateway.v1 import gateway_pb2


def shown(*events: gateway_pb2.DualChatResponse) -> list[str]:
    """What the plain view writes for these events, table and trace id left out."""
    out = io.StringIO()
    view, state = PlainView(out), ChatState()
    for event in events:
        state.apply(event)
        view.event(event, state)
    return out.getvalue().splitlines()


def stop(reason: int, raw: str) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(
        route="pro",
        stop=chat_pb2.Stop(stop_reason=raw, reason=reason),  # type: ignore[arg-type]
    )


def test_a_stop_reason_this_version_does_not_know_is_shown_as_bedrock_sent_it() -> None:
    assert shown(stop(chat_pb2.STOP_REASON_UNSPECIFIED, "malformed_model_output")) == [
        "[pro] (stopped: malformed_model_output)"
    ]


def test_a_known_stop_reason_is_named_from_the_enum() -> None:
    assert stop_reason_name(chat_pb2.Stop(reason=chat_pb2.STOP_REASON_CONTENT_FILTERED)) == (
        "content_filtered"
    )
    assert shown(stop(chat_pb2.STOP_REASON_END_TURN, "end_turn")) == []


def test_a_tool_call_whose_block_never_ended_still_shows_what_input_came() -> None:
    lines = shown(
        gateway_pb2.DualChatResponse(
            route="micro",
            tool_use_start=chat_pb2.ToolUseStart(
                content_block_index=1, tool_use_id="tooluse_1", name="f"
            ),
        ),
        gateway_pb2.DualChatResponse(
            route="micro",
            tool_input_delta=chat_pb2.ToolInputDelta(content_block_index=1, input_json='{"a":'),
        ),
        gateway_pb2.DualChatResponse(
            route="micro", error=gateway_pb2.RouteError(code="UNAVAILABLE", message="gone")
        ),
    )

    assert lines == [
        '[micro] tool call f(id tooluse_1) {"a": (input unfinished)',
        "[micro] error UNAVAILABLE: gone",
    ]


def test_the_guardrail_line_names_each_policy_that_acted() -> None:
    trace = {
        "inputAssessment": {
            "g1": {
                "contentPolicy": {
                    "filters": [
                        {"type": "VIOLENCE", "confidence": "HIGH", "action": "BLOCKED"},
                        {"type": "HATE", "confidence": "LOW", "action": "NONE"},
                    ]
                },
                "sensitiveInformationPolicy": {
                    "piiEntities": [{"match": "a@b.c", "type": "EMAIL", "action": "ANONYMIZED"}]
                },
            }
        }
    }

    line = guardrail_line(chat_pb2.GuardrailTrace(trace_json=json.dumps(trace), intervened=True))

    assert line == (
        "guardrail intervened: contentPolicy VIOLENCE (BLOCKED);"
        " sensitiveInformationPolicy a@b.c (EMAIL, ANONYMIZED)"
    )
    assert guardrail_line(chat_pb2.GuardrailTrace(trace_json="{", intervened=True)) == (
        "guardrail intervened"
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("notes/Q3 report (final).pdf", "Q3 report (final)"),
        ("my_notes.v2.md", "my-notes-v2"),
        ("a  b.txt", "a b"),
        ("여행 plan.txt", "- plan"),
        ("여행.txt", "document"),
        ("___.txt", "document"),
        ("x" * 250 + ".txt", "x" * 200),
    ],
)
def test_a_documents_name_is_its_file_name_made_to_fit_bedrocks_rule(path: str, name: str) -> None:
    assert document_name(path) == name
