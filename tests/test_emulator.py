"""The Bedrock emulator, driven by the real boto3 clients exactly as a service would use them.

Each test asks the emulator process (the session `emulator` fixture) over
HTTP and checks what boto3 parsed, plus the emulator's request log where the
behaviour is about what happened on the wire.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from polling import wait_until
from urllib3.exceptions import ReadTimeoutError

from bedrock_emulator import catalog, eventstream
from bedrock_emulator.answers import Answer, compose_answer, count_tokens
from dualnova.dev.stack import EmulatorHandle

MICRO = "amazon.nova-micro-v1:0"
LITE = "amazon.nova-lite-v1:0"
PRO = "amazon.nova-pro-v1:0"
PREMIER = "amazon.nova-premier-v1:0"
QUESTION = "서울의 가을 날씨는 어떤가요? What should I pack?"
LOG_FIELDS = {
    "id",
    "operation",
    "model_id",
    "received_at",
    "body",
    "authorization",
    "access_key",
    "status",
    "error",
    "fault",
    "response_text",
    "usage",
    "stop_reason",
    "completed",
    "disconnected",
    "disconnected_at",
}


def client(emulator: EmulatorHandle, service: str = "bedrock-runtime", **options: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id=options.pop("access_key", "testing"),
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, **options),
    )


def conversation(text: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **extra}


def stream_events(emulator: EmulatorHandle, model: str, request: dict[str, Any]) -> list[dict]:
    response = client(emulator).converse_stream(modelId=model, **request)
    return list(response["stream"])


def streamed_text(events: list[dict]) -> str:
    return "".join(deltas(events))


def deltas(events: list[dict]) -> list[str]:
    return [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]


def last_entry(emulator: EmulatorHandle) -> dict[str, Any]:
    return emulator.requests()[-1]


def wait_for_entry(
    emulator: EmulatorHandle, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The last log entry once `done` holds for it (bounded, so a broken emulator fails)."""

    def reached() -> dict[str, Any] | None:
        entries = emulator.requests()
        return entries[-1] if entries and done(entries[-1]) else None

    return wait_until(
        reached,
        lambda: f"the log entry to reach the expected state: {emulator.requests()[-1:]}",
        timeout=timeout,
    )


