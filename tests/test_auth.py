"""Who may call: bearer tokens at the gateway, an inference service only the gateway may call.

One locked pair runs for the module: the gateway accepts a token from
GATEWAY_AUTH_TOKENS and the ones in a tokens file the tests edit while it
runs; the inference service accepts only the gateway's GATEWAY_UPSTREAM_TOKEN;
reflection on the gateway is switched off. Both export to the module's
collector, so the last test can look for the secrets in everything they
logged and exported.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from certificates import CertificateAuthority
from gateway_client import ask, dual_chat, user
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from polling import wait_until
from processes import SERVICE_DEFAULTS
from telemetry_support import FAST_EXPORT, OtlpCollector, Pair, log_lines, running_pair

from dualnova.dev.stack import EMULATOR_CREDENTIALS, EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from dualnova.server.auth import REFUSAL, BearerAuth
from dualnova.server.callers import TokenFile, TokenSource, current_caller, parse_entries
from dualnova.server.settings import ConfigError
from gateway import config as gateway_config
from inference_service.server import UPSTREAM_REFUSAL

ROOT = Path(__file__).resolve().parent.parent
CAROL = "carol-7Qw9sXb2Lk4"  # GATEWAY_AUTH_TOKENS, named carol
ALICE = "alice-Zr8vN3mPq1"  # in the tokens file, named alice
BARE = "bare-Hy6tK2dWx9"  # in the tokens file, no name
UPSTREAM = "gw-up-Jf5cR7bLs3"  # the gateway's token for the inference service
SECRETS = (
    CAROL,
    ALICE,
    BARE,
    UPSTREAM,
    EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(f"# callers\nalice:{ALICE}\n{BARE}\n")
    return path


@pytest.fixture(scope="module")
def locked(
    emulator: EmulatorHandle,
    collector: OtlpCollector,
    tokens_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, **FAST_EXPORT}
    with running_pair(
        emulator,
        tmp_path_factory.mktemp("locked"),
        inference_env={**otel, "INFERENCE_AUTH_TOKENS": f"gateway:{UPSTREAM}"},
        gateway_env={
            **otel,
            "GATEWAY_AUTH_TOKENS": f"carol:{CAROL}",
            "GATEWAY_AUTH_TOKENS_FILE": str(tokens_file),
            "GATEWAY_UPSTREAM_TOKEN": UPSTREAM,
            "GATEWAY_REFLECTION": "false",
        },
    ) as pair:
        yield pair


def refused(address: str, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        dual_chat(address, ask("who am I?"), metadata=metadata)
    return raised.value


def answered_both(address: str, token: str, question: str = "hello") -> Any:
    result = dual_chat(address, ask(question), metadata=bearer(token))
    for route in ("micro", "pro"):
        assert result.routes[route].error is None, result.routes[route].error
        assert result.routes[route].stop is not None
    return result


# --- the gateway's callers ------------------------------------------------------


def test_no_wrong_or_malformed_token_is_refused_with_one_message(locked: Pair) -> None:
    for metadata in (
        (),
        bearer("not-a-token"),
        bearer(CAROL + "x"),
        (("authorization", f"Basic {CAROL}"),),
        (("authorization", CAROL),),
    ):
        error = refused(locked.gateway.address, metadata)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, metadata
        # The same words whatever was wrong: what to send, never what was sent.
        assert error.details() == REFUSAL
        assert CAROL not in (error.details() or "")


def test_a_token_from_the_variable_or_the_file_is_let_in(locked: Pair) -> None:
    for token in (CAROL, ALICE, BARE):
        answered_both(locked.gateway.address, token)
    # The scheme is case-insensitive (RFC 7235).
    dual_chat(locked.gateway.address, ask("hi"), metadata=(("authorization", f"bearer {CAROL}"),))


def test_editing_the_tokens_file_revokes_and_adds_tokens_without_a_restart(
    locked: Pair, tokens_file: Path
) -> None:
    original = tokens_file.read_text()
    dave = "dave-Pm4sT8kVz2"
    try:
        pid = locked.gateway.pid
        assert (
            refused(locked.gateway.address, bearer(dave)).code() is grpc.StatusCode.UNAUTHENTICATED
        )
        tokens_file.write_text(f"{BARE}\ndave:{dave}\n")  # alice revoked, dave added
        answered_both(locked.gateway.address, dave)
        error = refused(locked.gateway.address, bearer(ALICE))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        answered_both(locked.gateway.address, BARE)
        # A file that is gone accepts nobody; the variable's token still counts.
        tokens_file.unlink()
        assert (
            refused(locked.gateway.address, bearer(dave)).code() is grpc.StatusCode.UNAUTHENTICATED
        )
        answered_both(locked.gateway.address, CAROL)
        assert locked.gateway.pid == pid and locked.gateway.running
    finally:
        tokens_file.write_text(original)
    answered_both(locked.gateway.address, ALICE)


def test_the_callers_name_is_in_the_log_lines_spans_and_metrics_never_the_token(
    locked: Pair, collector: OtlpCollector
) -> None:
    result = answered_both(locked.gateway.address, CAROL, "name me")
    trace_id = result.summary.trace_id
    spans = collector.wait_for_trace(trace_id, 7)

    server = [s for s in spans if s.service == "gateway" and s.kind == "SERVER"]
    assert [s.attributes.get("dualnova.caller") for s in server] == ["carol"]
    routes = [s for s in spans if s.name.startswith("route ")]
    assert {s.attributes.get("dualnova.caller") for s in routes} == {"carol"}

    def lines(name: str) -> list[dict[str, Any]]:
        return [
            line for line in log_lines(locked.log_dir / name) if line.get("trace_id") == trace_id
        ]

    gateway_lines = wait_until(
        lambda: [line for line in lines("gateway.log") if line["message"] == "dual chat finished"],
        "the gateway's log line of the call",
    )
    assert gateway_lines[0]["caller"] == "carol"
    assert {line.get("caller") for line in lines("gateway.log")} == {"carol"}

    def chats() -> list[dict[str, Any]]:
        found = [
            line for line in lines("inference_service.log") if line["message"] == "chat finished"
        ]
        return found if len(found) == 2 else []

    finished = wait_until(chats, "both routes' chat finished lines")
    assert {line["caller"] for line in finished} == {"carol"}
    assert {line["route"] for line in finished} == {"micro", "pro"}

    wait_until(
        lambda: collector.point(
            "gateway",
            "dualnova.gateway.route.calls",
            {
                "dualnova.route": "micro",
                "rpc.response.status_code": "OK",
                "dualnova.caller": "carol",
            },
        ),
        "route calls counted for carol",
    )
    for line in lines("gateway.log") + lines("inference_service.log"):
        assert CAROL not in str(line)


def test_a_bare_token_has_a_stable_name_from_its_digest() -> None:
    (first,) = parse_entries([BARE], "X")
    (again,) = parse_entries([f"  {BARE} "], "X")
    assert first.name == again.name and first.name.startswith("token-")
    assert BARE not in first.name and BARE not in repr(first)


# --- the inference service -------------------------------------------------------


def chat(address: str, metadata: tuple[tuple[str, str], ...]) -> list[Any]:
    with grpc.insecure_channel(address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.ChatRequest(model="micro", messages=[user("direct")])
        return list(stub.Chat(request, timeout=10, metadata=metadata))


def test_the_inference_service_refuses_a_direct_caller_and_serves_the_gateway(
    locked: Pair,
) -> None:
    for metadata in ((), bearer(CAROL), bearer(UPSTREAM + "x")):
        with pytest.raises(grpc.RpcError) as raised:
            chat(locked.inference.address, metadata)
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.details() == UPSTREAM_REFUSAL
    # The gateway, presenting GATEWAY_UPSTREAM_TOKEN, still gets both answers through it.
    answered_both(locked.gateway.address, CAROL)
    # And the token itself is what opens it.
    assert chat(locked.inference.address, bearer(UPSTREAM))[-1].HasField("stop")


def test_health_stays_open_and_reflection_is_closed_by_the_switch(locked: Pair) -> None:
    for address in (locked.gateway.address, locked.inference.address):
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, address
    with grpc.insecure_channel(locked.gateway.address) as channel:
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(answers)
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    # The inference service keeps reflection (no switch asked for it), token or not.
    with grpc.insecure_channel(locked.inference.address) as channel:
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        services = {s.name for a in answers for s in a.list_services_response.service}
        assert "dualnova.inference.v1.InferenceService" in services


def test_with_no_tokens_configured_calls_are_open(gateway: ServiceHandle) -> None:
    dual_chat(gateway.address, ask("open?"))


# --- the CLI ----------------------------------------------------------------------


def dualnova(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DUALNOVA_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "dualnova.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_dualnova_chat_takes_token_from_the_flag_or_dualnova_token(locked: Pair) -> None:
    address = locked.gateway.address
    by_flag = dualnova("chat", "--gateway", address, "--token", ALICE, "hi")
    assert by_flag.returncode == 0, by_flag.stderr
    assert "[micro] " in by_flag.stdout and "trace id: " in by_flag.stdout
    by_env = dualnova("chat", "--gateway", address, "hi", env={"DUALNOVA_TOKEN": CAROL})
    assert by_env.returncode == 0, by_env.stderr

    without = dualnova("chat", "--gateway", address, "hi")
    assert without.returncode == 2
    assert "refused the call" in without.stderr and "--token" in without.stderr
    wrong = dualnova("chat", "--gateway", address, "hi", env={"DUALNOVA_TOKEN": "nope-123"})
    assert wrong.returncode == 2 and "nope-123" not in wrong.stderr


def test_dualnova_health_takes_a_token_too(locked: Pair) -> None:
    result = dualnova("health", "--addr", locked.gateway.address, "--token", CAROL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "status: SERVING"


# --- secret hygiene ---------------------------------------------------------------


def test_a_bad_token_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        gateway_config.load({"GATEWAY_AUTH_TOKENS": f"carol:{CAROL},bad name:{ALICE}"})
    message = str(raised.value)
    assert "GATEWAY_AUTH_TOKENS" in message and "entry 2" in message
    assert CAROL not in message and ALICE not in message
    settings = gateway_config.load(
        {"GATEWAY_AUTH_TOKENS": f"carol:{CAROL}", "GATEWAY_UPSTREAM_TOKEN": UPSTREAM}
    )
    assert CAROL not in repr(settings) and UPSTREAM not in repr(settings)


def test_a_bad_line_read_while_running_is_skipped_and_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"alice:{ALICE}\n")
    source = TokenSource(file=TokenFile(str(path), "GATEWAY_AUTH_TOKENS_FILE"))
    assert source.identify(ALICE) == "alice"
    path.write_text(f"bad name:{CAROL}\nbob:{BARE}\n")
    assert source.identify(BARE) == "bob"
    assert source.identify(ALICE) is None and source.identify(CAROL) is None
    assert "line 1 skipped" in caplog.text and CAROL not in caplog.text


def test_no_token_or_aws_key_in_any_log_line_or_exported_span(
    locked: Pair, collector: OtlpCollector, emulator: EmulatorHandle
) -> None:
    # Every kind of call, refused and served, has been made by now; one more of each here.
    result = answered_both(locked.gateway.address, BARE, "keep my secrets")
    refused(locked.gateway.address, bearer(CAROL + "-wrong"))
    collector.wait_for_trace(result.summary.trace_id, 7)
    # The emulator saw the pair's signed requests: the AWS keys were in use.
    assert any(request for request in emulator.requests())

    logs = (locked.log_dir / "gateway.log").read_text() + (
        locked.log_dir / "inference_service.log"
    ).read_text()
    assert '"caller": "' in logs  # the names are there; the secrets must not be
    with collector._lock:
        spans = list(collector._spans)
        points = list(collector._points.values())
    assert spans and points
    exported = repr(spans) + repr(points)
    for secret in SECRETS:
        assert secret not in logs, secret
        assert secret not in exported, secret


# --- a client certificate standing in for a token (mutual TLS) -----------------


class _EchoCaller(gateway_pb2_grpc.GatewayServicer):
    """A Gateway whose one event says who the interceptor let in (in the summary's trace_id)."""

    async def DualChat(self, request: Any, context: Any) -> None:  # noqa: N802
        summary = gateway_pb2.Summary(trace_id=current_caller() or "-")
        await context.write(gateway_pb2.DualChatResponse(summary=summary))


def _who(
    server_tls: tuple[bytes, bytes, bytes | None], client: tuple[bytes, bytes, bytes | None], calls
) -> list[str]:
    """Each call's (token) result against an in-process server guarded by BearerAuth."""
    server_key_cert = [(server_tls[1], server_tls[0])]

    async def scenario() -> list[str]:
        tokens = TokenSource(parse_entries([f"carol:{CAROL}"], "X"))
        server = grpc.aio.server(
            interceptors=[BearerAuth(tokens, ("dualnova.gateway.v1.Gateway",))]
        )
        gateway_pb2_grpc.add_GatewayServicer_to_server(_EchoCaller(), server)
        credentials = grpc.ssl_server_credentials(
            server_key_cert,
            root_certificates=server_tls[2],
            require_client_auth=server_tls[2] is not None,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        try:
            channel_credentials = grpc.ssl_channel_credentials(
                root_certificates=client[2], private_key=client[1], certificate_chain=client[0]
            )
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                seen = []
                for token in calls:
                    metadata = () if token is None else bearer(token)
                    try:
                        events = [
                            e async for e in stub.DualChat(ask("?"), metadata=metadata, timeout=5)
                        ]
                        seen.append(events[-1].summary.trace_id)
                    except grpc.aio.AioRpcError as error:
                        seen.append(error.code().name)
                return seen
        finally:
            await server.stop(None)

    return asyncio.run(scenario())


def test_a_verified_client_certificate_stands_in_for_a_token() -> None:
    servers, clients = CertificateAuthority("servers"), CertificateAuthority("clients")
    server = servers.issue_server()
    billing = clients.issue_client("billing")
    mutual = (server.cert, server.key, clients.pem)
    client = (billing.cert, billing.key, servers.pem)
    # No token: the certificate names the caller; a right token names it instead; a wrong
    # token is refused, certificate or not.
    assert _who(mutual, client, [None, CAROL, "wrong-token"]) == [
        "billing",
        "carol",
        "UNAUTHENTICATED",
    ]
    # Plain TLS (no client CA): a certificate is not asked for, so it names nobody.
    assert _who((server.cert, server.key, None), (None, None, servers.pem), [None, CAROL]) == [
        "UNAUTHENTICATED",
        "carol",
    ]


@pytest.fixture(scope="module")
def mutual_tls_pair(
    emulator: EmulatorHandle, aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceHandle, Path]]:
    """Both hops mutual TLS with tokens also required, and no upstream token: certificates only."""
    ca = CertificateAuthority("auth-test-ca")
    files = tmp_path_factory.mktemp("auth-tls")
    ca.write(files, "ca")
    ca.issue_server("inference").write(files, "inference")
    ca.issue_server("gateway").write(files, "gateway")
    ca.issue_client("gateway").write(files, "upstream")
    billing = ca.issue_client("billing")
    billing.write(files, "billing")
    inference = ServiceHandle(
        "inference service (mutual TLS, tokens)",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **aws_env,
            **SERVICE_DEFAULTS,
            "INFERENCE_TLS_CERT": str(files / "inference.crt"),
            "INFERENCE_TLS_KEY": str(files / "inference.key"),
            "INFERENCE_TLS_CLIENT_CA": str(files / "ca.pem"),
            "INFERENCE_AUTH_TOKENS": f"gateway:{UPSTREAM}",
        },
        log_path=files / "inference_service.log",
        credentials=grpc.ssl_channel_credentials(
            root_certificates=ca.pem, private_key=billing.key, certificate_chain=billing.cert
        ),
    )
    gateway = ServiceHandle(
        "gateway (mutual TLS, tokens)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": inference.address,
            "INFERENCE_TLS_CA": str(files / "ca.pem"),
            "GATEWAY_UPSTREAM_TLS_CERT": str(files / "upstream.crt"),
            "GATEWAY_UPSTREAM_TLS_KEY": str(files / "upstream.key"),
            "GATEWAY_TLS_CERT": str(files / "gateway.crt"),
            "GATEWAY_TLS_KEY": str(files / "gateway.key"),
            "GATEWAY_TLS_CLIENT_CA": str(files / "ca.pem"),
            "GATEWAY_AUTH_TOKENS": f"carol:{CAROL}",
        },
        log_path=files / "gateway.log",
        credentials=grpc.ssl_channel_credentials(
            root_certificates=ca.pem, private_key=billing.key, certificate_chain=billing.cert
        ),
    )
    inference.start()
    try:
        gateway.start()
        yield gateway, files
    finally:
        gateway.stop()
        inference.stop()


