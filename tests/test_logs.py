"""Log lines: JSON with ids, tokens and status; no content unless asked for, never credentials.

Logs often travel further than the conversations may (shared log platforms,
support tickets), so prompt and answer text appear only when the operator
sets DUALNOVA_LOG_CONTENT=true, and AWS credentials never do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_client import ask, dual_chat, user
from polling import wait_until
from processes import SERVICE_DEFAULTS
from telemetry_support import log_lines

from dualnova.dev.stack import EMULATOR_CREDENTIALS, EmulatorHandle, ServiceHandle
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc


def test_lines_carry_ids_tokens_and_status_but_no_content_or_credentials(
    gateway: ServiceHandle, log_dir: Path
) -> None:
    question = f"Secret plans {secrets.token_hex(6)}"
    result = dual_chat(gateway.address, ask(question))
    trace_id = result.summary.trace_id

    inference_lines = wait_until(
        lambda: [
            line
            for line in log_lines(log_dir / "inference_service.log")
            if line.get("trace_id") == trace_id and line["message"] == "chat finished"
        ],
        "the inference service's log lines for the chat",
    )
    assert len(inference_lines) == 2
    for line in inference_lines:
        route = line["route"]
        usage = result.routes[route].usage
        assert line["request_id"] == result.routes[route].start.request_id
        assert (line["input_tokens"], line["output_tokens"]) == (
            usage.input_tokens,
            usage.output_tokens,
        )
        assert line["status"] == "OK" and line["level"] == "info"
        assert line["latency_ms"] > 0 and len(line["span_id"]) == 16
        assert "prompt" not in line and "answer" not in line

    text = (log_dir / "inference_service.log").read_text() + (log_dir / "gateway.log").read_text()
    assert question not in text
    assert result.routes["micro"].text not in text
    assert EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in text


@pytest.fixture(scope="module")
def content_logging_inference(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceHandle, Path]]:
    log_path = tmp_path_factory.mktemp("content-logs") / "inference_service.log"
    service = ServiceHandle(
        "inference service",
        "inference_service",
        "INFERENCE_LISTEN",
        {**SERVICE_DEFAULTS, **emulator.aws_env(), "DUALNOVA_LOG_CONTENT": "true"},
        log_path=log_path,
    )
    service.start()
    yield service, log_path
    service.stop()


def test_log_content_true_adds_the_prompt_and_the_answer(
    content_logging_inference: tuple[ServiceHandle, Path],
) -> None:
    service, log_path = content_logging_inference
    question = f"Log this question {secrets.token_hex(6)}"
    with grpc.insecure_channel(service.address) as channel:
        responses = list(
            inference_pb2_grpc.InferenceServiceStub(channel).Chat(
                inference_pb2.ChatRequest(model="micro", messages=[user(question)]),
                timeout=30,
            )
        )
    answer = "".join(r.delta.text for r in responses if r.HasField("delta"))
    line = wait_until(
        lambda: next(
            (
                line
                for line in log_lines(log_path)
                if line["message"] == "chat finished" and line.get("prompt")
            ),
            None,
        ),
        "a chat finished line with content",
    )
    assert line["prompt"] == [{"role": "user", "text": question}]
    assert line["answer"] == answer
    assert line["route"] == "direct"
    assert EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in log_path.read_text()


def test_a_refused_model_name_is_logged_cut_short(
    content_logging_inference: tuple[ServiceHandle, Path],
) -> None:
    service, log_path = content_logging_inference
    name = f"not-a-model-{secrets.token_hex(6)}-" + "x" * 10_000
    with grpc.insecure_channel(service.address) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            list(
                inference_pb2_grpc.InferenceServiceStub(channel).Chat(
                    inference_pb2.ChatRequest(model=name, messages=[user("Hello")]), timeout=30
                )
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    line = wait_until(
        lambda: next(
            (
                line
                for line in log_lines(log_path)
                if line["message"] == "chat finished" and name[:24] in str(line.get("model"))
            ),
            None,
        ),
        "the refused call's log line",
    )
    # The caller's text is cut to a short quote with its length, never logged whole.
    assert len(line["model"]) < 200 and f"({len(name)} characters)" in line["model"]
