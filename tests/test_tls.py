"""TLS on both hops: who may connect, what is refused, rotation without a restart, start checks.

The services run as real processes on loopback with certificates made here
(tests/certificates.py). The inference service asks for client certificates
(mutual TLS); the gateway serves TLS and calls it with its own certificate.
Nothing here listens beyond loopback: a non-loopback address appears only in
settings that are refused before anything binds.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from certificates import CertificateAuthority, Issued
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from processes import SERVICE_DEFAULTS
from startup import assert_refused_to_start

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import EmulatorHandle, ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc
from gateway import config as gateway_config
from inference_service import config as inference_config

# Each channel its own connection, so each check is a fresh handshake.
FRESH_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
REFUSED = (grpc.StatusCode.UNAVAILABLE,)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("dualnova-test-ca")


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority("some-other-ca")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Path:
    """ca.pem, inference.{crt,key}, gateway.{crt,key}, upstream.{crt,key} (the gateway's own)."""
    directory = tmp_path_factory.mktemp("tls")
    ca.write(directory, "ca")
    ca.issue_server("inference").write(directory, "inference")
    ca.issue_server("gateway").write(directory, "gateway")
    ca.issue_client("gateway").write(directory, "upstream")
    return directory


def credentials(
    trusted: CertificateAuthority, client: Issued | None = None
) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=trusted.pem)
    return grpc.ssl_channel_credentials(
        root_certificates=trusted.pem, private_key=client.key, certificate_chain=client.cert
    )


@pytest.fixture(scope="module")
def client_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue_client("test-caller")


@pytest.fixture(scope="module")
def inference_tls(
    emulator: EmulatorHandle,
    aws_env: dict[str, str],
    files: Path,
    ca: CertificateAuthority,
    client_cert: Issued,
    log_dir: Path,
) -> Iterator[ServiceHandle]:
    """The inference service serving mutual TLS: client certificates signed by `ca` only."""
    service = ServiceHandle(
        "inference service (mutual TLS)",
        "inference_service",
        "INFERENCE_LISTEN",
        {
            **aws_env,
            **SERVICE_DEFAULTS,
            "INFERENCE_TLS_CERT": str(files / "inference.crt"),
            "INFERENCE_TLS_KEY": str(files / "inference.key"),
            "INFERENCE_TLS_CLIENT_CA": str(files / "ca.pem"),
        },
        log_path=log_dir / "inference_tls.log",
        credentials=credentials(ca, client_cert),
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def gateway_tls(
    inference_tls: ServiceHandle, files: Path, ca: CertificateAuthority, log_dir: Path
) -> Iterator[ServiceHandle]:
    """The gateway serving TLS, calling `inference_tls` over mutual TLS with its own certificate."""
    service = ServiceHandle(
        "gateway (TLS)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": inference_tls.address,
            "GATEWAY_TLS_CERT": str(files / "gateway.crt"),
            "GATEWAY_TLS_KEY": str(files / "gateway.key"),
            "INFERENCE_TLS_CA": str(files / "ca.pem"),
            "GATEWAY_UPSTREAM_TLS_CERT": str(files / "upstream.crt"),
            "GATEWAY_UPSTREAM_TLS_KEY": str(files / "upstream.key"),
        },
        log_path=log_dir / "gateway_tls.log",
        credentials=credentials(ca),
    )
    service.start()
    yield service
    service.stop()


def chat(address: str, channel_credentials: grpc.ChannelCredentials | None) -> list[str]:
    """One Chat; the kinds of events it streamed (raises AioRpcError's sync twin when refused)."""
    request = inference_pb2.ChatRequest(
        model="micro", messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Hello?")]
    )
    channel = (
        grpc.insecure_channel(address, options=FRESH_CONNECTION)
        if channel_credentials is None
        else grpc.secure_channel(address, channel_credentials, options=FRESH_CONNECTION)
    )
    with channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        return [event.WhichOneof("event") for event in stub.Chat(request, timeout=10)]


def health_check(address: str, channel_credentials: grpc.ChannelCredentials) -> None:
    """One Health/Check over a fresh connection; raises grpc.RpcError when refused."""
    with grpc.secure_channel(address, channel_credentials, options=FRESH_CONNECTION) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


# --- the inference service over mutual TLS ------------------------------------------------


def test_chat_over_mutual_tls_with_the_right_ca_and_a_client_certificate(
    inference_tls: ServiceHandle, ca: CertificateAuthority, client_cert: Issued, log_dir: Path
) -> None:
    events = chat(inference_tls.address, credentials(ca, client_cert))
    assert events[0] == "start" and events[-1] == "stop" and "delta" in events
    assert "inference service listening (mutual-tls)" in (log_dir / "inference_tls.log").read_text()


def test_a_plaintext_client_on_the_tls_port_fails(inference_tls: ServiceHandle) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        chat(inference_tls.address, None)
    assert refused.value.code() in REFUSED


