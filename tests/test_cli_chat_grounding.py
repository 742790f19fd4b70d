"""`dualnova chat` grounded in a Knowledge Base, and the estimated cost in its table.

Through the session's three processes (the emulator's knowledge base
KBDUALNOVA): the passages the CLI shows are the ones the emulator's own
ranking (bedrock_emulator.retrieval.rank over its corpus) puts first, before
any answer, and the answers are the emulator's grounded ones ("According to
[S1], ..."). `--ground` (the server's default knowledge base) runs against a
pair of its own whose inference service has DUALNOVA_KNOWLEDGE_BASE_ID. The
cost column is the routes' tokens times dualnova.pricing's built-in prices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from cli_chat_support import (
    MODELS,
    cost,
    dualnova,
    expected,
    on_terminal,
    priced,
    route_streams,
    table_rows,
)
from telemetry_support import Pair, running_pair

from bedrock_emulator.grounding import first_sentence
from bedrock_emulator.knowledge_base import ACTIVE_ID, corpus, source_uri
from bedrock_emulator.retrieval import Scored, rank
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.pricing import DEFAULT_PRICES, TOKENS_PER_PRICE

QUESTION = "What is Amazon Nova Micro?"


def ranked(question: str = QUESTION, count: int = 5) -> list[Scored]:
    """The passages the emulator's Retrieve returns for `question`, most relevant first."""
    return rank(corpus(), question)[:count]


def grounded_answer(route: str, passages: list[Scored]) -> str:
    """The emulator's grounded answer on `route` (Pro also points at S2)."""
    text = f"According to [S1], {first_sentence(passages[0].passage.text)}"
    return text + (" See also [S2]." if route == "pro" and len(passages) > 1 else "")


def source_lines(passages: list[Scored]) -> list[str]:
    """The start of each passage line of the plain view: source id, score, location."""
    return [
        f"[sources] [S{i}] {scored.score:.6f} {source_uri(scored.passage.id)} "
        for i, scored in enumerate(passages, start=1)
    ]


def grounded_blocks(entry: dict[str, object]) -> list[str]:
    """The `[Sn] ` text blocks of a ConverseStream request's last user turn."""
    body = entry["body"]
    assert isinstance(body, dict)
    content = body["messages"][-1]["content"]
    return [block["text"] for block in content if block.get("text", "").startswith("[S")]