def raw_post(
    emulator: EmulatorHandle, model: str, body: bytes, *, sign: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """POST to converse-stream without boto3's client-side validation; SigV4-signed if asked."""
    url = f"{emulator.url}/model/{urllib.parse.quote(model, safe='')}/converse-stream"
    headers = {"Content-Type": "application/json"}
    if sign:
        signed = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(Credentials("testing", "testing"), "bedrock", "us-east-1").add_auth(signed)
        headers = dict(signed.headers.items())
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


# --- event-stream framing -------------------------------------------------------------


def test_event_messages_decode_with_botocore_and_their_checksums_hold() -> None:
    delta = {"contentBlockIndex": 0, "delta": {"text": "안녕 🚀"}}
    first = eventstream.event("contentBlockDelta", delta)
    second = eventstream.exception("modelStreamErrorException", "boom")
    buffer = EventStreamBuffer()
    data = first + second
    for start in range(0, len(data), 7):  # arrives in arbitrary chunks
        buffer.add_data(data[start : start + 7])
    messages = list(buffer)

    assert [m.headers for m in messages] == [
        {
            ":event-type": "contentBlockDelta",
            ":content-type": "application/json",
            ":message-type": "event",
        },
        {
            ":exception-type": "modelStreamErrorException",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
    ]
    assert json.loads(messages[0].payload) == delta
    assert json.loads(messages[1].payload) == {"message": "boom"}

    corrupted = bytearray(first)
    corrupted[-6] ^= 0xFF  # a payload byte: the message CRC no longer matches
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


# --- ConverseStream ------------------------------------------------------------------


def test_stream_on_the_wire_is_framed_like_bedrock_with_padding(emulator: EmulatorHandle) -> None:
    status, headers, body = raw_post(emulator, MICRO, json.dumps(conversation()).encode())
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    messages = list(buffer)

    assert status == 200
    assert headers["Content-Type"] == "application/vnd.amazon.eventstream"
    assert {m.headers[":message-type"] for m in messages} == {"event"}
    assert {m.headers[":content-type"] for m in messages} == {"application/json"}
    payloads = [json.loads(m.payload) for m in messages]
    # Like Bedrock, every payload carries a "p" padding field that clients ignore.
    assert all(isinstance(p.pop("p"), str) for p in payloads)
    assert messages[1].headers[":event-type"] == "contentBlockDelta"
    first_piece = compose_answer(MICRO, conversation()).pieces[0]
    assert payloads[1] == {"contentBlockIndex": 0, "delta": {"text": first_piece}}


def test_converse_stream_sends_bedrock_events_in_order(emulator: EmulatorHandle) -> None:
    response = client(emulator).converse_stream(modelId=MICRO, **conversation())
    events = list(response["stream"])
    expected = compose_answer(MICRO, conversation())

    kinds = [next(iter(event)) for event in events]
    deltas = len(expected.pieces)
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * deltas + [
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}
    assert all(e["contentBlockDelta"]["contentBlockIndex"] == 0 for e in events[1 : 1 + deltas])
    assert events[-3]["contentBlockStop"] == {"contentBlockIndex": 0}
    assert events[-2]["messageStop"] == {"stopReason": "end_turn"}
    assert isinstance(events[-1]["metadata"]["metrics"]["latencyMs"], int)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert response["ResponseMetadata"]["RequestId"] == last_entry(emulator)["id"]


def test_streamed_text_and_usage_are_exactly_compose_answer(emulator: EmulatorHandle) -> None:
    request = conversation(system=[{"text": "You answer in Korean."}])
    events = stream_events(emulator, MICRO, request)
    expected = compose_answer(MICRO, request)

    assert deltas(events) == list(expected.pieces)
    assert streamed_text(events) == expected.text
    assert "서울의 가을 날씨는" in expected.text and "🚀" in expected.text
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": expected.input_tokens,
        "outputTokens": expected.output_tokens,
        "totalTokens": expected.total_tokens,
    }
    assert expected.input_tokens == count_tokens("You answer in Korean.") + count_tokens(QUESTION)
    assert expected.output_tokens == len(expected.pieces)


def test_pro_answers_differently_and_about_three_times_longer_than_micro(
    emulator: EmulatorHandle,
) -> None:
    micro = streamed_text(stream_events(emulator, MICRO, conversation()))
    pro = streamed_text(stream_events(emulator, PRO, conversation()))

    assert micro != pro
    assert pro == compose_answer(PRO, conversation()).text
    micro_tokens = len(compose_answer(MICRO, conversation()).pieces)
    pro_tokens = len(compose_answer(PRO, conversation()).pieces)
    assert 2 * micro_tokens < pro_tokens < 4 * micro_tokens


def test_different_questions_get_different_answers_and_the_same_question_the_same() -> None:
    first = compose_answer(MICRO, conversation("How do I cache prompts?"))
    again = compose_answer(MICRO, conversation("How do I cache prompts?"))
    other = compose_answer(MICRO, conversation("왜 하늘은 파란가요?"))

    assert first == again
    assert first.text != other.text
    # The answer follows the last user message, not earlier turns.
    later = compose_answer(
        MICRO,
        {
            "messages": [
                {"role": "user", "content": [{"text": "How do I cache prompts?"}]},
                {"role": "assistant", "content": [{"text": "Use a cachePoint."}]},
                {"role": "user", "content": [{"text": "왜 하늘은 파란가요?"}]},
            ]
        },
    )
    assert later.text == other.text


def test_max_tokens_stops_after_that_many_deltas(emulator: EmulatorHandle) -> None:
    request = conversation(inferenceConfig={"maxTokens": 5})
    events = stream_events(emulator, PRO, request)

    deltas = [e for e in events if "contentBlockDelta" in e]
    assert len(deltas) == 5
    assert events[-2]["messageStop"]["stopReason"] == "max_tokens"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 5
    assert streamed_text(events) == "".join(compose_answer(PRO, conversation()).pieces[:5])


def test_stop_sequence_cuts_the_answer_before_its_first_occurrence(
    emulator: EmulatorHandle,
) -> None:
    full = compose_answer(MICRO, conversation()).text
    request = conversation(inferenceConfig={"stopSequences": ["never there", "—"]})
    events = stream_events(emulator, MICRO, request)

    assert streamed_text(events) == full[: full.index("—")]
    assert events[-2]["messageStop"]["stopReason"] == "stop_sequence"
    expected = compose_answer(MICRO, request)
    assert events[-1]["metadata"]["usage"]["outputTokens"] == expected.output_tokens


def test_prompt_cache_is_written_once_then_read(emulator: EmulatorHandle) -> None:
    system = "You are a careful assistant. 항상 한국어로 답하세요."
    request = conversation(system=[{"text": system}, {"cachePoint": {"type": "default"}}])

    first = stream_events(emulator, MICRO, request)[-1]["metadata"]["usage"]
    second = stream_events(emulator, MICRO, request)[-1]["metadata"]["usage"]
    other_model = stream_events(emulator, PRO, request)[-1]["metadata"]["usage"]

    cached = count_tokens(system)
    assert first["cacheWriteInputTokens"] == cached and first["cacheReadInputTokens"] == 0
    assert second["cacheReadInputTokens"] == cached and second["cacheWriteInputTokens"] == 0
    assert other_model["cacheWriteInputTokens"] == cached  # each model has its own cache
    assert first["inputTokens"] == second["inputTokens"] == count_tokens(QUESTION)
    assert second == compose_answer(MICRO, request, cache_hit=True).usage()
    assert first["totalTokens"] == first["inputTokens"] + first["outputTokens"] + cached

    emulator.reset()
    assert stream_events(emulator, MICRO, request)[-1]["metadata"]["usage"] == first


def test_inference_profile_ids_and_arns_run_their_model(emulator: EmulatorHandle) -> None:
    profile_arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0"
    for model in ("us.amazon.nova-pro-v1:0", "apac.amazon.nova-pro-v1:0", profile_arn):
        assert (
            streamed_text(stream_events(emulator, model, conversation()))
            == compose_answer(PRO, conversation()).text
        )
        entry = last_entry(emulator)
        assert (entry["model_id"], entry["resolved_model_id"]) == (model, PRO)


# --- Converse ------------------------------------------------------------------------


def test_converse_returns_the_same_answer_in_one_document(emulator: EmulatorHandle) -> None:
    request = conversation(inferenceConfig={"maxTokens": 8})
    response = client(emulator).converse(modelId=LITE, **request)
    expected = compose_answer(LITE, request)

    assert response["output"] == {
        "message": {"role": "assistant", "content": [{"text": expected.text}]}
    }
    assert response["stopReason"] == "max_tokens"
    assert response["usage"] == expected.usage()
    assert isinstance(response["metrics"]["latencyMs"], int)
    entry = last_entry(emulator)
    assert (entry["operation"], entry["status"], entry["completed"]) == ("Converse", 200, True)


# --- validation ----------------------------------------------------------------------

VALIDATION_CASES = [
    pytest.param(
        {"messages": []},
        "A conversation must start with a user message. Try again with a conversation that "
        "starts with a user message.",
        id="empty-messages",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]},
        "A conversation must start with a user message. Try again with a conversation that "
        "starts with a user message.",
        id="starts-with-assistant",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "user", "content": [{"text": "b"}]},
            ]
        },
        "A conversation must alternate between user and assistant roles. Make sure the "
        "conversation alternates between user and assistant roles and try again.",
        id="not-alternating",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"text": "  "}]}]},
        "The text field in the ContentBlock object at messages.0.content.0 is blank. "
        "Add text to the text field, and try again.",
        id="blank-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": []}]},
        "The content field in the Message object at messages.0 is empty. "
        "Add a ContentBlock object to the content field and try again.",
        id="empty-content",
    ),
    pytest.param(
        conversation(inferenceConfig={"temperature": 1.5}),
        "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' failed to "
        "satisfy constraint: Member must have value less than or equal to 1",
        id="temperature-above-1",
    ),
    pytest.param(
        conversation(inferenceConfig={"topP": 2.0}),
        "1 validation error detected: Value '2.0' at 'inferenceConfig.topP' failed to "
        "satisfy constraint: Member must have value less than or equal to 1",
        id="top-p-above-1",
    ),
    pytest.param(
        conversation(inferenceConfig={"maxTokens": 10_001}),
        "The maximum tokens you requested exceeds the model limit of 10000. "
        "Try again with a maximum tokens value that is lower than 10000.",
        id="max-tokens-above-model-limit",
    ),
    pytest.param(
        conversation(inferenceConfig={"stopSequences": ["a", "b", "c", "d", "e"]}),
        "Too many stop sequences: 5 were given and the model accepts at most 4. "
        "Remove some stop sequences and try again.",
        id="five-stop-sequences",
    ),
]


