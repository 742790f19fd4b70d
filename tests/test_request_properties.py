"""Property-based: whatever a caller puts in a ChatRequest or a DualChatRequest, the servers
answer with a status they chose (never UNKNOWN or INTERNAL), keep running, and stream every
request they accept to its stop.

Arbitrary field values (roles, including ones the enum does not name; texts: unicode,
empty, blank, huge within the limits; inference settings including NaN, infinities,
negatives and out-of-range integers; stop sequences; model names; per-route overrides;
ordering values) go to the session's real processes, on the emulator at the tests' fast
pace. A bounded example count keeps `make test` quick; a failure prints the smallest
request hypothesis found.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dualnova.chat.v1 import chat_pb2
from dualnova.dev.stack import ServiceHandle
from dualnova.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from dualnova.inference.v1 import inference_pb2, inference_pb2_grpc

# Statuses no request may produce: they mean a bug of ours, not a refusal.
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# With no fault injected and no cap reached, every refusal is the request's fault: by our
# validation or by (the emulator's) Bedrock, whose ValidationException maps to this too.
REFUSED = grpc.StatusCode.INVALID_ARGUMENT
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)

PROPERTIES = settings(
    max_examples=50,
    deadline=None,
    # The session's processes are shared by every example; the function-scoped
    # fixture is the autouse emulator reset, which may run once per test.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _repeated(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A long run of one character: huge texts without drawing every character."""
    return st.builds(lambda char, count: char * count, chars, st.integers(1, 40_000))


def _written(text: str) -> bool:
    return bool(text.strip())


# Each field has what a careful caller sends (still any unicode, the extremes of each
# range, huge texts) and what anyone might send. A request is drawn from the first
# kind throughout, or from both field by field: so accepted requests are common and
# refused ones cover every rule.
SHOWCASE = [
    "🙂",
    "한국어 질문",
    "e\u0301",
    "\u200b",
    "مرحبا",
    "\U0001f468\u200d\U0001f469",
    "a\x00b",
]
GOOD_TEXTS = st.one_of(
    st.text(min_size=1, max_size=60).filter(_written),
    st.sampled_from(SHOWCASE),
    _repeated(st.characters(codec="utf-8").filter(lambda char: not char.isspace())),
)
ANY_TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\n\t", "\u3000", "\x1c", *SHOWCASE]),
    _repeated(st.characters(codec="utf-8")),
)
ANY_ROLES = st.one_of(
    st.sampled_from([chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT, chat_pb2.ROLE_UNSPECIFIED]),
    INT32,
)


def _alternating(texts: list[str]) -> list[chat_pb2.Message]:
    return [
        chat_pb2.Message(
            role=chat_pb2.ROLE_USER if index % 2 == 0 else chat_pb2.ROLE_ASSISTANT, text=text
        )
        for index, text in enumerate(texts)
    ]


GOOD_CONVERSATIONS = (
    st.integers(0, 3)
    .flatmap(lambda pairs: st.lists(GOOD_TEXTS, min_size=2 * pairs + 1, max_size=2 * pairs + 1))
    .map(_alternating)
)
ANY_CONVERSATIONS = st.one_of(
    st.lists(st.builds(chat_pb2.Message, role=ANY_ROLES, text=ANY_TEXTS), max_size=6),
    st.lists(ANY_TEXTS, max_size=6).map(_alternating),
)
GOOD_FLOATS = st.one_of(
    st.floats(min_value=0.0, max_value=1.0), st.sampled_from([0.0, -0.0, 1.0, 5e-324])
)
ANY_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1e-9, 1.0000001, 1e39, math.nan, -math.nan, math.inf, -math.inf]),
)
GOOD_MAX_TOKENS = st.one_of(st.integers(1, 64), st.sampled_from([1, 10_000]))
ANY_MAX_TOKENS = st.one_of(INT32, st.sampled_from([0, -1, 100_000, 2**31 - 1, -(2**31)]))
GOOD_STOPS = st.lists(
    st.one_of(st.text(min_size=1, max_size=8), st.sampled_from([" ", "\n", "。", "🙂"])),
    max_size=4,
)
ANY_STOPS = st.lists(st.one_of(st.text(max_size=8), st.just("")), max_size=7)
GOOD_MODELS = st.sampled_from(["micro", "pro", "amazon.nova-micro-v1:0", "amazon.nova-pro-v1:0"])
ANY_MODELS = st.one_of(
    st.sampled_from(["", "MICRO", " micro", "micro\n", "amazon.nova-premier-v1:0"]),
    st.text(max_size=30),
    _repeated(st.characters(codec="utf-8")),
)
GOOD_ORDERINGS = st.sampled_from(
    [
        gateway_pb2.ORDERING_UNSPECIFIED,
        gateway_pb2.ORDERING_INTERLEAVED,
        gateway_pb2.ORDERING_MICRO_FIRST,
    ]
)
ANY_ORDERINGS = st.one_of(GOOD_ORDERINGS, INT32)