def test_a_client_that_does_not_trust_the_servers_ca_fails(
    inference_tls: ServiceHandle, other_ca: CertificateAuthority, client_cert: Issued
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        chat(inference_tls.address, credentials(other_ca, client_cert))
    assert refused.value.code() in REFUSED


@pytest.mark.parametrize("presented", ["none", "from another CA", "expired"])
def test_mutual_tls_refuses_a_client_without_a_valid_certificate(
    inference_tls: ServiceHandle,
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    presented: str,
) -> None:
    client = {
        "none": None,
        "from another CA": other_ca.issue_client("intruder"),
        "expired": ca.issue_client(
            "expired",
            valid_from=datetime.timedelta(days=-10),
            valid_until=datetime.timedelta(days=-1),
        ),
    }[presented]
    with pytest.raises(grpc.RpcError) as refused:
        chat(inference_tls.address, credentials(ca, client))
    assert refused.value.code() in REFUSED


# --- DualChat with TLS on both hops -------------------------------------------------------


def test_dual_chat_through_the_gateway_with_tls_on_both_hops(
    gateway_tls: ServiceHandle,
    inference_tls: ServiceHandle,
    ca: CertificateAuthority,
    log_dir: Path,
) -> None:
    request = gateway_pb2.DualChatRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="Hello over TLS?")]
    )
    with grpc.secure_channel(gateway_tls.address, credentials(ca)) as channel:
        events = list(gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30))
    kinds = {(event.route, event.WhichOneof("event")) for event in events}
    assert {("micro", "stop"), ("pro", "stop")} <= kinds
    assert not [event for event in events if event.WhichOneof("event") == "error"]
    summary = events[-1].summary
    assert summary.total.total_tokens > 0
    upstream = gateway_tls.address.replace(str(gateway_tls.port), str(inference_tls.port))
    log = (log_dir / "gateway_tls.log").read_text()
    assert f"gateway listening (tls); inference service at {upstream} (mutual-tls)" in log


# --- rotation -------------------------------------------------------------------------------