@pytest.mark.parametrize("request_fields, message", VALIDATION_CASES)
def test_bedrock_rejects_invalid_requests_sent_by_boto3(
    emulator: EmulatorHandle, request_fields: dict[str, Any], message: str
) -> None:
    for call in (client(emulator).converse_stream, client(emulator).converse):
        with pytest.raises(ClientError) as excinfo:
            call(modelId=MICRO, **request_fields)
        assert error_of(excinfo) == ("ValidationException", message, 400)
    assert [e["error"] for e in emulator.requests()] == ["ValidationException"] * 2


RAW_CASES = [
    pytest.param(
        json.dumps(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"text": "hi", "cachePoint": {"type": "default"}}],
                    }
                ]
            }
        ),
        "ContentBlock object at messages.0.content.0 must set only one of the following keys: "
        "text, image, toolUse, toolResult, document, video.",
        id="text-and-cache-point",
    ),
    pytest.param(
        json.dumps({"messages": [{"role": "user", "content": [{}]}]}),
        "ContentBlock object at messages.0.content.0 must set one of the following keys: "
        "text, image, toolUse, toolResult, document, video.",
        id="neither-member",
    ),
    pytest.param(
        json.dumps(conversation(inferenceConfig={"maxTokens": 0})),
        "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1",
        id="max-tokens-zero",
    ),
    pytest.param(
        json.dumps(conversation(inferenceConfig={"temperature": -0.5})),
        "1 validation error detected: Value '-0.5' at 'inferenceConfig.temperature' failed to "
        "satisfy constraint: Member must have value greater than or equal to 0",
        id="temperature-negative",
    ),
    pytest.param(
        '{"messages": [',
        "Malformed input request, please reformat your input and try again.",
        id="malformed-json",
    ),
]