def test_chat_shows_the_ranked_passages_before_the_grounded_answers(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova(
        "chat", "--gateway", gateway.address, "--knowledge-base", ACTIVE_ID, "--results", "3",
        QUESTION,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    passages = ranked(count=3)
    assert len(passages) == 3
    assert lines[0].startswith(f"[sources] sources from {ACTIVE_ID}: 3 passages (")
    for line, start, scored in zip(lines[1:4], source_lines(passages), passages, strict=True):
        assert line.startswith(start), (line, start)
        excerpt = line.removeprefix(start).strip('"').removesuffix("...")
        assert " ".join(scored.passage.text.split()).startswith(excerpt)
    # The passages come first, then the answers: the emulator's grounded ones.
    assert f"[micro] {grounded_answer('micro', passages)}" in lines[4:]
    assert f"[pro] {grounded_answer('pro', passages)}" in lines[4:]
    # Both routes were sent the same passages, in rank order.
    streams = route_streams(emulator)
    expected_blocks = [f"[S{i}] {s.passage.text}" for i, s in enumerate(passages, start=1)]
    assert grounded_blocks(streams["micro"]) == grounded_blocks(streams["pro"]) == expected_blocks
    assert [e["operation"] for e in emulator.requests()].count("Retrieve") == 1


def test_search_and_filter_shape_the_retrieve_and_a_route_may_answer_without(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    lang = {"equals": {"key": "lang", "value": "en"}}
    result = dualnova(
        "chat", "--gateway", gateway.address, "--knowledge-base", ACTIVE_ID,
        "--search", "semantic", "--filter", json.dumps(lang), "--pro-no-grounding", QUESTION,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    (retrieve,) = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    config = retrieve["body"]["retrievalConfiguration"]["vectorSearchConfiguration"]
    assert config["overrideSearchType"] == "SEMANTIC"
    assert config["filter"] == lang
    english = [p for p in corpus() if p.metadata["lang"] == "en"]
    passages = rank(english, QUESTION)[:5]
    assert f"[micro] {grounded_answer('micro', passages)}" in result.stdout.splitlines()
    # Pro got the plain question and answered it as it always does.
    assert grounded_blocks(route_streams(emulator)["pro"]) == []
    assert f"[pro] {expected('pro', QUESTION).text}" in result.stdout.splitlines()


def test_json_carries_the_retrieval_first_and_the_cost_in_the_summary(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova(
        "chat", "--gateway", gateway.address, "--json", "--knowledge-base", ACTIVE_ID,
        "--results", "2", QUESTION,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    first = records[0]
    assert first["type"] == "retrieval" and "route" not in first
    assert first["knowledge_base_id"] == ACTIVE_ID and first["query"] == QUESTION
    passages = ranked(count=2)
    assert [(p["source_id"], p["score"], p["location_uri"]) for p in first["passages"]] == [
        (f"S{i}", s.score, source_uri(s.passage.id)) for i, s in enumerate(passages, start=1)
    ]
    summary = records[-1]
    assert summary["type"] == "summary"
    costs = summary["cost_by_route"]
    assert set(costs) == {"micro", "pro"} and all(c["estimated"] for c in costs.values())
    for route in ("micro", "pro"):
        usage = summary["usage_by_route"][route]
        price = DEFAULT_PRICES[MODELS[route]]
        by_tokens = usage["input_tokens"] * price.input + usage["output_tokens"] * price.output
        assert costs[route]["total_usd"] == pytest.approx(by_tokens / TOKENS_PER_PRICE)
    assert summary["total_cost"]["total_usd"] == pytest.approx(
        costs["micro"]["total_usd"] + costs["pro"]["total_usd"]
    )


def test_the_table_estimates_each_routes_cost_and_the_total(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    question = "부산 여행 일정 좀 짜줘"
    result = dualnova("chat", "--gateway", gateway.address, question)

    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    header = next(line for line in result.stdout.splitlines() if line.startswith("route"))
    assert header.rstrip().endswith("est. cost")
    micro = priced(expected("micro", question), "micro")
    pro = priced(expected("pro", question), "pro")
    assert cost(rows["micro"]) == f"${micro:.6f}"
    assert cost(rows["pro"]) == f"${pro:.6f}"
    assert cost(rows["total"]) == f"${micro + pro:.6f}"


def test_the_live_view_shows_the_passages_above_the_answers_and_the_cost(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    passages = ranked(count=2)
    with on_terminal(
        "chat", "--gateway", gateway.address, "--knowledge-base", ACTIVE_ID, "--results", "2",
        QUESTION,
    ) as child:  # fmt: skip
        child.expect_exact(f"sources from {ACTIVE_ID}: 2 passages")
        child.expect_exact(f"[S1] {passages[0].score:.6f} {source_uri(passages[0].passage.id)}")
        child.expect_exact(f"[S2] {passages[1].score:.6f} {source_uri(passages[1].passage.id)}")
        child.expect_exact("According to [S1]")
        child.expect_exact("est. cost")
        child.expect_exact("trace id:")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--results", "3"), "--results goes with --ground or --knowledge-base ID"),
        (("--pro-no-grounding",), "--pro-no-grounding goes with --ground or --knowledge-base ID"),
        (("--ground", "--results", "0"), "--results must be between 1 and 100, got 0"),
        (("--ground", "--results", "many"), "--results expects a whole number, got 'many'"),
        (("--knowledge-base", "KB-1"), "--knowledge-base must be a knowledge base id"),
        (("--knowledge-base", ""), "--knowledge-base must not be empty"),
        (("--ground", "--filter", "{"), "--filter is not JSON"),
        (("--ground", "--filter", "[1]"), "--filter must be a JSON object"),
        (
            ("--ground", "--micro-no-grounding", "--pro-no-grounding"),
            "together leave nothing grounded",
        ),
    ],
)
def test_bad_grounding_flags_are_usage_errors_naming_the_flag(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    # Nothing listens at this gateway: a usage error is found before any call.
    result = dualnova("chat", "--gateway", "127.0.0.1:9", *args, "hello")

    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("dualnova chat: ") and says in result.stderr


def test_search_and_ground_conflicts_are_argparse_usage_errors() -> None:
    result = dualnova("chat", "--ground", "--knowledge-base", ACTIVE_ID, "hello")
    assert result.returncode == 2
    assert "not allowed with argument --ground" in result.stderr
    result = dualnova("chat", "--ground", "--search", "keyword", "hello")
    assert result.returncode == 2 and "argument --search: invalid choice" in result.stderr


def test_ground_without_a_default_knowledge_base_is_the_gateways_refusal(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    result = dualnova("chat", "--gateway", gateway.address, "--ground", QUESTION)

    assert result.returncode == 2, result
    assert "the gateway refused the request" in result.stderr
    assert "DUALNOVA_KNOWLEDGE_BASE_ID" in result.stderr
    assert not [e for e in emulator.requests() if e["operation"] != "GetKnowledgeBase"]


@pytest.fixture(scope="module")
def defaulted(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A pair whose inference service retrieves from KBDUALNOVA by default."""
    with running_pair(
        emulator,
        tmp_path_factory.mktemp("cli-ground"),
        inference_env={"DUALNOVA_KNOWLEDGE_BASE_ID": ACTIVE_ID},
    ) as started:
        yield started


def test_ground_uses_the_servers_default_knowledge_base(
    defaulted: Pair, emulator: EmulatorHandle
) -> None:
    emulator.reset()  # the pair's health probes (GetKnowledgeBase) ran before this test
    result = dualnova("chat", "--gateway", defaulted.gateway.address, "--ground", QUESTION)

    assert result.returncode == 0, result.stderr
    passages = ranked()
    assert result.stdout.startswith(f"[sources] sources from {ACTIVE_ID}: 5 passages")
    assert f"[micro] {grounded_answer('micro', passages)}" in result.stdout.splitlines()
    (retrieve,) = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    assert ACTIVE_ID in json.dumps(retrieve)


def test_cite_makes_pro_cite_its_document_shown_as_a_line_of_its_route(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    document = tmp_path / "busan notes.txt"
    text = "Day 1: Haeundae beach at sunrise, then the fish market in Jagalchi."
    document.write_text(text, encoding="utf-8")
    args = ("chat", "--gateway", gateway.address, "--document", str(document), "--cite")

    result = dualnova(*args, "Summarise it.")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The citation follows Pro's text, which stays one whole line.
    (answer,) = [line for line in lines if line.startswith("[pro] ") and "cites" not in line]
    assert lines[lines.index(answer) + 1] == f'[pro] cites busan notes: "{text[:40]}"'
    assert "[micro] cites" not in result.stdout
    (pro,) = [e for e in emulator.requests() if e.get("model_id") == MODELS["pro"]]
    (block,) = [b for b in pro["body"]["messages"][-1]["content"] if "document" in b]
    assert block["document"]["citations"] == {"enabled": True}

    records = [
        json.loads(line) for line in dualnova(*args, "--json", "Summarise it.").stdout.splitlines()
    ]
    (cited,) = [r for r in records if r["type"] == "citation"]
    assert cited["route"] == "pro" and cited["title"] == "busan notes"
    assert cited["source_text"] == text[:40]


def test_cite_without_a_document_is_a_usage_error() -> None:
    result = dualnova("chat", "--gateway", "127.0.0.1:9", "--cite", "hello")
    assert result.returncode == 2
    assert (
        result.stderr
        == "dualnova chat: --cite goes with --document (the documents Pro is to cite)\n"
    )