def served_certificate(address: str) -> x509.Certificate:
    """The certificate the server presents to a new connection (read, not verified)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as connection:
            der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_rotated_certificate_is_served_without_a_restart(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    first = ca.issue_server("gateway")
    cert, key = first.write(tmp_path, "gateway")
    gateway = ServiceHandle(
        "gateway (rotating)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": "dns:///localhost:1",
            "GATEWAY_TLS_CERT": str(cert),
            "GATEWAY_TLS_KEY": str(key),
        },
        credentials=credentials(ca),
    )
    gateway.start()
    try:
        assert served_certificate(gateway.address).serial_number == first.serial
        pid = gateway.pid

        # Half a rotation (a new certificate, the old key still there) is not served.
        half = other_ca.issue_server("gateway")
        cert.write_bytes(half.cert)
        time.sleep(0.2)
        assert served_certificate(gateway.address).serial_number == first.serial
        health_check(gateway.address, credentials(ca))

        # The whole pair, from another CA: new connections get it, the process is the same.
        second = half
        second.write(tmp_path, "gateway")
        deadline = time.monotonic() + 10
        while served_certificate(gateway.address).serial_number != second.serial:
            assert time.monotonic() < deadline, "the new certificate was never served"
            time.sleep(0.1)
        health_check(gateway.address, credentials(other_ca))
        with pytest.raises(grpc.RpcError):
            health_check(gateway.address, credentials(ca))
        assert gateway.pid == pid and gateway.running
    finally:
        gateway.stop()


# --- refused at start ------------------------------------------------------------------------


def run(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={"PATH": "/usr/bin:/bin", **SERVICE_DEFAULTS, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("module", "listen_variable", "address"),
    [
        ("gateway", "GATEWAY_LISTEN", "0.0.0.0:50052"),
        ("inference_service", "INFERENCE_LISTEN", "0.0.0.0:50051"),
        ("gateway", "GATEWAY_LISTEN", "[::]:50052"),
        ("inference_service", "INFERENCE_LISTEN", "10.11.12.13:50051"),
    ],
)
def test_plaintext_beyond_loopback_is_refused_at_start(
    module: str, listen_variable: str, address: str
) -> None:
    result = run(module, {listen_variable: address})
    assert_refused_to_start(result, module, listen_variable, "DUALNOVA_ALLOW_PLAINTEXT")


def test_plaintext_beyond_loopback_passes_the_checks_when_allowed_or_with_tls(
    files: Path,
) -> None:
    """Only the configuration is loaded here: nothing binds the address."""
    with pytest.raises(gateway_config.ConfigError, match="DUALNOVA_ALLOW_PLAINTEXT"):
        gateway_config.load({"GATEWAY_LISTEN": "0.0.0.0:50052"})
    allowed = {"GATEWAY_LISTEN": "0.0.0.0:50052", "DUALNOVA_ALLOW_PLAINTEXT": "true"}
    assert gateway_config.load(allowed).tls is None
    with_tls = inference_config.load(
        {
            "INFERENCE_LISTEN": "0.0.0.0:50051",
            "INFERENCE_TLS_CERT": str(files / "inference.crt"),
            "INFERENCE_TLS_KEY": str(files / "inference.key"),
        }
    )
    assert with_tls.tls is not None and with_tls.tls.mode == "tls"
    for loopback in ("127.0.0.1:50051", "localhost:50051", "[::1]:50051"):
        assert inference_config.load({"INFERENCE_LISTEN": loopback}).tls is None


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, other_ca: CertificateAuthority) -> Path:
    directory = tmp_path_factory.mktemp("bad-tls")
    (directory / "garbage.pem").write_text("this is not a certificate\n")
    (directory / "a-directory").mkdir()
    other_ca.issue_server("stranger").write(directory, "stranger")
    return directory


@pytest.mark.parametrize(
    ("case", "variable"),
    [
        ("missing certificate", "GATEWAY_TLS_CERT"),
        ("unreadable key", "GATEWAY_TLS_KEY"),
        ("certificate not PEM", "GATEWAY_TLS_CERT"),
        ("key not PEM", "GATEWAY_TLS_KEY"),
        ("key of another certificate", "GATEWAY_TLS_KEY"),
        ("client CA not PEM", "GATEWAY_TLS_CLIENT_CA"),
        ("certificate without its key", "GATEWAY_TLS_KEY"),
        ("upstream CA missing", "INFERENCE_TLS_CA"),
        ("upstream key of another certificate", "GATEWAY_UPSTREAM_TLS_KEY"),
        ("upstream certificate without a CA", "INFERENCE_TLS_CA"),
    ],
)
def test_bad_tls_files_stop_the_gateway_with_one_line_naming_the_variable(
    files: Path, bad_files: Path, case: str, variable: str
) -> None:
    good = {
        "GATEWAY_TLS_CERT": str(files / "gateway.crt"),
        "GATEWAY_TLS_KEY": str(files / "gateway.key"),
    }
    env = {
        "missing certificate": {**good, "GATEWAY_TLS_CERT": str(bad_files / "nothing.crt")},
        "unreadable key": {**good, "GATEWAY_TLS_KEY": str(bad_files / "a-directory")},
        "certificate not PEM": {**good, "GATEWAY_TLS_CERT": str(bad_files / "garbage.pem")},
        "key not PEM": {**good, "GATEWAY_TLS_KEY": str(bad_files / "garbage.pem")},
        "key of another certificate": {**good, "GATEWAY_TLS_KEY": str(bad_files / "stranger.key")},
        "client CA not PEM": {**good, "GATEWAY_TLS_CLIENT_CA": str(bad_files / "garbage.pem")},
        "certificate without its key": {"GATEWAY_TLS_CERT": good["GATEWAY_TLS_CERT"]},
        "upstream CA missing": {"INFERENCE_TLS_CA": str(bad_files / "nothing.pem")},
        "upstream key of another certificate": {
            "INFERENCE_TLS_CA": str(files / "ca.pem"),
            "GATEWAY_UPSTREAM_TLS_CERT": str(files / "upstream.crt"),
            "GATEWAY_UPSTREAM_TLS_KEY": str(bad_files / "stranger.key"),
        },
        "upstream certificate without a CA": {
            "GATEWAY_UPSTREAM_TLS_CERT": str(files / "upstream.crt"),
            "GATEWAY_UPSTREAM_TLS_KEY": str(files / "upstream.key"),
        },
    }[case]
    result = run("gateway", {"GATEWAY_LISTEN": "127.0.0.1:0", **env})
    line = assert_refused_to_start(result, "gateway", variable)
    assert "PRIVATE KEY" not in line and "BEGIN" not in line


def test_bad_tls_files_stop_the_inference_service_too(bad_files: Path, files: Path) -> None:
    result = run(
        "inference_service",
        {
            "INFERENCE_TLS_CERT": str(files / "inference.crt"),
            "INFERENCE_TLS_KEY": str(bad_files / "stranger.key"),
        },
    )
    assert_refused_to_start(result, "inference_service", "INFERENCE_TLS_KEY", "does not match")


def test_files_that_vanish_or_break_keep_the_served_certificate_and_warn_once(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    served = ca.issue_server("gateway")
    cert, key = served.write(tmp_path / "tls", "gateway")
    log = tmp_path / "gateway.log"
    gateway = ServiceHandle(
        "gateway (files going away)",
        "gateway",
        "GATEWAY_LISTEN",
        {
            **SERVICE_DEFAULTS,
            "INFERENCE_TARGET": "dns:///localhost:1",
            "GATEWAY_TLS_CERT": str(cert),
            "GATEWAY_TLS_KEY": str(key),
        },
        log_path=log,
        credentials=credentials(ca),
    )
    gateway.start()
    try:
        key.unlink()
        for _ in range(3):
            assert served_certificate(gateway.address).serial_number == served.serial
        key.write_text("not a key\n")
        for _ in range(3):
            assert served_certificate(gateway.address).serial_number == served.serial
        health_check(gateway.address, credentials(ca))
    finally:
        gateway.stop()
    warnings = [line for line in log.read_text().splitlines() if "cannot be served" in line]
    assert len(warnings) == 2, warnings  # one when the key went, one when it came back broken
    assert "GATEWAY_TLS_KEY" in warnings[0] and "GATEWAY_TLS_KEY" in warnings[1]
    assert "not a key" not in log.read_text()