class Fields:
    """Where each field is drawn from: good values only, or good and arbitrary ones."""

    def __init__(self, draw: st.DrawFn, careful: bool) -> None:
        self._draw = draw
        self._careful = careful

    def __call__(
        self, good: st.SearchStrategy[object], anything: st.SearchStrategy[object]
    ) -> object:
        if self._careful:
            return self._draw(good)
        return self._draw(st.one_of(good, anything))

    def systems(self) -> list[str]:
        return self._draw(st.lists(GOOD_TEXTS if self._careful else ANY_TEXTS, max_size=3))

    def config(self) -> chat_pb2.InferenceConfig | None:
        """None (the field unset), or any mix of set and unset fields (proto3 presence)."""
        if not self._draw(st.booleans()):
            return None
        config = chat_pb2.InferenceConfig(stop_sequences=self(GOOD_STOPS, ANY_STOPS))
        if self._draw(st.booleans()):
            config.max_tokens = self(GOOD_MAX_TOKENS, ANY_MAX_TOKENS)
        for name in ("temperature", "top_p"):
            if self._draw(st.booleans()):
                setattr(config, name, self(GOOD_FLOATS, ANY_FLOATS))
        return config


@st.composite
def chat_requests(draw: st.DrawFn) -> inference_pb2.ChatRequest:
    field = Fields(draw, careful=draw(st.booleans()))
    request = inference_pb2.ChatRequest(
        model=field(GOOD_MODELS, ANY_MODELS),
        messages=field(GOOD_CONVERSATIONS, ANY_CONVERSATIONS),
        system=field.systems(),
        cache_system=draw(st.booleans()),
    )
    config = field.config()
    if config is not None:
        request.inference_config.CopyFrom(config)
    return request


@st.composite
def dual_chat_requests(draw: st.DrawFn) -> gateway_pb2.DualChatRequest:
    field = Fields(draw, careful=draw(st.booleans()))
    request = gateway_pb2.DualChatRequest(
        messages=field(GOOD_CONVERSATIONS, ANY_CONVERSATIONS),
        system=field.systems(),
        ordering=field(GOOD_ORDERINGS, ANY_ORDERINGS),
        cache_system=draw(st.booleans()),
    )
    config = field.config()
    if config is not None:
        request.inference_config.CopyFrom(config)
    for route in ("micro", "pro"):
        if draw(st.booleans()):
            override = getattr(request, route)
            override.system.extend(field.systems())
            route_config = field.config()
            if route_config is not None:
                override.inference_config.CopyFrom(route_config)
    return request


# What the servers must do with each.


def check_chat(channel: grpc.Channel, request: inference_pb2.ChatRequest) -> None:
    kinds: list[str] = []
    try:
        for response in inference_pb2_grpc.InferenceServiceStub(channel).Chat(request, timeout=30):
            kinds.append(response.WhichOneof("event"))
    except grpc.RpcError as error:
        assert error.code() not in NEVER, f"{error.code().name}: {error.details()}"
        assert error.code() == REFUSED, f"{error.code().name}: {error.details()}"
        event(f"refused {error.code().name}: {(error.details() or '').split(':')[0]}")
        return
    # Accepted: it streamed to its stop, through start and usage.
    assert kinds and kinds[0] == "start" and kinds[-1] == "stop", kinds
    assert "usage" in kinds
    event("accepted")


def check_dual_chat(channel: grpc.Channel, request: gateway_pb2.DualChatRequest) -> None:
    ended: dict[str, str] = {}
    summary = 0
    try:
        for response in gateway_pb2_grpc.GatewayStub(channel).DualChat(request, timeout=30):
            kind = response.WhichOneof("event")
            assert not summary, "an event after the summary"
            if kind == "summary":
                summary += 1
            elif kind == "error":
                assert response.error.code == REFUSED.name, response.error
                ended[response.route] = "error"
            elif kind == "stop":
                ended[response.route] = "stop"
    except grpc.RpcError as error:
        assert error.code() not in NEVER, f"{error.code().name}: {error.details()}"
        assert error.code() == REFUSED, f"{error.code().name}: {error.details()}"
        assert not summary and not ended, "refused after it had begun"
        event(f"refused {error.code().name}: {(error.details() or '').split(':')[0]}")
        return
    # Accepted: both routes ended (stop, or an error event of a status we chose), then the summary.
    assert summary == 1
    assert set(ended) == {"micro", "pro"}, ended
    event(f"accepted: micro {ended['micro']}, pro {ended['pro']}")


