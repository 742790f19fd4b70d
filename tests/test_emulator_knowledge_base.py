"""The emulator's knowledge bases, driven by the real boto3 clients (issue 13).

bedrock-agent-runtime Retrieve and bedrock-agent GetKnowledgeBase against the
session emulator process, checked against what botocore parses and against
the scoring rules of bedrock_emulator/retrieval.py; then the grounded answers
and citation deltas bedrock-runtime ConverseStream gives.
"""

from __future__ import annotations

import base64
import json
import tomllib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bedrock_emulator import knowledge_base, retrieval
from bedrock_emulator.answers import compose_answer
from dualnova.dev.stack import EmulatorHandle

KB = "KBDUALNOVA"
MICRO = "amazon.nova-micro-v1:0"
PRO = "amazon.nova-pro-v1:0"
CONTEXT_QUESTION = "What is the context window of Nova Micro?"


def client(emulator: EmulatorHandle, service: str, validate: bool = True) -> Any:
    # validate=False sends what botocore would refuse, to see the emulator's own answer.
    return boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )


def retrieve(
    emulator: EmulatorHandle,
    text: str,
    kb: str = KB,
    validate: bool = True,
    **vector: Any,
) -> list[dict[str, Any]]:
    request: dict[str, Any] = {"knowledgeBaseId": kb, "retrievalQuery": {"text": text}}
    if vector:
        request["retrievalConfiguration"] = {"vectorSearchConfiguration": vector}
    response = client(emulator, "bedrock-agent-runtime", validate).retrieve(**request)
    return list(response["retrievalResults"])