@pytest.mark.parametrize("body, message", RAW_CASES)
def test_bedrock_rejects_what_boto3_would_refuse_client_side(
    emulator: EmulatorHandle, body: str, message: str
) -> None:
    status, headers, payload = raw_post(emulator, MICRO, body.encode())

    assert status == 400
    assert headers["x-amzn-ErrorType"].split(":", 1)[0] == "ValidationException"
    assert json.loads(payload) == {"message": message}


def test_credentials_are_checked_before_anything_else(emulator: EmulatorHandle) -> None:
    status, headers, payload = raw_post(emulator, MICRO, b'{"messages": [', sign=False)
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("UnrecognizedClientException:")
    assert json.loads(payload) == {
        "message": "The security token included in the request is invalid."
    }
    assert last_entry(emulator)["authorization"] is False

    with pytest.raises(ClientError) as excinfo:
        client(emulator, access_key="INVALIDKEY").converse_stream(modelId=MICRO, **conversation())
    assert error_of(excinfo) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        403,
    )


# --- models ------------------------------------------------------------------------


def test_unknown_model_is_invalid_on_the_runtime_and_not_found_on_the_control_plane(
    emulator: EmulatorHandle,
) -> None:
    with pytest.raises(ClientError) as excinfo:
        client(emulator).converse_stream(modelId="amazon.nova-giant-v9:0", **conversation())
    assert error_of(excinfo) == (
        "ValidationException",
        "The provided model identifier is invalid.",
        400,
    )

    with pytest.raises(ClientError) as excinfo:
        client(emulator, "bedrock").get_foundation_model(modelIdentifier="amazon.nova-giant-v9:0")
    code, _, status = error_of(excinfo)
    assert (code, status) == ("ResourceNotFoundException", 404)

    with pytest.raises(ClientError) as excinfo:
        client(emulator, "bedrock").get_inference_profile(inferenceProfileIdentifier="us.nope-v1:0")
    assert error_of(excinfo)[0] == "ResourceNotFoundException"


