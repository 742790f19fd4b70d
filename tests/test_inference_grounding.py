"""Grounded answers through the real inference service: Retrieve, grounded Chat, their failures.

One inference service of this module's own runs in front of the session's
emulator with DUALNOVA_KNOWLEDGE_BASE_ID=KBDUALNOVA (the emulator's built-in
knowledge base), three attempts per AWS call and the gateway's token required
(only the gateway may call it, Retrieve included). The emulator's request log
shows what reached Bedrock: how many Retrieves, with which body, and the
ConverseStream request the passages went into.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from processes import SERVICE_DEFAULTS

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.settings import ConfigError
from inference_service import config
from inference_service.bedrock import RETRIEVE_ERROR_CODES
from inference_service.grounding import INSTRUCTION
from inference_service.server import UPSTREAM_REFUSAL

TOKEN = "gw-kb-Tz4pQ8mW2x"
KB = "KBDUALNOVA"
QUESTION = "What is Amazon Nova Micro?"
USER = chat_pb2.ROLE_USER


def agent_endpoints(emulator: EmulatorHandle) -> dict[str, str]:
    """The Knowledge Base endpoints, on the emulator's port like the rest of Bedrock."""
    url = emulator.aws_env()["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    return {"AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url, "AWS_ENDPOINT_URL_BEDROCK_AGENT": url}


@pytest.fixture(scope="module")
def grounded_service(emulator: EmulatorHandle, log_dir: Path) -> Iterator[ServiceHandle]:
    handle = ServiceHandle(
        "inference service (grounding)",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **SERVICE_DEFAULTS,
            **emulator.aws_env(),
            **agent_endpoints(emulator),
            "DUALNOVA_KNOWLEDGE_BASE_ID": KB,
            "DUALNOVA_BEDROCK_MAX_ATTEMPTS": "3",
            "INFERENCE_AUTH_TOKENS": f"gateway:{TOKEN}",
        },
        log_path=log_dir / "inference_service-grounding.log",
    )
    handle.start()
    # Its first health probes (GetKnowledgeBase among them) are not any test's calls.
    emulator.reset()
    yield handle
    handle.stop()


@pytest.fixture
def kb_stub(
    grounded_service: ServiceHandle,
) -> Iterator[inference_pb2_grpc.InferenceServiceStub]:
    with grpc.insecure_channel(grounded_service.address) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


AUTH = (("authorization", f"Bearer {TOKEN}"),)


def chat(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ChatRequest
) -> list[inference_pb2.ChatResponse]:
    return list(stub.Chat(request, timeout=20, metadata=AUTH))


def chat_failure(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ChatRequest
) -> tuple[grpc.RpcError, list[inference_pb2.ChatResponse]]:
    events: list[inference_pb2.ChatResponse] = []
    with pytest.raises(grpc.RpcError) as raised:
        for event in stub.Chat(request, timeout=20, metadata=AUTH):
            events.append(event)
    return raised.value, events


def retrieve(
    stub: inference_pb2_grpc.InferenceServiceStub, query: str, **grounding: Any
) -> chat_pb2.Retrieval:
    request = inference_pb2.RetrieveRequest(grounding=chat_pb2.Grounding(**grounding), query=query)
    response: inference_pb2.RetrieveResponse = stub.Retrieve(request, timeout=20, metadata=AUTH)
    return response.retrieval


def retrieve_failure(
    stub: inference_pb2_grpc.InferenceServiceStub, query: str, **grounding: Any
) -> grpc.RpcError:
    request = inference_pb2.RetrieveRequest(grounding=chat_pb2.Grounding(**grounding), query=query)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Retrieve(request, timeout=20, metadata=AUTH)
    return raised.value


def grounded_request(model: str = "micro", **grounding: Any) -> inference_pb2.ChatRequest:
    return inference_pb2.ChatRequest(
        model=model,
        messages=[chat_pb2.Message(role=USER, text=QUESTION)],
        grounding=chat_pb2.Grounding(**grounding),
    )


