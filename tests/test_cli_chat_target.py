"""`dualnova chat` pointed at something that is not a gateway says what it reached.

The usual slip is the inference service's port: its DualChat is UNIMPLEMENTED
("Method not found!"), which named neither the part reached nor the fix.
The inference service is recognised by reflection, or by its health name
when reflection is off (a server of the test's own stands in for that one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
from cli_chat_support import dualnova
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dualnova.dev.stack import ServiceHandle

INFERENCE_SERVICE = "dualnova.inference.v1.InferenceService"


@contextmanager
def grpc_server(health_names: list[str], reflected: list[str] | None) -> Iterator[str]:
    """A loopback gRPC server: health (these names SERVING) and, if given, reflection."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    for name in health_names:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if reflected is not None:
        reflection.enable_server_reflection((*reflected, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_the_inference_service_is_named_with_the_gateway_port_to_use(
    inference: ServiceHandle,
) -> None:
    result = dualnova("chat", "--gateway", inference.address, "hello?")

    assert result.returncode == 3
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"dualnova: {inference.address} is the DualNova inference service ({INFERENCE_SERVICE}),"
        " not a gateway;"
    ), line
    assert "try --gateway 127.0.0.1:50052" in line
    assert "DUALNOVA_GATEWAY" in line


def test_an_inference_service_without_reflection_is_known_by_its_health_name() -> None:
    with grpc_server(["", INFERENCE_SERVICE], reflected=None) as address:
        result = dualnova("chat", "--gateway", address, "hello?")

    assert result.returncode == 3
    assert f"{address} is the DualNova inference service" in result.stderr


def test_another_grpc_server_is_said_not_to_be_a_gateway_with_what_it_serves() -> None:
    with grpc_server([""], reflected=["acme.billing.v1.Billing"]) as address:
        result = dualnova("chat", "--gateway", address, "hello?")

    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert line == (
        f"dualnova: {address} answered but is not a DualNova gateway: it has no"
        " dualnova.gateway.v1.Gateway/DualChat (UNIMPLEMENTED: Method not found!);"
        " it serves acme.billing.v1.Billing;"
        " point --gateway (or DUALNOVA_GATEWAY) at the gateway (default 127.0.0.1:50052)"
    )


def test_json_output_ends_with_the_same_explanation(inference: ServiceHandle) -> None:
    result = dualnova("chat", "--json", "--gateway", inference.address, "hello?")

    assert result.returncode == 3
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["type"] == "call_error"
    assert record["code"] == "UNIMPLEMENTED"
    assert result.stderr.strip() == f"dualnova: {record['message']}"