def test_model_without_access_is_denied_for_inference_but_still_described(
    emulator: EmulatorHandle,
) -> None:
    runtime = client(emulator)
    for call in (runtime.converse_stream, runtime.converse):
        with pytest.raises(ClientError) as excinfo:
            call(modelId=PREMIER, **conversation())
        assert error_of(excinfo) == (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            403,
        )
    details = client(emulator, "bedrock").get_foundation_model(modelIdentifier=PREMIER)
    assert details["modelDetails"]["modelLifecycle"] == {"status": "ACTIVE"}


def test_control_plane_describes_the_nova_models(emulator: EmulatorHandle) -> None:
    bedrock = client(emulator, "bedrock")

    details = bedrock.get_foundation_model(modelIdentifier=MICRO)["modelDetails"]
    assert details == {
        "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0",
        "modelId": MICRO,
        "modelName": "Nova Micro",
        "providerName": "Amazon",
        "inputModalities": ["TEXT"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }
    listed = [m["modelId"] for m in bedrock.list_foundation_models()["modelSummaries"]]
    assert listed == [MICRO, LITE, PRO, PREMIER]

    profile = bedrock.get_inference_profile(inferenceProfileIdentifier="us.amazon.nova-micro-v1:0")
    assert profile["inferenceProfileId"] == "us.amazon.nova-micro-v1:0"
    assert (profile["status"], profile["type"]) == ("ACTIVE", "SYSTEM_DEFINED")
    assert profile["models"] == [
        {"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MICRO}"}
        for region in ("us-east-1", "us-east-2", "us-west-2")
    ]
    profiles = bedrock.list_inference_profiles()["inferenceProfileSummaries"]
    assert "eu.amazon.nova-pro-v1:0" in {p["inferenceProfileId"] for p in profiles}
    assert [e["operation"] for e in emulator.requests()] == [
        "GetFoundationModel",
        "ListFoundationModels",
        "GetInferenceProfile",
        "ListInferenceProfiles",
    ]


# --- faults --------------------------------------------------------------------------

ERROR_FAULTS = [
    ("throttling", "ThrottlingException", 429),
    ("access_denied", "AccessDeniedException", 403),
    ("service_unavailable", "ServiceUnavailableException", 503),
    ("internal", "InternalServerException", 500),
]


@pytest.mark.parametrize("kind, code, status", ERROR_FAULTS)
def test_error_faults_answer_bedrock_errors_for_their_count(
    emulator: EmulatorHandle, kind: str, code: str, status: int
) -> None:
    emulator.add_fault(kind=kind, model=MICRO, times=1)
    runtime = client(emulator)

    with pytest.raises(ClientError) as excinfo:
        runtime.converse_stream(modelId=MICRO, **conversation())
    assert error_of(excinfo)[0::2] == (code, status)
    # times=1: used up; the next request streams normally.
    assert streamed_text(list(runtime.converse_stream(modelId=MICRO, **conversation())["stream"]))
    entries = emulator.requests()
    assert [(e["fault"], e["error"], e["status"], e["completed"]) for e in entries] == [
        (kind, code, status, False),
        (None, None, 200, True),
    ]


def test_fault_rules_match_their_model_and_operations(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="throttling", model=PRO)
    emulator.add_fault(kind="access_denied", model=LITE)
    runtime = client(emulator)

    assert streamed_text(stream_events(emulator, MICRO, conversation()))
    with pytest.raises(ClientError) as excinfo:
        runtime.converse(modelId="eu.amazon.nova-pro-v1:0", **conversation())  # via its profile
    assert error_of(excinfo)[0] == "ThrottlingException"
    # access_denied also covers GetFoundationModel for that model, by default.
    with pytest.raises(ClientError) as excinfo:
        client(emulator, "bedrock").get_foundation_model(modelIdentifier=LITE)
    assert error_of(excinfo)[0] == "AccessDeniedException"
    client(emulator, "bedrock").get_foundation_model(modelIdentifier=PRO)

    rules = json.loads(urllib.request.urlopen(emulator.url + "/_emulator/faults").read())
    assert [(r["kind"], r["model"], r["remaining"]) for r in rules] == [
        ("throttling", PRO, None),
        ("access_denied", LITE, None),
    ]
    emulator.clear_faults()
    assert streamed_text(stream_events(emulator, PRO, conversation()))


def test_mid_stream_error_reaches_boto3_as_event_stream_error(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="mid_stream_error", after_deltas=3)
    received: list[dict] = []
    response = client(emulator).converse_stream(modelId=MICRO, **conversation())

    with pytest.raises(EventStreamError) as excinfo:
        for event in response["stream"]:
            received.append(event)
    assert excinfo.value.response["Error"]["Code"] == "modelStreamErrorException"
    pieces = compose_answer(MICRO, conversation()).pieces
    assert streamed_text(received) == "".join(pieces[:3])
    entry = last_entry(emulator)
    assert (entry["status"], entry["fault"], entry["error"]) == (
        200,
        "mid_stream_error",
        "modelStreamErrorException",
    )
    assert (entry["completed"], entry["response_text"]) == (False, "".join(pieces[:3]))


def test_mid_stream_error_with_another_exception_and_on_converse(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="mid_stream_error", exception="throttlingException", after_deltas=0)
    response = client(emulator).converse_stream(modelId=MICRO, **conversation())
    with pytest.raises(EventStreamError) as excinfo:
        list(response["stream"])
    assert excinfo.value.response["Error"]["Code"] == "throttlingException"

    # Converse has no stream: the same fault is the matching HTTP error.
    with pytest.raises(ClientError) as excinfo:
        client(emulator).converse(modelId=MICRO, **conversation())
    assert error_of(excinfo)[0::2] == ("ThrottlingException", 429)


def test_hang_sends_some_deltas_then_nothing(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="hang", after_deltas=2, times=1)
    received: list[dict] = []
    response = client(emulator, read_timeout=0.5).converse_stream(modelId=MICRO, **conversation())

    # While iterating the stream, botocore lets urllib3's read timeout through unwrapped.
    with pytest.raises(ReadTimeoutError):
        for event in response["stream"]:
            received.append(event)
    assert [next(iter(e)) for e in received] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
    ]
    entry = wait_for_entry(emulator, lambda e: e["disconnected"])
    assert (entry["fault"], entry["completed"]) == ("hang", False)