def test_dualnova_chat_and_health_over_mutual_tls_with_the_certificate_as_caller(
    mutual_tls_pair: tuple[ServiceHandle, Path],
) -> None:
    gateway, files = mutual_tls_pair
    tls = ("--ca", str(files / "ca.pem"), "--cert", str(files / "billing.crt"))
    tls += ("--key", str(files / "billing.key"))
    # No token: the client certificate stands in for it at the gateway, and the gateway's own
    # (GATEWAY_UPSTREAM_TLS_CERT) at the inference service, which also wants a token.
    result = dualnova("chat", "--gateway", gateway.address, *tls, "who pays?")
    assert result.returncode == 0, result.stderr
    assert "[micro] " in result.stdout and "[pro] " in result.stdout
    trace_id = result.stdout.rsplit("trace id: ", 1)[1].strip()
    for log in ("gateway.log", "inference_service.log"):
        callers = {
            line.get("caller")
            for line in log_lines(files / log)
            if line.get("trace_id") == trace_id
        }
        assert callers == {"billing"}, log

    health = dualnova("health", "--addr", gateway.address, *tls)
    assert health.returncode == 0, health.stderr
    # Plaintext against the TLS port does not connect; a lone --cert is a usage error.
    assert dualnova("health", "--addr", gateway.address, "--timeout", "0.5").returncode == 2
    lone = dualnova("chat", "--gateway", gateway.address, "--cert", str(files / "billing.crt"), "x")
    assert lone.returncode == 2 and "--cert and --key" in lone.stderr


