"""The knowledge-base health name: GetKnowledgeBase only, never a paid Retrieve.

The system this replaces ran a real retrieve("test") on every health check.
Here the inference service asks bedrock-agent's GetKnowledgeBase (free) every
probe interval: SERVING while the knowledge base is ACTIVE, NOT_SERVING with
the status or Bedrock's error as the reason otherwise, logged once per
transition and listed by HealthDetailsService. The name is there only when
DUALNOVA_KNOWLEDGE_BASE_ID is set, and it never takes the server ("") out of
rotation: a Chat without grounding is served whatever the knowledge base's
state. Each service here probes this module's own emulator every 0.5 s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from health_support import check, listed, start_inference, wait_for_statuses
from polling import wait_until

from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.health.v1 import health_pb2 as details_pb2
from dualnova.health.v1 import health_pb2_grpc as details_pb2_grpc

NAME = "knowledge-base"


def agent_endpoints(emulator: EmulatorHandle) -> dict[str, str]:
    url = emulator.aws_env()["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    return {"AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": url, "AWS_ENDPOINT_URL_BEDROCK_AGENT": url}


@pytest.fixture
def kb_service(
    own_emulator: EmulatorHandle, log_dir: Path, request: pytest.FixtureRequest
) -> Iterator[ServiceHandle]:
    """An inference service probing the knowledge base the test names (its param)."""
    own_emulator.reset()
    knowledge_base = request.param
    handle = start_inference(
        own_emulator,
        log_dir,
        f"kb-{request.node.originalname.removeprefix('test_')[:40]}",
        **agent_endpoints(own_emulator),
        DUALNOVA_KNOWLEDGE_BASE_ID=knowledge_base,
    )
    yield handle
    handle.stop()


def operations(emulator: EmulatorHandle) -> list[str]:
    return [entry["operation"] for entry in emulator.requests()]


def reasons(address: str) -> dict[str, tuple[str, str]]:
    """Each name's (status, reason), from dualnova.health.v1 ListDetails."""
    with grpc.insecure_channel(address) as channel:
        response = details_pb2_grpc.HealthDetailsServiceStub(channel).ListDetails(
            details_pb2.ListDetailsRequest(), timeout=5
        )
    return {
        name: (details_pb2.ServingStatus.Name(detail.status), detail.reason)
        for name, detail in response.details.items()
    }


def transitions(log: Path | None) -> list[str]:
    assert log is not None
    lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
    return [
        line["message"] for line in lines if line["message"].startswith(f"health {NAME!r} is now")
    ]


@pytest.mark.parametrize("kb_service", ["KBDUALNOVA"], indirect=True)
def test_an_active_knowledge_base_is_serving_from_get_knowledge_base_alone(
    kb_service: ServiceHandle, own_emulator: EmulatorHandle
) -> None:
    assert check(kb_service.address, NAME) == "SERVING"
    # Several probe rounds, and not one Retrieve among them.
    wait_until(
        lambda: operations(own_emulator).count("GetKnowledgeBase") >= 3,
        "three GetKnowledgeBase probes",
    )
    assert "Retrieve" not in operations(own_emulator)
    probes = [e for e in own_emulator.requests() if e["operation"] == "GetKnowledgeBase"]
    assert {e["status"] for e in probes} == {200}
    assert transitions(kb_service.log_path) == [
        "health 'knowledge-base' is now SERVING: GetKnowledgeBase says the knowledge base is ACTIVE"
    ]


@pytest.mark.parametrize("kb_service", ["KBNOTREADY"], indirect=True)
def test_a_knowledge_base_that_is_not_active_is_not_serving_with_its_status(
    kb_service: ServiceHandle, own_emulator: EmulatorHandle
) -> None:
    statuses = wait_for_statuses(kb_service.address, {NAME: "NOT_SERVING"})
    # The server still serves Chat: the knowledge base is optional.
    assert statuses[""] == "SERVING"
    reason = "GetKnowledgeBase: knowledge base KBNOTREADY is CREATING"
    assert reasons(kb_service.address)[NAME] == ("SERVING_STATUS_NOT_SERVING", reason)
    assert transitions(kb_service.log_path) == [
        f"health 'knowledge-base' is now NOT_SERVING: {reason}"
    ]
    assert "Retrieve" not in operations(own_emulator)


@pytest.mark.parametrize("kb_service", ["KBUNKNOWN1"], indirect=True)
def test_an_unknown_knowledge_base_is_not_serving_with_bedrocks_error(
    kb_service: ServiceHandle, own_emulator: EmulatorHandle
) -> None:
    wait_for_statuses(kb_service.address, {NAME: "NOT_SERVING", "": "SERVING"})
    status, reason = reasons(kb_service.address)[NAME]
    assert status == "SERVING_STATUS_NOT_SERVING"
    assert reason.startswith("GetKnowledgeBase: ResourceNotFoundException: ")
    assert "Retrieve" not in operations(own_emulator)


@pytest.mark.parametrize("kb_service", ["KBDUALNOVA"], indirect=True)
def test_a_failing_control_plane_turns_the_name_not_serving_and_back(
    kb_service: ServiceHandle, own_emulator: EmulatorHandle
) -> None:
    assert check(kb_service.address, NAME) == "SERVING"
    own_emulator.add_fault(kind="internal", operations=["GetKnowledgeBase"], times=1000)
    wait_for_statuses(kb_service.address, {NAME: "NOT_SERVING"})
    assert "InternalServerException" in reasons(kb_service.address)[NAME][1]
    own_emulator.clear_faults()
    wait_for_statuses(kb_service.address, {NAME: "SERVING"})
    assert [message.split(":")[0] for message in transitions(kb_service.log_path)] == [
        "health 'knowledge-base' is now SERVING",
        "health 'knowledge-base' is now NOT_SERVING",
        "health 'knowledge-base' is now SERVING",
    ]
    assert "Retrieve" not in operations(own_emulator)


def test_without_a_knowledge_base_there_is_no_such_name(
    own_emulator: EmulatorHandle, log_dir: Path
) -> None:
    own_emulator.reset()
    handle = start_inference(own_emulator, log_dir, "kb-none")
    try:
        assert NAME not in listed(handle.address)
        with grpc.insecure_channel(handle.address) as channel:
            with pytest.raises(grpc.RpcError) as raised:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=NAME), timeout=5
                )
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert "GetKnowledgeBase" not in operations(own_emulator)
    finally:
        handle.stop()