def serving(address: str) -> int:
    """The server's own health status: it answers, so it did not crash."""
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return reply.status


class _LogErrors:
    """ERROR lines (tracebacks of ours) a service logged while a test ran."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._start = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        if not self._path.exists():
            return []
        with self._path.open(encoding="utf-8", errors="replace") as file:
            file.seek(self._start)
            found = []
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("level") in ("ERROR", "CRITICAL"):
                    found.append(line.strip()[:2000])
            return found


@pytest.fixture
def chat_channel(inference: ServiceHandle, log_dir: Path) -> Iterator[grpc.Channel]:
    before = serving(inference.address)
    errors = _LogErrors(log_dir / "inference_service.log")
    with grpc.insecure_channel(inference.address) as channel:
        yield channel
    assert inference.running, "the inference service exited"
    assert serving(inference.address) == before
    assert errors.lines() == []


@pytest.fixture
def gateway_channel(
    gateway: ServiceHandle, inference: ServiceHandle, log_dir: Path
) -> Iterator[grpc.Channel]:
    before = (serving(gateway.address), serving(inference.address))
    errors = [_LogErrors(log_dir / f"{name}.log") for name in ("gateway", "inference_service")]
    with grpc.insecure_channel(gateway.address) as channel:
        yield channel
    assert gateway.running and inference.running, "a service exited"
    assert (serving(gateway.address), serving(inference.address)) == before
    assert [line for log in errors for line in log.lines()] == []


@PROPERTIES
@given(request=chat_requests())
def test_any_chat_request_is_answered_or_refused_by_a_status_we_chose(
    chat_channel: grpc.Channel, request: inference_pb2.ChatRequest
) -> None:
    check_chat(chat_channel, request)


@PROPERTIES
@given(request=dual_chat_requests())
def test_any_dual_chat_request_is_answered_or_refused_by_a_status_we_chose(
    gateway_channel: grpc.Channel, request: gateway_pb2.DualChatRequest
) -> None:
    check_dual_chat(gateway_channel, request)


# Below the fields: bytes that are no valid message at all (what a hand-made client or
# another language's can send) are the caller's error too, not a server's UNKNOWN.

CHAT = "/dualnova.inference.v1.InferenceService/Chat"
DUAL_CHAT = "/dualnova.gateway.v1.Gateway/DualChat"


@st.composite
def wire_bytes(draw: st.DrawFn, requests: st.SearchStrategy[Any]) -> bytes:
    """Arbitrary bytes, or a real request's serialization with some bytes changed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    data = bytearray(draw(requests).SerializeToString())
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def check_bytes(channel: grpc.Channel, method: str, data: bytes) -> None:
    call = channel.unary_stream(
        method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )
    try:
        for _ in call(data, timeout=30):
            pass
    except grpc.RpcError as error:
        assert error.code() == REFUSED, f"{error.code().name}: {error.details()}"
        event(f"refused: {(error.details() or '').split(':')[0]}")
        return
    event("accepted")


@PROPERTIES
@given(data=wire_bytes(chat_requests()))
def test_chat_bytes_that_do_not_parse_are_invalid_argument(
    chat_channel: grpc.Channel, data: bytes
) -> None:
    check_bytes(chat_channel, CHAT, data)


@PROPERTIES
@given(data=wire_bytes(dual_chat_requests()))
def test_dual_chat_bytes_that_do_not_parse_are_invalid_argument(
    gateway_channel: grpc.Channel, data: bytes
) -> None:
    check_bytes(gateway_channel, DUAL_CHAT, data)


@pytest.mark.parametrize(
    ("method", "data"),
    [
        (CHAT, b"\x0a\x02\xff\xfe"),  # model: two bytes that are not UTF-8
        (DUAL_CHAT, b"\x0a\x04\x12\x02\xff\xfe"),  # messages[0].text: the same
        (DUAL_CHAT, b"\xff\xff\xff"),  # no wire format at all
    ],
    ids=["chat bad utf-8", "dual chat bad utf-8", "dual chat corrupt"],
)
def test_unparsable_requests_name_what_is_wrong(
    gateway: ServiceHandle, inference: ServiceHandle, method: str, data: bytes
) -> None:
    address = inference.address if method == CHAT else gateway.address
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_stream(
            method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(call(data, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("request: cannot be parsed (Error parsing message")


def test_a_huge_model_name_is_refused_as_invalid_not_as_overflowing_metadata(
    inference: ServiceHandle,
) -> None:
    request = inference_pb2.ChatRequest(
        model="x" * 100_000, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, text="hi")]
    )
    with grpc.insecure_channel(inference.address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            list(inference_pb2_grpc.InferenceServiceStub(channel).Chat(request, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("model: 'xxxx")
    assert "... (100000 characters) is not accepted" in raised.value.details()