def refusal(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as excinfo:
        call()
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [r["metadata"]["x-amz-bedrock-kb-chunk-id"] for r in results]


# --- the corpus -------------------------------------------------------------------------------


def test_the_corpus_has_a_few_dozen_passages_in_english_and_korean() -> None:
    passages = knowledge_base.corpus()
    assert 24 <= len(passages) <= 60
    assert len({p.id for p in passages}) == len(passages)
    languages = Counter(p.metadata["lang"] for p in passages)
    assert set(languages) == {"en", "ko"} and min(languages.values()) >= 10
    for passage in passages:
        assert passage.metadata["topic"] and passage.text.strip()
        assert (
            passage.metadata["x-amz-bedrock-kb-source-uri"] == f"s3://dualnova-kb/{passage.id}.md"
        )
        if passage.metadata["lang"] == "ko":
            assert any("\uac00" <= ch <= "\ud7a3" for ch in passage.text)


def test_the_corpus_is_package_data_of_the_wheel() -> None:
    """The container installs a wheel, not the checkout: the passages must be in it."""
    root = Path(__file__).resolve().parent.parent
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["bedrock_emulator"]
    shipped = {p for pattern in patterns for p in (root / "bedrock_emulator").glob(pattern)}
    assert root / "bedrock_emulator" / "corpus" / "passages.json" in shipped


# --- Retrieve ---------------------------------------------------------------------------------


def test_retrieve_answers_bedrocks_shape_most_relevant_first(emulator: EmulatorHandle) -> None:
    results = retrieve(emulator, CONTEXT_QUESTION, numberOfResults=3)
    expected = retrieval.rank(knowledge_base.corpus(), CONTEXT_QUESTION)[:3]
    assert ids(results) == [s.passage.id for s in expected]
    assert ids(results)[0] == "nova-micro-en"
    first = results[0]
    passage = expected[0].passage
    assert first == {
        "content": {"text": passage.text, "type": "TEXT"},
        "location": {"type": "S3", "s3Location": {"uri": "s3://dualnova-kb/nova-micro-en.md"}},
        "score": expected[0].score,
        "metadata": passage.metadata,
    }
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert all(round(s, 6) == s for s in scores)


def test_equal_scores_are_ordered_by_passage_id(emulator: EmulatorHandle) -> None:
    results = retrieve(emulator, CONTEXT_QUESTION, numberOfResults=100)
    keys = [(-r["score"], r["metadata"]["x-amz-bedrock-kb-chunk-id"]) for r in results]
    assert keys == sorted(keys)
    assert len({r["score"] for r in results}) < len(results), "the query must produce a tie"


def test_a_korean_question_finds_the_korean_passage(emulator: EmulatorHandle) -> None:
    results = retrieve(emulator, "Nova Micro의 컨텍스트 창은 얼마인가요?")
    assert ids(results)[0] == "nova-micro-ko"
    # The particle in 모델은 does not hide the noun: character bigrams match 모델.
    assert "nova-pro-ko" in ids(retrieve(emulator, "멀티모달 모델은 무엇인가요"))


def test_five_results_by_default_and_none_without_a_shared_word(emulator: EmulatorHandle) -> None:
    assert len(retrieve(emulator, "Amazon Nova models")) == 5
    assert retrieve(emulator, "zebra sandwich recipes") == []
    assert retrieve(emulator, "") == []


def test_number_of_results_is_1_to_100(emulator: EmulatorHandle) -> None:
    assert len(retrieve(emulator, "Amazon Bedrock", numberOfResults=1)) == 1
    assert len(retrieve(emulator, "Amazon Bedrock", numberOfResults=100)) > 5
    for count, bound in ((0, "greater than or equal to 1"), (101, "less than or equal to 100")):
        code, message, status = refusal(
            lambda c=count: retrieve(emulator, "Amazon Bedrock", validate=False, numberOfResults=c)
        )
        assert (code, status) == ("ValidationException", 400)
        assert f"Value '{count}'" in message and bound in message


def test_the_search_type_is_accepted_recorded_and_scored_alike(emulator: EmulatorHandle) -> None:
    plain = retrieve(emulator, "hybrid keyword search")
    hybrid = retrieve(emulator, "hybrid keyword search", overrideSearchType="HYBRID")
    semantic = retrieve(emulator, "hybrid keyword search", overrideSearchType="SEMANTIC")
    assert plain == hybrid == semantic and ids(plain)[0] == "kb-hybrid-search-en"
    logged = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    assert [e["status"] for e in logged] == [200, 200, 200]
    assert [e["model_id"] for e in logged] == [KB, KB, KB]
    vector = logged[1]["body"]["retrievalConfiguration"]["vectorSearchConfiguration"]
    assert vector["overrideSearchType"] == "HYBRID"
    code, message, _ = refusal(
        lambda: retrieve(emulator, "x", validate=False, overrideSearchType="KEYWORD")
    )
    assert code == "ValidationException" and "[HYBRID, SEMANTIC]" in message


@pytest.mark.parametrize(
    ("spec", "keeps"),
    [
        ({"equals": {"key": "lang", "value": "ko"}}, lambda m: m["lang"] == "ko"),
        ({"notEquals": {"key": "lang", "value": "ko"}}, lambda m: m["lang"] == "en"),
        (
            {"in": {"key": "topic", "value": ["pricing", "guardrails"]}},
            lambda m: m["topic"] in ("pricing", "guardrails"),
        ),
        (
            {
                "andAll": [
                    {"equals": {"key": "lang", "value": "en"}},
                    {"equals": {"key": "topic", "value": "nova"}},
                ]
            },
            lambda m: m["lang"] == "en" and m["topic"] == "nova",
        ),
        (
            {
                "orAll": [
                    {"equals": {"key": "topic", "value": "pricing"}},
                    {"equals": {"key": "topic", "value": "guardrails"}},
                ]
            },
            lambda m: m["topic"] in ("pricing", "guardrails"),
        ),
        ({"equals": {"key": "missing", "value": "x"}}, lambda m: False),
        ({"notEquals": {"key": "missing", "value": "x"}}, lambda m: True),
    ],
)
def test_metadata_filters_keep_only_matching_passages(
    emulator: EmulatorHandle, spec: dict[str, Any], keeps: Any
) -> None:
    query = "Amazon Bedrock Nova 모델 pricing guardrails"
    ranked = retrieval.rank(knowledge_base.corpus(), query)
    expected = [s.passage.id for s in ranked if keeps(s.passage.metadata)][:100]
    results = retrieve(emulator, query, numberOfResults=100, filter=spec)
    assert ids(results) == expected
    assert all(keeps(r["metadata"]) for r in results)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"startsWith": {"key": "lang", "value": "k"}}, "startsWith is not supported"),
        ({"greaterThan": {"key": "lang", "value": 1}}, "greaterThan is not supported"),
        ({"andAll": [{"equals": {"key": "lang", "value": "ko"}}]}, "greater than or equal to 2"),
        ({"in": {"key": "lang", "value": "ko"}}, "non-empty list"),
        (
            {"equals": {"key": "lang", "value": "ko"}, "notEquals": {"key": "lang", "value": "en"}},
            "exactly one filter operator",
        ),
    ],
)
def test_a_filter_outside_the_supported_ones_is_a_validation_error(
    emulator: EmulatorHandle, spec: dict[str, Any], words: str
) -> None:
    code, message, status = refusal(lambda: retrieve(emulator, "Nova", validate=False, filter=spec))
    assert (code, status) == ("ValidationException", 400)
    assert words in message