@pytest.mark.parametrize("model", [MICRO, PRO])
def test_each_model_streams_at_its_own_pace(emulator: EmulatorHandle, model: str) -> None:
    emulator.set_pace(1.0)
    request = conversation(inferenceConfig={"maxTokens": 3})
    latency_ms = stream_events(emulator, model, request)[-1]["metadata"]["metrics"]["latencyMs"]

    # latencyMs is measured; it contains at least the model's time to first token
    # and two inter-delta pauses (Pro: 350 + 2 * 20 ms; Micro: 120 + 2 * 8 ms).
    pacing = catalog.resolve(model).pacing
    assert latency_ms >= 1000 * (pacing.first_token_s + 2 * pacing.per_delta_s)


def test_slow_fault_spaces_the_deltas(emulator: EmulatorHandle) -> None:
    emulator.set_pace(0.0)
    emulator.add_fault(kind="slow", delay_ms=20)
    request = conversation(inferenceConfig={"maxTokens": 6})
    events = stream_events(emulator, MICRO, request)

    assert streamed_text(events) == compose_answer(MICRO, request).text
    # Five pauses of at least 20 ms each happened inside the measured latency.
    assert events[-1]["metadata"]["metrics"]["latencyMs"] >= 100
    assert last_entry(emulator)["fault"] == "slow"


