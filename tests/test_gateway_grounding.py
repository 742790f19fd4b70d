"""Grounded DualChat through the three processes: one Retrieve, the same passages for both routes.

This module runs an inference service and a gateway of its own in front of
the session's emulator: the inference service with the emulator's Knowledge
Base endpoints, DUALNOVA_KNOWLEDGE_BASE_ID=KBDUALNOVA and a token only the
gateway has (so Retrieve passing shows that the gateway sends it). The
emulator's request log shows what reached Bedrock: how many Retrieves, and
the ConverseStream request each route's passages went into; both export
traces to the module's collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from gateway_client import DualResult, ask, dual_chat, user
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from polling import wait_until
from telemetry_support import FAST_EXPORT, OtlpCollector, Pair, running_pair
from test_gateway_session import session, start

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from inference_service.grounding import INSTRUCTION

TOKEN = "gw-grounding-7Rk2Lp9q"
KB = "KBDUALNOVA"
QUESTION = "What is Amazon Nova Micro?"
MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}


@pytest.fixture(scope="module")
def pair(
    emulator: EmulatorHandle,
    collector: OtlpCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    url = emulator.aws_env()["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    telemetry = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, **FAST_EXPORT}
    with running_pair(
        emulator,
        tmp_path_factory.mktemp("grounding"),
        inference_env={
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT": url,
            "DUALNOVA_KNOWLEDGE_BASE_ID": KB,
            "INFERENCE_AUTH_TOKENS": f"gateway:{TOKEN}",
            **telemetry,
        },
        gateway_env={"GATEWAY_UPSTREAM_TOKEN": TOKEN, **telemetry},
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def _clean_log(pair: Pair, emulator: EmulatorHandle) -> None:
    # The pair's start-up probes (GetKnowledgeBase) are not any test's calls.
    emulator.reset()


def grounded(question: str = QUESTION, **grounding: Any) -> gateway_pb2.DualChatRequest:
    request = ask(question)
    request.grounding.CopyFrom(chat_pb2.Grounding(**grounding))
    return request


def logged(emulator: EmulatorHandle, operation: str) -> list[dict[str, Any]]:
    return [e for e in emulator.requests() if e["operation"] == operation]


def bedrock_turns(emulator: EmulatorHandle) -> dict[str, list[dict[str, Any]]]:
    """The last user turn's content each route's ConverseStream request held."""
    entries = logged(emulator, "ConverseStream")
    assert len(entries) == 2, entries
    return {
        route: next(e for e in entries if e["model_id"] == MODELS[route])["body"]["messages"][-1][
            "content"
        ]
        for route in MODELS
    }


def passage_blocks(retrieval: chat_pb2.Retrieval) -> list[dict[str, str]]:
    """The contract's text blocks for `retrieval`: one per passage, then the instruction."""
    return [
        *({"text": f"[{p.source_id}] {p.text}"} for p in retrieval.passages),
        {"text": INSTRUCTION},
    ]


def refusal(address: str, request: gateway_pb2.DualChatRequest) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            for _ in gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30):
                pass
    return raised.value


