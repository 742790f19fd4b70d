"""`dualnova repl` stops one route mid-answer on a key, and grounds each question.

On a pseudo-terminal (pexpect) against the three processes: Pro answers slowly
(the emulator's slow fault on its model), so pressing `p` lands mid-answer.
The emulator's request log is the witness: Pro's Bedrock stream is hung up
on, Micro's completes with exactly the text the emulator composed. The
conversation then continues from Micro's answer, and /save says which route
was stopped, with the estimated cost of the one that answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pexpect
import pytest
from cli_chat_support import priced
from polling import wait_until
from test_cli_repl import FIRST, SECOND, answer, ask, asked, command, conversation, micro, repl

from bedrock_emulator.knowledge_base import ACTIVE_ID, corpus
from bedrock_emulator.retrieval import rank
from dualnova.dev.stack import EmulatorHandle, ServiceHandle

MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}


def streams(emulator: EmulatorHandle) -> dict[str, list[dict[str, Any]]]:
    """The ConverseStream log entries per route, oldest first."""
    entries = [e for e in emulator.requests() if e["operation"] == "ConverseStream"]
    return {
        route: [e for e in entries if e["model_id"] == model] for route, model in MODELS.items()
    }


# Words of each route's answer that the other's lacks (both begin by quoting the question).
OWN_WORDS = {"micro": "짧게", "pro": "자세히"}


def stop_mid_answer(child: pexpect.spawn, emulator: EmulatorHandle, route: str) -> None:
    """Ask FIRST, press `route`'s key once its own words show, and check what Bedrock saw:
    only `route`'s stream hung up on, the other's answer complete and exact."""
    other = next(name for name in MODELS if name != route)
    assert OWN_WORDS[route] in answer(route, FIRST).text
    assert OWN_WORDS[route] not in answer(other, FIRST).text
    child.sendline(FIRST)
    child.expect_exact(OWN_WORDS[route])  # on screen: the route is mid-answer
    child.send("xq")  # not stop keys: both routes go on
    child.send(route[0])
    child.expect_exact("(stopped)")
    child.expect_exact(f"stopped: {route.capitalize()} (its partial answer is not continued)")
    child.expect(rf"{other.capitalize()}'s answer continues the conversation[^\r\n]*\r\n")
    child.expect_exact("you> ")
    wait_until(lambda: streams(emulator)[route][0]["disconnected"], f"{route}'s stream to close")
    logged = streams(emulator)
    assert logged[route][0]["completed"] is False
    assert logged[other][0]["completed"] and not logged[other][0]["disconnected"]
    assert logged[other][0]["response_text"] == answer(other, FIRST).text


def test_p_stops_pro_mid_answer_while_micro_answers_whole(
    gateway: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    # Pro pauses between deltas: it is still answering when its own words show.
    emulator.add_fault(kind="slow", model=MODELS["pro"], delay_ms=400)
    saved = tmp_path / "stopped.json"
    with repl("--gateway", gateway.address) as child:
        stop_mid_answer(child, emulator, "pro")
        command(child, f"/save {saved}")
        # The next question builds on Micro's answer, the stopped one left out.
        emulator.clear_faults()
        ask(child, SECOND)

    (turn,) = json.loads(saved.read_text(encoding="utf-8"))["turns"]
    assert turn["continued_with"] == "micro"
    assert turn["routes"]["pro"]["stopped"] is True
    assert turn["routes"]["pro"]["stop_reason"] is None
    assert turn["routes"]["pro"]["estimated_cost_usd"] is None
    assert turn["routes"]["micro"]["stopped"] is False
    micro_cost = priced(answer("micro", FIRST), "micro")
    assert turn["routes"]["micro"]["estimated_cost_usd"] == pytest.approx(micro_cost)
    assert turn["total_estimated_cost_usd"] == pytest.approx(micro_cost)
    history = conversation(("user", FIRST), ("assistant", micro(FIRST)), ("user", SECOND))
    assert asked(emulator)[-1]["pro"] == history


def test_m_stops_micro_and_pros_answer_continues(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    emulator.add_fault(kind="slow", model=MODELS["micro"], delay_ms=400)
    with repl("--gateway", gateway.address) as child:
        stop_mid_answer(child, emulator, "micro")


def test_a_grounded_repl_shows_each_questions_passages(
    gateway: ServiceHandle, emulator: EmulatorHandle
) -> None:
    question = "What is Amazon Nova Micro?"
    (best, *_) = rank(corpus(), question)
    with repl(
        "--gateway", gateway.address, "--knowledge-base", ACTIVE_ID, "--results", "2"
    ) as child:
        child.sendline(question)
        child.expect_exact(f"sources from {ACTIVE_ID}: 2 passages")
        child.expect_exact(f"[S1] {best.score:.6f}")
        child.expect_exact("According to [S1]")
        child.expect(r"continues the conversation[^\r\n]*\r\n")
    (retrieve,) = [e for e in emulator.requests() if e["operation"] == "Retrieve"]
    assert retrieve["body"]["retrievalQuery"]["text"] == question
    turn = asked(emulator)[-1]["micro"][-1]["content"]
    assert turn[0]["text"].startswith(f"[S1] {best.passage.text}")