def test_a_knowledge_base_not_active_is_a_conflict(emulator: EmulatorHandle) -> None:
    code, message, status = refusal(lambda: retrieve(emulator, "Nova", kb="KBNOTREADY"))
    assert (code, message, status) == (
        "ConflictException",
        "Knowledge base KBNOTREADY is not ACTIVE (status CREATING).",
        409,
    )


def test_unknown_and_malformed_knowledge_base_ids(emulator: EmulatorHandle) -> None:
    for unknown, validate in (("KBMISSING1", True), ("KB1", False)):
        code, message, status = refusal(
            lambda u=unknown, v=validate: retrieve(emulator, "Nova", kb=u, validate=v)
        )
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert unknown in message
    code, message, status = refusal(lambda: retrieve(emulator, "Nova", kb="KB_DUALNOV"))
    assert (code, status) == ("ValidationException", 400)
    assert "knowledgeBaseId" in message
    logged = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    assert [e["error"] for e in logged] == [
        "ResourceNotFoundException",
        "ResourceNotFoundException",
        "ValidationException",
    ]


def test_retrieve_takes_the_knowledge_bases_arn(emulator: EmulatorHandle) -> None:
    arn = f"arn:aws:bedrock:us-east-1:123456789012:knowledge-base/{KB}"
    assert retrieve(emulator, CONTEXT_QUESTION, kb=arn) == retrieve(emulator, CONTEXT_QUESTION)
    missing = arn.replace(KB, "KBMISSING1")
    code, message, status = refusal(lambda: retrieve(emulator, "Nova", kb=missing))
    assert (code, status) == ("ResourceNotFoundException", 404) and "KBMISSING1" in message


def test_a_missing_query_is_a_validation_error(emulator: EmulatorHandle) -> None:
    runtime = client(emulator, "bedrock-agent-runtime", validate=False)
    code, message, _ = refusal(lambda: runtime.retrieve(knowledgeBaseId=KB, retrievalQuery={}))
    assert code == "ValidationException" and "retrievalQuery.text" in message


def test_faults_apply_to_retrieve_when_a_rule_names_it(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="throttling")  # Converse's by default: Retrieve is untouched
    assert retrieve(emulator, CONTEXT_QUESTION)
    emulator.clear_faults()
    emulator.add_fault(kind="throttling", operations=["Retrieve"], times=1)
    code, message, status = refusal(lambda: retrieve(emulator, CONTEXT_QUESTION))
    assert (code, status) == ("ThrottlingException", 429)
    assert message == "Too many requests, please wait before trying again."
    assert retrieve(emulator, CONTEXT_QUESTION)
    logged = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    assert [(e["status"], e["fault"]) for e in logged] == [
        (200, None),
        (429, "throttling"),
        (200, None),
    ]