def test_fault_directive_in_the_question_applies_to_that_request_only(
    emulator: EmulatorHandle,
) -> None:
    runtime = client(emulator)
    with pytest.raises(ClientError) as excinfo:
        runtime.converse_stream(modelId=MICRO, **conversation("hello [[fault:throttling]]"))
    assert error_of(excinfo)[0] == "ThrottlingException"
    assert streamed_text(stream_events(emulator, MICRO, conversation("hello")))

    # A directive naming a model family hits only that model (one DualChat route).
    targeted = conversation("hello [[fault:mid_stream_error:pro]]")
    micro_text = streamed_text(stream_events(emulator, MICRO, targeted))
    assert micro_text == compose_answer(MICRO, targeted).text
    with pytest.raises(EventStreamError):
        stream_events(emulator, PRO, targeted)
    faults = [e["fault"] for e in emulator.requests()]
    assert faults == ["throttling", None, None, "mid_stream_error"]


def test_invalid_fault_rules_are_refused(emulator: EmulatorHandle) -> None:
    for rule in (
        {"kind": "explode"},
        {"kind": "throttling", "model": "amazon.nova-giant-v9:0"},
        {"kind": "throttling", "operations": ["InvokeModel"]},
        {"kind": "throttling", "times": 0},
        {"kind": "throttling", "colour": "red"},
        {"kind": "mid_stream_error", "exception": "boomException"},
    ):
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            emulator.add_fault(**rule)
        assert excinfo.value.code == 400


# --- request log and hang-ups ----------------------------------------------------------


def test_request_log_records_what_was_asked_and_answered(emulator: EmulatorHandle) -> None:
    before = time.time()
    request = conversation(inferenceConfig={"maxTokens": 7})
    events = stream_events(emulator, MICRO, request)

    (entry,) = emulator.requests()
    assert LOG_FIELDS <= set(entry)
    expected: Answer = compose_answer(MICRO, request)
    assert entry["operation"] == "ConverseStream"
    assert entry["model_id"] == MICRO
    assert before <= entry["received_at"] <= time.time()
    assert entry["body"] == request
    assert entry["authorization"] is True
    assert entry["access_key"] == "testing"  # the id only: the secret never reaches the log
    assert (entry["status"], entry["error"], entry["fault"]) == (200, None, None)
    assert entry["response_text"] == expected.text == streamed_text(events)
    assert entry["usage"] == expected.usage()
    assert entry["stop_reason"] == "max_tokens"
    assert entry["completed"] is True
    assert (entry["disconnected"], entry["disconnected_at"]) == (False, None)


def test_a_caller_closing_the_stream_early_is_recorded_as_disconnected(
    emulator: EmulatorHandle,
) -> None:
    emulator.set_pace(1.0)  # Pro at full pace: the stream lasts well over a second
    response = client(emulator).converse_stream(modelId=PRO, **conversation())
    stream = response["stream"]
    first = next(iter(stream))
    stream.close()

    assert first == {"messageStart": {"role": "assistant"}}
    entry = wait_for_entry(emulator, lambda e: e["disconnected"])
    assert entry["completed"] is False
    assert entry["usage"] is None
    assert entry["disconnected_at"] >= entry["received_at"]
    assert entry["response_text"] != compose_answer(PRO, conversation()).text


# --- control API and process -----------------------------------------------------------


def test_control_api_health_pacing_and_reset(emulator: EmulatorHandle) -> None:
    health = json.loads(urllib.request.urlopen(emulator.url + "/_emulator/health").read())
    assert health == {"status": "ok"}

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        emulator.set_pace(-1)
    assert excinfo.value.code == 400

    emulator.add_fault(kind="throttling")
    with pytest.raises(ClientError):
        client(emulator).converse(modelId=MICRO, **conversation())
    emulator.reset()
    assert emulator.requests() == []
    assert streamed_text(stream_events(emulator, MICRO, conversation()))


def test_emulator_exits_cleanly_on_sigterm_while_a_stream_hangs() -> None:
    own = EmulatorHandle(pace=0)
    own.start()
    try:
        own.add_fault(kind="hang")
        outcome: list[BaseException] = []

        def consume() -> None:
            try:
                list(client(own).converse_stream(modelId=MICRO, **conversation())["stream"])
            except Exception as error:  # noqa: BLE001 - the test inspects it below
                outcome.append(error)

        reader = threading.Thread(target=consume)
        reader.start()
        wait_for_entry(own, lambda e: len(e["response_text"]) > 0)
    finally:
        status = own.stop()
    reader.join(timeout=10)
    assert status == 0
    assert outcome, "the hanging stream must end when the emulator stops"