def kinds(events: list[inference_pb2.ChatResponse]) -> list[str]:
    return [str(event.WhichOneof("event")) for event in events]


def logged(emulator: EmulatorHandle, operation: str) -> list[dict[str, Any]]:
    return [entry for entry in emulator.requests() if entry["operation"] == operation]


def grounding_blocks(retrieval: chat_pb2.Retrieval) -> list[dict[str, str]]:
    """The blocks the contract puts before the last user turn's own content."""
    return [{"text": f"[{p.source_id}] {p.text}"} for p in retrieval.passages] + [
        {"text": INSTRUCTION}
    ]


def answer_text(events: list[inference_pb2.ChatResponse]) -> str:
    return "".join(event.delta.text for event in events if event.HasField("delta"))


# ---- Chat with grounding -------------------------------------------------------------


def test_a_grounded_chat_retrieves_once_and_streams_the_retrieval_first(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    events = chat(kb_stub, grounded_request())

    assert kinds(events)[:2] == ["retrieval", "start"] and kinds(events)[-1] == "stop"
    assert kinds(events).count("retrieval") == 1
    retrieval = events[0].retrieval
    assert retrieval.knowledge_base_id == KB and retrieval.query == QUESTION
    assert retrieval.latency_ms > 0
    passages = list(retrieval.passages)
    assert 0 < len(passages) <= 5
    assert [p.source_id for p in passages] == [f"S{i}" for i in range(1, len(passages) + 1)]
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    for passage in passages:
        assert passage.location_type == "S3" and passage.location_uri.startswith(
            "s3://dualnova-kb/"
        )
        assert set(json.loads(passage.metadata_json)) >= {"lang", "topic"}

    (sent,) = logged(emulator, "Retrieve")
    assert sent["status"] == 200
    assert sent["body"] == {
        "retrievalQuery": {"text": QUESTION},
        "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 5}},
    }
    (converse,) = logged(emulator, "ConverseStream")
    assert converse["body"]["messages"] == [
        {"role": "user", "content": [*grounding_blocks(retrieval), {"text": QUESTION}]}
    ]
    # The emulator's grounded answer cites the first source.
    assert answer_text(events).startswith("According to [S1], ")


def test_a_chat_given_the_passages_sends_no_retrieve_and_no_retrieval_event(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    retrieval = retrieve(kb_stub, QUESTION, knowledge_base_id=KB, number_of_results=2)
    emulator.reset()
    history = [
        chat_pb2.Message(role=USER, text="Hello"),
        chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text="Hello! Ask me about Bedrock."),
        chat_pb2.Message(
            role=USER,
            text=QUESTION,
            content=[chat_pb2.ContentBlock(text="Answer in one sentence.")],
        ),
    ]
    events = chat(
        kb_stub, inference_pb2.ChatRequest(model="pro", messages=history, retrieval=retrieval)
    )

    assert kinds(events)[0] == "start" and "retrieval" not in kinds(events)
    assert logged(emulator, "Retrieve") == []
    (converse,) = logged(emulator, "ConverseStream")
    # Only the last user turn is grounded, the passages before its own text and blocks.
    assert converse["body"]["messages"] == [
        {"role": "user", "content": [{"text": "Hello"}]},
        {"role": "assistant", "content": [{"text": "Hello! Ask me about Bedrock."}]},
        {
            "role": "user",
            "content": [
                *grounding_blocks(retrieval),
                {"text": QUESTION},
                {"text": "Answer in one sentence."},
            ],
        },
    ]


def test_a_request_without_grounding_reaches_bedrock_as_before(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    request = inference_pb2.ChatRequest(
        model="micro", messages=[chat_pb2.Message(role=USER, text=QUESTION)]
    )
    events = chat(kb_stub, request)
    assert kinds(events)[0] == "start"
    assert logged(emulator, "Retrieve") == []
    (converse,) = logged(emulator, "ConverseStream")
    assert converse["body"]["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]


def test_an_unknown_knowledge_base_is_not_found_before_any_converse_stream(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    error, events = chat_failure(kb_stub, grounded_request(knowledge_base_id="KBUNKNOWN1"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "knowledge base" in str(error.details())
    assert "ResourceNotFoundException" in str(error.details())
    assert events == []
    assert [e["status"] for e in logged(emulator, "Retrieve")] == [404]
    assert logged(emulator, "ConverseStream") == []

    error = retrieve_failure(kb_stub, QUESTION, knowledge_base_id="KBUNKNOWN1")
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_a_knowledge_base_that_is_not_active_is_a_failed_precondition(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    error, events = chat_failure(kb_stub, grounded_request(knowledge_base_id="KBNOTREADY"))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "KBNOTREADY is not ACTIVE" in str(error.details())
    assert events == [] and logged(emulator, "ConverseStream") == []
    # A refusal, not a transient failure: no retry.
    assert [e["status"] for e in logged(emulator, "Retrieve")] == [409]


def retry_delay_s(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no status details"
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    return float(info.retry_delay.ToNanoseconds()) / 1e9


def test_a_throttled_retrieve_is_retried_then_resource_exhausted_with_retry_info(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", operations=["Retrieve"], times=10)
    error, events = chat_failure(kb_stub, grounded_request())
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ThrottlingException" in str(error.details())
    assert retry_delay_s(error) > 0
    assert events == []
    assert [e["status"] for e in logged(emulator, "Retrieve")] == [429, 429, 429]
    assert logged(emulator, "ConverseStream") == []


def test_a_retrieve_throttled_once_is_retried_and_answers(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="throttling", operations=["Retrieve"], times=1)
    retrieval = retrieve(kb_stub, QUESTION)
    assert retrieval.knowledge_base_id == KB and retrieval.passages
    assert [e["status"] for e in logged(emulator, "Retrieve")] == [429, 200]


# ---- the Retrieve RPC ------------------------------------------------------------------


def test_retrieve_sends_the_search_type_and_filter_and_keeps_what_bedrock_ranked(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    korean = {"equals": {"key": "lang", "value": "ko"}}
    retrieval = retrieve(
        kb_stub,
        "Amazon Nova 모델",
        knowledge_base_id=KB,
        number_of_results=3,
        search_type=chat_pb2.SEARCH_TYPE_HYBRID,
        filter_json=json.dumps(korean),
    )
    (sent,) = logged(emulator, "Retrieve")
    assert sent["body"]["retrievalConfiguration"] == {
        "vectorSearchConfiguration": {
            "numberOfResults": 3,
            "overrideSearchType": "HYBRID",
            "filter": korean,
        }
    }
    assert 0 < len(retrieval.passages) <= 3
    assert all(json.loads(p.metadata_json)["lang"] == "ko" for p in retrieval.passages)
    assert retrieval.query == "Amazon Nova 모델"


def test_a_filter_bedrock_refuses_is_invalid_argument_in_bedrock_words(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    # A JSON object, so it passes our check; the operator is Retrieve's to judge.
    error = retrieve_failure(
        kb_stub, QUESTION, filter_json='{"startsWith": {"key": "lang", "value": "k"}}'
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ValidationException" in str(error.details())
    assert [e["status"] for e in logged(emulator, "Retrieve")] == [400]


@pytest.mark.parametrize(
    ("query", "grounding", "field"),
    [
        ("  ", {}, "query"),
        (QUESTION, {"knowledge_base_id": "kb-dualnova"}, "grounding.knowledge_base_id"),
        (QUESTION, {"knowledge_base_id": "KBDUALNOVA1"}, "grounding.knowledge_base_id"),
        (QUESTION, {"number_of_results": 101}, "grounding.number_of_results"),
        (QUESTION, {"number_of_results": -1}, "grounding.number_of_results"),
        (QUESTION, {"search_type": 9}, "grounding.search_type"),
        (QUESTION, {"filter_json": "[]"}, "grounding.filter_json"),
        (QUESTION, {"filter_json": "{"}, "grounding.filter_json"),
    ],
)
def test_a_bad_retrieve_is_refused_naming_the_field_before_bedrock(
    kb_stub: inference_pb2_grpc.InferenceServiceStub,
    emulator: EmulatorHandle,
    query: str,
    grounding: dict[str, Any],
    field: str,
) -> None:
    error = retrieve_failure(kb_stub, query, **grounding)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()).startswith(f"{field}: ")
    assert emulator.requests() == []


def passage(source_id: str, text: str = "Nova Micro answers in text.") -> chat_pb2.Passage:
    return chat_pb2.Passage(source_id=source_id, text=text, score=1.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {
                "grounding": chat_pb2.Grounding(),
                "retrieval": chat_pb2.Retrieval(passages=[passage("S1")]),
            },
            "retrieval",
        ),
        ({"retrieval": chat_pb2.Retrieval(passages=[passage("1")])}, "retrieval.passages[0]"),
        (
            {"retrieval": chat_pb2.Retrieval(passages=[passage("S1"), passage("S1")])},
            "retrieval.passages[1].source_id",
        ),
        (
            {"retrieval": chat_pb2.Retrieval(passages=[passage("S1", " ")])},
            "retrieval.passages[0].text",
        ),
        ({"grounding": chat_pb2.Grounding(number_of_results=500)}, "grounding.number_of_results"),
    ],
)
def test_a_bad_grounded_chat_is_refused_naming_the_field_before_bedrock(
    kb_stub: inference_pb2_grpc.InferenceServiceStub,
    emulator: EmulatorHandle,
    fields: dict[str, Any],
    field: str,
) -> None:
    request = inference_pb2.ChatRequest(
        model="micro", messages=[chat_pb2.Message(role=USER, text=QUESTION)], **fields
    )
    error, events = chat_failure(kb_stub, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()).startswith(field)
    assert events == [] and emulator.requests() == []


def test_a_grounded_chat_needs_a_query_retrieve_takes(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    long = inference_pb2.ChatRequest(
        model="micro",
        messages=[chat_pb2.Message(role=USER, text="Nova " * 4001)],
        grounding=chat_pb2.Grounding(),
    )
    error, _ = chat_failure(kb_stub, long)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()) == (
        "grounding: the last user turn's text (the query) is 20005 characters, more than"
        " Retrieve's limit of 20000"
    )
    no_text = inference_pb2.ChatRequest(
        model="pro",
        messages=[
            chat_pb2.Message(
                role=USER,
                content=[
                    chat_pb2.ContentBlock(
                        document=chat_pb2.DocumentBlock(
                            format=chat_pb2.DOCUMENT_FORMAT_TXT,
                            name="notes",
                            source=chat_pb2.MediaSource(bytes=b"Nova notes"),
                        )
                    )
                ],
            )
        ],
        grounding=chat_pb2.Grounding(),
    )
    error, _ = chat_failure(kb_stub, no_text)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()).startswith("grounding: the last user turn has no text")
    assert emulator.requests() == []


def test_a_retrieval_that_finds_nothing_leaves_the_request_as_it_was(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    nowhere = json.dumps({"equals": {"key": "lang", "value": "xx"}})
    events = chat(kb_stub, grounded_request(filter_json=nowhere))
    assert kinds(events)[:2] == ["retrieval", "start"]
    assert list(events[0].retrieval.passages) == []
    (converse,) = logged(emulator, "ConverseStream")
    assert converse["body"]["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]


def test_grounding_without_an_id_needs_the_servers_default(
    stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    # The session's service has no DUALNOVA_KNOWLEDGE_BASE_ID.
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Chat(grounded_request(), timeout=20))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(raised.value.details()) == (
        "grounding.knowledge_base_id: is required: this server has no default"
        " (DUALNOVA_KNOWLEDGE_BASE_ID is unset)"
    )
    assert emulator.requests() == []


def test_only_the_gateway_may_call_retrieve(
    grounded_service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    request = inference_pb2.RetrieveRequest(query=QUESTION)
    with grpc.insecure_channel(grounded_service.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer not-the-token"),)):
            with pytest.raises(grpc.RpcError) as raised:
                stub.Retrieve(request, timeout=10, metadata=metadata)
            assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert raised.value.details() == UPSTREAM_REFUSAL
    assert emulator.requests() == []


# ---- citations ------------------------------------------------------------------------

MANUAL = b"DualNova puts Amazon Bedrock's Nova models behind gRPC, with a gateway in front."


def test_a_document_with_citations_asks_bedrock_to_cite_and_citations_are_relayed(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    document = chat_pb2.DocumentBlock(
        format=chat_pb2.DOCUMENT_FORMAT_TXT,
        name="DualNova manual",
        source=chat_pb2.MediaSource(bytes=MANUAL),
        citations=True,
    )
    request = inference_pb2.ChatRequest(
        model="pro",
        messages=[
            chat_pb2.Message(
                role=USER,
                text="What does DualNova do?",
                content=[chat_pb2.ContentBlock(document=document)],
            )
        ],
    )
    events = chat(kb_stub, request)

    (converse,) = logged(emulator, "ConverseStream")
    (sent_document,) = [
        block["document"]
        for block in converse["body"]["messages"][0]["content"]
        if "document" in block
    ]
    assert sent_document["citations"] == {"enabled": True}
    citations = [event.citation for event in events if event.HasField("citation")]
    assert len(citations) == 1
    (citation,) = citations
    assert citation.title == "DualNova manual"
    assert citation.source_text == MANUAL[:40].decode()
    assert json.loads(citation.location_json) == {
        "documentChar": {"documentIndex": 0, "start": 0, "end": 40}
    }
    # After the first text delta, inside the answer's text block.
    first_delta = kinds(events).index("delta")
    assert kinds(events).index("citation") > first_delta
    assert citation.content_block_index == events[first_delta].delta.content_block_index


def test_a_document_without_citations_is_sent_as_before(
    kb_stub: inference_pb2_grpc.InferenceServiceStub, emulator: EmulatorHandle
) -> None:
    document = chat_pb2.DocumentBlock(
        format=chat_pb2.DOCUMENT_FORMAT_TXT,
        name="DualNova manual",
        source=chat_pb2.MediaSource(bytes=MANUAL),
    )
    request = inference_pb2.ChatRequest(
        model="pro",
        messages=[
            chat_pb2.Message(
                role=USER, text="Summarise.", content=[chat_pb2.ContentBlock(document=document)]
            )
        ],
    )
    events = chat(kb_stub, request)
    (converse,) = logged(emulator, "ConverseStream")
    (sent_document,) = [
        block["document"]
        for block in converse["body"]["messages"][0]["content"]
        if "document" in block
    ]
    assert "citations" not in sent_document
    assert "citation" not in kinds(events)


README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("code", sorted(RETRIEVE_ERROR_CODES))
def test_the_readme_lists_each_retrieve_error_as_the_table_maps_it(code: str) -> None:
    status, phrase = RETRIEVE_ERROR_CODES[code]
    rows = [line for line in README.splitlines() if line.startswith(f"| `{code}`")]
    assert any(row.endswith(f"| `{status.name}` | {phrase} |") for row in rows), rows


@pytest.mark.parametrize("value", ["kb-dualnova", "KBDUALNOVA1", "KB DUALNOV"])
def test_a_malformed_default_knowledge_base_stops_the_start_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config.load({"DUALNOVA_KNOWLEDGE_BASE_ID": value})
    assert str(raised.value) == (
        f"DUALNOVA_KNOWLEDGE_BASE_ID={value!r}: expected a knowledge base id (10 letters or digits)"
    )
    assert config.load({"DUALNOVA_KNOWLEDGE_BASE_ID": KB}).knowledge_base_id == KB
    assert config.load({}).knowledge_base_id is None