def test_a_gateway_with_the_wrong_upstream_token_reports_it_as_each_routes_error(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    with running_pair(
        emulator,
        tmp_path,
        inference_env={"INFERENCE_AUTH_TOKENS": f"gateway:{UPSTREAM}"},
        gateway_env={"GATEWAY_UPSTREAM_TOKEN": "stale-token-1"},
    ) as pair:
        result = dual_chat(pair.gateway.address, ask("anyone?"))
    for route in ("micro", "pro"):
        error = result.routes[route].error
        assert error is not None and error.code == "UNAUTHENTICATED"
        assert error.message == UPSTREAM_REFUSAL and "stale-token-1" not in error.message
    # Nothing was spent: the start-up health probes are all that reached the emulator.
    assert [r for r in emulator.requests() if r["operation"] == "ConverseStream"] == []


def test_the_shared_token_rotates_through_both_files_without_a_restart(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    accepted, sent = tmp_path / "inference-tokens", tmp_path / "upstream-token"
    accepted.write_text(f"gateway:{UPSTREAM}\n")
    sent.write_text(f"{UPSTREAM}\n")
    with running_pair(
        emulator,
        tmp_path,
        inference_env={"INFERENCE_AUTH_TOKENS_FILE": str(accepted)},
        gateway_env={"GATEWAY_UPSTREAM_TOKEN_FILE": str(sent)},
    ) as pair:

        def route_errors() -> set[str | None]:
            result = dual_chat(pair.gateway.address, ask("rotate"))
            return {r.error.code if r.error else None for r in result.routes.values()}

        assert route_errors() == {None}
        sent.write_text("gw-new-Vb7nQ2xR5\n")  # the gateway sends the new token at once ...
        assert route_errors() == {"UNAUTHENTICATED"}
        accepted.write_text(f"gateway:{UPSTREAM}\ngateway:gw-new-Vb7nQ2xR5\n")  # ... accepted now
        assert route_errors() == {None}
        accepted.write_text("gateway:gw-new-Vb7nQ2xR5\n")  # the old one dropped
        assert route_errors() == {None}