def test_a_throttled_retrieve_is_retried_by_botocore(emulator: EmulatorHandle) -> None:
    """ThrottlingException is retryable: botocore's standard retries get the second answer."""
    emulator.add_fault(kind="throttling", operations=["Retrieve"], times=1)
    retrying = boto3.client(
        "bedrock-agent-runtime",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 2}),
    )
    response = retrying.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": CONTEXT_QUESTION})
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert ids(response["retrievalResults"])[0] == "nova-micro-en"


# --- GetKnowledgeBase -------------------------------------------------------------------------


def test_get_knowledge_base_describes_both_knowledge_bases(emulator: EmulatorHandle) -> None:
    agent = client(emulator, "bedrock-agent")
    active = agent.get_knowledge_base(knowledgeBaseId=KB)["knowledgeBase"]
    assert active["knowledgeBaseId"] == KB and active["status"] == "ACTIVE"
    assert (
        active["knowledgeBaseArn"] == "arn:aws:bedrock:us-east-1:123456789012:knowledge-base/" + KB
    )
    assert active["knowledgeBaseConfiguration"]["type"] == "VECTOR"
    embedding = active["knowledgeBaseConfiguration"]["vectorKnowledgeBaseConfiguration"]
    assert embedding["embeddingModelArn"].startswith("arn:aws:bedrock:us-east-1::foundation-model/")
    assert active["storageConfiguration"]["type"] == "OPENSEARCH_SERVERLESS"
    assert active["roleArn"].startswith("arn:aws:iam::123456789012:role/")
    assert isinstance(active["createdAt"], datetime) and active["createdAt"].tzinfo is not None
    assert active["updatedAt"] >= active["createdAt"] and active["createdAt"] < datetime.now(UTC)
    waiting = agent.get_knowledge_base(knowledgeBaseId="KBNOTREADY")["knowledgeBase"]
    assert waiting["status"] == "CREATING"
    code, message, status = refusal(lambda: agent.get_knowledge_base(knowledgeBaseId="KBMISSING1"))
    assert (code, status) == ("ResourceNotFoundException", 404) and "KBMISSING1" in message
    logged = [e for e in emulator.requests() if e["operation"] == "GetKnowledgeBase"]
    assert [(e["model_id"], e["status"]) for e in logged] == [
        (KB, 200),
        ("KBNOTREADY", 200),
        ("KBMISSING1", 404),
    ]
    assert all(e["authorization"] and e["access_key"] == "testing" for e in logged)


def test_faults_apply_to_get_knowledge_base(emulator: EmulatorHandle) -> None:
    emulator.add_fault(kind="service_unavailable", operations=["GetKnowledgeBase"], times=1)
    agent = client(emulator, "bedrock-agent")
    code, _, status = refusal(lambda: agent.get_knowledge_base(knowledgeBaseId=KB))
    assert (code, status) == ("ServiceUnavailableException", 503)
    assert agent.get_knowledge_base(knowledgeBaseId=KB)["knowledgeBase"]["status"] == "ACTIVE"


def test_knowledge_base_calls_need_credentials(emulator: EmulatorHandle) -> None:
    rejected = boto3.client(
        "bedrock-agent-runtime",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="INVALIDKEY",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    code, _, status = refusal(
        lambda: rejected.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "Nova"})
    )
    assert (code, status) == ("UnrecognizedClientException", 403)


# --- grounded answers and citations -----------------------------------------------------------


def grounded_turn(*passages: str, question: str = "What is Nova Micro?") -> dict[str, Any]:
    blocks = [{"text": f"[S{i}] {text}"} for i, text in enumerate(passages, start=1)]
    blocks.append({"text": "Answer from the sources above and cite them as [S1], [S2]."})
    blocks.append({"text": question})
    return {"role": "user", "content": blocks}


