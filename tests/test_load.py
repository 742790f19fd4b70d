"""500 and 1,000 DualChats at once through the emulator, inference service and gateway, all exact.

The processes are this module's own (pace 0, a stream cap far above the
load), so nothing here waits on pacing and nothing shares their queues with
other tests. Every call asks its own question, so a delta that reached the
wrong caller, or the wrong route, changes an answer. Each answer is compared
with the emulator's deterministic answer function, each usage with what the
emulator's request log says it sent, and each stream must carry exactly one
start, usage and stop per route and one summary, last.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from gateway_client import DualChatSeen, read_dual_chat, route_converse_request
from processes import SERVICE_DEFAULTS
from usage_shape import usage_dict

from bedrock_emulator.answers import compose_answer
from dualnova.dev.stack import Stack
from dualnova.gateway.v1 import gateway_pb2_grpc

CONCURRENCY = (500, 1000)
# A few connections, as a handful of client processes would open.
CHANNELS = 4
# Seconds any one DualChat may take; the whole run must end well inside the test timeout.
CALL_TIMEOUT_S = 90
MODELS = {"micro": "amazon.nova-micro-v1:0", "pro": "amazon.nova-pro-v1:0"}
SINGLE_EVENTS = ("start", "usage", "stop")


def question(index: int) -> str:
    return f"Load question {index}: how does call number {index} stay apart from the others?"


async def run_load(address: str, questions: Sequence[str], channels: int) -> list[DualChatSeen]:
    """All questions as concurrent DualChats, spread over `channels` connections."""
    opened = [
        # A distinct argument per channel, so each gets a connection of its own.
        grpc.aio.insecure_channel(address, options=[("dualnova.test.channel", index)])
        for index in range(channels)
    ]
    try:
        stubs = [gateway_pb2_grpc.GatewayStub(channel) for channel in opened]
        return await asyncio.gather(
            *(
                read_dual_chat(stubs[i % channels], text, CALL_TIMEOUT_S)
                for i, text in enumerate(questions)
            )
        )
    finally:
        await asyncio.gather(*(channel.close() for channel in opened))


def problems(calls: Sequence[DualChatSeen], log: Sequence[dict[str, Any]]) -> list[str]:
    """Everything wrong with the calls, compared with the answers and the emulator's log."""
    streams = [entry for entry in log if entry["operation"] == "ConverseStream"]
    by_id = {entry["id"]: entry for entry in streams}
    found = []
    if len(by_id) != len(streams):
        found.append("the emulator logged a request id twice")
    if len(streams) != 2 * len(calls):
        found.append(f"{len(streams)} Bedrock streams for {len(calls)} DualChats")
    for call in calls:
        where = f"DualChat {call.question[:20]!r}"
        if call.status != "OK":
            found.append(f"{where}: ended with {call.status}")
            continue
        if call.summaries != 1 or not call.summary_last:
            found.append(f"{where}: {call.summaries} summaries, summary last: {call.summary_last}")
        if set(call.routes) != set(MODELS):
            found.append(f"{where}: events for routes {sorted(call.routes)}")
            continue
        for route, model in MODELS.items():
            seen = call.routes[route]
            singles = {kind: seen.kinds.count(kind) for kind in (*SINGLE_EVENTS, "error")}
            if singles != {"start": 1, "usage": 1, "stop": 1, "error": 0}:
                found.append(f"{where} {route}: event counts {Counter(seen.kinds)}")
                continue
            expected = compose_answer(model, route_converse_request(route, call.question))
            if seen.text != expected.text:
                found.append(f"{where} {route}: text differs from the emulator's answer")
            entry = by_id.get(seen.request_id)
            if entry is None or entry["model_id"] != model or not entry["completed"]:
                found.append(f"{where} {route}: no completed Bedrock stream {seen.request_id!r}")
            elif usage_dict(seen.usage) != entry["usage"] or entry["usage"] != expected.usage():
                found.append(f"{where} {route}: usage {seen.usage} is not what the emulator sent")
    return found


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir: Path = tmp_path_factory.mktemp("load")
    with Stack(
        pace=0,
        log_dir=log_dir,
        inference_env={**SERVICE_DEFAULTS, "INFERENCE_MAX_STREAMS": str(4 * max(CONCURRENCY))},
        gateway_env=SERVICE_DEFAULTS,
    ) as stack:
        yield stack


@pytest.mark.timeout(120)
# 1,000 DualChats are 2,000 Chats at once upstream: past gRPC's default pending-call limit.
@pytest.mark.parametrize("concurrency", [500, 1000])
def test_concurrent_dual_chats_are_each_exact_and_complete(
    load_stack: Stack, concurrency: int
) -> None:
    load_stack.emulator.reset()
    questions = [question(index) for index in range(concurrency)]

    started = time.monotonic()
    calls = asyncio.run(run_load(load_stack.gateway.address, questions, CHANNELS))
    elapsed = time.monotonic() - started

    found = problems(calls, load_stack.emulator.requests())
    assert not found, f"{len(found)} problems in {elapsed:.1f} s, first: {found[:10]}"