def test_a_grounded_dual_chat_retrieves_once_and_both_routes_get_the_same_passages(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    result = dual_chat(pair.gateway.address, grounded(number_of_results=3))

    first = result.responses[0]
    assert first.route == "" and first.WhichOneof("event") == "retrieval"
    assert [kind for route, kind in result.order].count("retrieval") == 1
    retrieval = first.retrieval
    assert retrieval.knowledge_base_id == KB and retrieval.query == QUESTION
    assert 1 <= len(retrieval.passages) <= 3
    assert [p.source_id for p in retrieval.passages] == [
        f"S{n}" for n in range(1, len(retrieval.passages) + 1)
    ]

    (retrieve,) = logged(emulator, "Retrieve")
    assert retrieve["body"]["retrievalQuery"] == {"text": QUESTION}
    assert (
        retrieve["body"]["retrievalConfiguration"]["vectorSearchConfiguration"]["numberOfResults"]
        == 3
    )
    turns = bedrock_turns(emulator)
    for route in MODELS:
        assert turns[route] == [*passage_blocks(retrieval), {"text": QUESTION}], route
        assert result.routes[route].text.startswith("According to [S1], "), route
        assert result.routes[route].stop is not None
    # The routes' events come after the passages, and nothing else has route "".
    assert all(route for route, kind in result.order[1:-1])


def test_a_route_that_skips_grounding_is_sent_the_plain_question(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    request = grounded()
    request.micro.skip_grounding = True

    result = dual_chat(pair.gateway.address, request)

    assert result.responses[0].HasField("retrieval")
    assert len(logged(emulator, "Retrieve")) == 1
    turns = bedrock_turns(emulator)
    assert turns["micro"] == [{"text": QUESTION}]
    assert turns["pro"] == [*passage_blocks(result.responses[0].retrieval), {"text": QUESTION}]
    assert not result.routes["micro"].text.startswith("According to")
    assert result.routes["pro"].text.startswith("According to [S1], ")


def test_the_query_is_the_last_user_turn_of_the_shared_messages(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    request = gateway_pb2.DualChatRequest(
        messages=[
            user("Tell me about prompt caching."),
            chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text="It saves tokens."),
            chat_pb2.Message(
                role=chat_pb2.ROLE_USER,
                text="And Nova Pro?",
                content=[chat_pb2.ContentBlock(text="Which inputs does it take?")],
            ),
        ],
        grounding=chat_pb2.Grounding(),
    )

    result = dual_chat(pair.gateway.address, request)

    (retrieve,) = logged(emulator, "Retrieve")
    query = "And Nova Pro?\nWhich inputs does it take?"
    assert retrieve["body"]["retrievalQuery"] == {"text": query}
    assert result.responses[0].retrieval.query == query


@pytest.mark.parametrize(
    ("knowledge_base_id", "code", "says"),
    [
        ("KBMISSING1", grpc.StatusCode.NOT_FOUND, "KBMISSING1"),
        ("KBNOTREADY", grpc.StatusCode.FAILED_PRECONDITION, "not ACTIVE"),
    ],
)
def test_a_failed_retrieve_fails_the_call_with_its_status_before_any_bedrock_answer(
    pair: Pair,
    emulator: EmulatorHandle,
    knowledge_base_id: str,
    code: grpc.StatusCode,
    says: str,
) -> None:
    error = refusal(pair.gateway.address, grounded(knowledge_base_id=knowledge_base_id))

    assert error.code() == code
    assert says in error.details()
    assert len(logged(emulator, "Retrieve")) == 1
    assert logged(emulator, "ConverseStream") == []
    assert dict(error.trailing_metadata())["x-trace-id"]


def test_a_throttled_retrieve_is_resource_exhausted_with_the_retry_info(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", operations=["Retrieve"])

    error = refusal(pair.gateway.address, grounded())

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error)
    assert status is not None
    (detail,) = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    info = error_details_pb2.RetryInfo()
    detail.Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() > 0
    assert logged(emulator, "ConverseStream") == []


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (grounded(number_of_results=101), "grounding.number_of_results: must be between 1"),
        (grounded(knowledge_base_id="kb-1"), "grounding.knowledge_base_id: must be"),
        (grounded(filter_json="[1]"), "grounding.filter_json: must be a JSON object"),
        (
            gateway_pb2.DualChatRequest(
                micro=gateway_pb2.RouteOverride(messages=[user("Hi")]),
                pro=gateway_pb2.RouteOverride(messages=[user("Hi")]),
                grounding=chat_pb2.Grounding(),
            ),
            "grounding: retrieves with the text of the last user turn of messages",
        ),
    ],
    ids=["too many results", "bad id", "filter not an object", "no shared question"],
)
def test_a_bad_grounding_is_refused_before_any_retrieve(
    pair: Pair, emulator: EmulatorHandle, request_: gateway_pb2.DualChatRequest, says: str
) -> None:
    error = refusal(pair.gateway.address, request_)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(says), error.details()
    assert emulator.requests() == []


def test_without_grounding_no_retrieve_runs_and_no_retrieval_event(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    result: DualResult = dual_chat(pair.gateway.address, ask(QUESTION))

    assert logged(emulator, "Retrieve") == []
    assert "retrieval" not in [kind for _, kind in result.order]
    assert bedrock_turns(emulator)["micro"] == [{"text": QUESTION}]


def test_the_callers_deadline_bounds_the_retrieve(pair: Pair, emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="hang", operations=["Retrieve"])

    with grpc.insecure_channel(pair.gateway.address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            for _ in gateway_pb2_grpc.GatewayStub(channel).DualChat(grounded(), timeout=2):
                pass

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The inference service gave up on Bedrock's Retrieve with the call (nothing waits on).
    wait_until(
        lambda: logged(emulator, "Retrieve")[0]["disconnected"], "the Retrieve to be hung up on"
    )
    assert logged(emulator, "ConverseStream") == []


def test_a_route_stopped_while_the_passages_are_retrieved_never_calls_bedrock(
    pair: Pair, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", operations=["Retrieve"], delay_ms=1000)

    with session(pair.gateway.address, start(grounded())) as opened:
        opened.stop("pro")
        events = list(opened.events())

    assert events[0].HasField("retrieval")
    assert [e.WhichOneof("event") for e in events if e.route == "pro"] == ["route_stopped"]
    micro = "".join(e.delta.text for e in events if e.route == "micro" and e.HasField("delta"))
    assert micro.startswith("According to [S1], ")
    assert events[-1].HasField("summary")
    assert [e["model_id"] for e in logged(emulator, "ConverseStream")] == [MODELS["micro"]]


def test_the_retrieve_is_one_span_under_the_dual_chat_before_the_route_spans(
    pair: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    result = dual_chat(pair.gateway.address, grounded(number_of_results=2))

    # DualChat, retrieve, Retrieve (inference) and its retrieval span, then per route: the
    # route span, Chat and the Bedrock span.
    spans = collector.wait_for_trace(result.summary.trace_id, 10)
    (dual,) = [s for s in spans if (s.service, s.kind) == ("gateway", "SERVER")]
    (retrieve,) = [s for s in spans if s.service == "gateway" and s.name == "retrieve"]
    assert retrieve.kind == "CLIENT" and retrieve.parent_span_id == dual.span_id
    assert retrieve.attributes["rpc.method"] == "dualnova.inference.v1.InferenceService/Retrieve"
    assert retrieve.attributes["rpc.response.status_code"] == "OK"
    assert retrieve.attributes["dualnova.retrieval.passages"] == len(
        result.responses[0].retrieval.passages
    )
    (served,) = [
        s for s in spans if s.name.endswith("InferenceService/Retrieve") and s.kind == "SERVER"
    ]
    assert served.service == "inference_service" and served.parent_span_id == retrieve.span_id
    # Never the query on the gateway's span.
    assert QUESTION not in str(retrieve.attributes)