def streamed(emulator: EmulatorHandle, model: str, messages: list[dict[str, Any]]) -> list[dict]:
    runtime = client(emulator, "bedrock-runtime")
    return list(runtime.converse_stream(modelId=model, messages=messages)["stream"])


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )


def test_a_grounded_turn_is_answered_from_its_first_source(emulator: EmulatorHandle) -> None:
    micro = knowledge_base.corpus()[4]
    assert micro.id == "nova-micro-en"
    messages = [grounded_turn(micro.text, "Amazon Nova Pro is multimodal. It reads images.")]
    first = "Amazon Nova Micro is a text-only model that gives the lowest latency responses in the"
    assert text_of(streamed(emulator, MICRO, messages)).startswith(f"According to [S1], {first}")
    assert text_of(streamed(emulator, MICRO, messages)) == (
        "According to [S1], " + micro.text.split(". ")[0] + "."
    )
    pro = text_of(streamed(emulator, "us.amazon.nova-pro-v1:0", messages))
    assert pro == "According to [S1], " + micro.text.split(". ")[0] + ". See also [S2]."
    # Exactly what compose_answer says, so services can compute it too.
    assert pro == compose_answer(PRO, {"messages": messages}).text
    one_source = [grounded_turn("Nova Sonic speaks! It listens too.")]
    assert text_of(streamed(emulator, PRO, one_source)) == "According to [S1], Nova Sonic speaks!"
    # Converse (not streamed) answers the same.
    converse = client(emulator, "bedrock-runtime").converse(modelId=PRO, messages=messages)
    assert converse["output"]["message"]["content"] == [{"text": pro}]


def test_a_turn_without_source_blocks_is_answered_as_before(emulator: EmulatorHandle) -> None:
    messages = [{"role": "user", "content": [{"text": "Tell me about [S1] please"}]}]
    text = text_of(streamed(emulator, MICRO, messages))
    assert not text.startswith("According to")
    assert text == compose_answer(MICRO, {"messages": messages}).text


def cited_document(enabled: bool) -> dict[str, Any]:
    return {
        "document": {
            "format": "txt",
            "name": "Nova notes",
            "source": {"bytes": b"Amazon Nova Pro reads documents and cites them."},
            "citations": {"enabled": enabled},
        }
    }


def test_a_document_with_citations_enabled_is_cited_after_the_first_delta(
    emulator: EmulatorHandle,
) -> None:
    messages = [{"role": "user", "content": [cited_document(True), {"text": "Summarise it"}]}]
    deltas = [
        e["contentBlockDelta"]
        for e in streamed(emulator, PRO, messages)
        if "contentBlockDelta" in e
    ]
    assert "text" in deltas[0]["delta"]
    citation = deltas[1]["delta"]["citation"]
    assert deltas[1]["contentBlockIndex"] == 0
    assert {k: v for k, v in citation.items() if k != "p"} == {
        "title": "Nova notes",
        "sourceContent": [{"text": "Amazon Nova Pro reads documents and cite"}],
        "location": {"documentChar": {"documentIndex": 0, "start": 0, "end": 40}},
    }
    assert sum("citation" in d["delta"] for d in deltas) == 1
    assert all("text" in d["delta"] for d in deltas[2:])
    # The citation adds no text: the answer is the one compose_answer gives.
    assert (
        "".join(d["delta"].get("text", "") for d in deltas)
        == compose_answer(PRO, json.loads(json.dumps({"messages": _encoded(messages)}))).text
    )


def test_no_citation_unless_the_document_asks_for_one(emulator: EmulatorHandle) -> None:
    messages = [{"role": "user", "content": [cited_document(False), {"text": "Summarise it"}]}]
    events = streamed(emulator, PRO, messages)
    assert not any(
        "citation" in e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e
    )


def _encoded(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as boto3 puts them on the wire (document bytes in base64)."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    return [encode(m) for m in messages]
