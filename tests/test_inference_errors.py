"""The one table from Bedrock/botocore failures to gRPC statuses, over real botocore exceptions."""

from __future__ import annotations

import grpc
import pytest
import urllib3.exceptions
from botocore import exceptions as boto

from inference_service.bedrock import StreamEndedEarly, map_error

ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"


def client_error(code: str, message: str = "it went wrong") -> boto.ClientError:
    """What botocore raises for a rest-json error answer before the stream."""
    return boto.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "ConverseStream",
    )


def stream_error(code: str, message: str = "it went wrong") -> boto.EventStreamError:
    """What botocore raises for an exception message inside the event stream (lowerCamel code)."""
    return boto.EventStreamError({"Error": {"Code": code, "Message": message}}, "ConverseStream")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ValidationException", grpc.StatusCode.INVALID_ARGUMENT),
        ("AccessDeniedException", grpc.StatusCode.PERMISSION_DENIED),
        ("ResourceNotFoundException", grpc.StatusCode.NOT_FOUND),
        ("ThrottlingException", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("ServiceQuotaExceededException", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("ModelTimeoutException", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("ModelNotReadyException", grpc.StatusCode.UNAVAILABLE),
        ("ServiceUnavailableException", grpc.StatusCode.UNAVAILABLE),
        ("ModelStreamErrorException", grpc.StatusCode.UNAVAILABLE),
        ("InternalServerException", grpc.StatusCode.UNAVAILABLE),
        ("ModelErrorException", grpc.StatusCode.INTERNAL),
        ("UnrecognizedClientException", grpc.StatusCode.UNAVAILABLE),
        ("ExpiredTokenException", grpc.StatusCode.UNAVAILABLE),
        ("SomethingNewException", grpc.StatusCode.INTERNAL),
    ],
)
def test_bedrock_error_codes_map_to_statuses(code: str, status: grpc.StatusCode) -> None:
    mapped = map_error(client_error(code, "Bedrock's own words"))
    assert mapped.code == status
    assert "Bedrock's own words" in mapped.message


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("throttlingException", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("validationException", grpc.StatusCode.INVALID_ARGUMENT),
        ("modelStreamErrorException", grpc.StatusCode.UNAVAILABLE),
        ("internalServerException", grpc.StatusCode.UNAVAILABLE),
        ("serviceUnavailableException", grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_mid_stream_lower_camel_codes_map_like_their_upper_camel_names(
    code: str, status: grpc.StatusCode
) -> None:
    mapped = map_error(stream_error(code, "during the stream"))
    assert mapped.code == status
    assert "during the stream" in mapped.message
    assert mapped.cause == code[0].upper() + code[1:]


def test_validation_message_keeps_bedrocks_words() -> None:
    mapped = map_error(client_error("ValidationException", "max_tokens exceeds the model limit"))
    assert mapped.message.startswith("Bedrock rejected the request: ")
    assert "max_tokens exceeds the model limit" in mapped.message


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (boto.EndpointConnectionError(endpoint_url=ENDPOINT), grpc.StatusCode.UNAVAILABLE),
        (boto.ConnectTimeoutError(endpoint_url=ENDPOINT), grpc.StatusCode.UNAVAILABLE),
        (boto.ConnectionClosedError(endpoint_url=ENDPOINT), grpc.StatusCode.UNAVAILABLE),
        (boto.ReadTimeoutError(endpoint_url=ENDPOINT), grpc.StatusCode.DEADLINE_EXCEEDED),
        (
            urllib3.exceptions.ReadTimeoutError(None, ENDPOINT, "Read timed out."),
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ),
        (
            urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"),
            grpc.StatusCode.UNAVAILABLE,
        ),
        (
            boto.ParamValidationError(report="Invalid type for parameter"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (boto.NoCredentialsError(), grpc.StatusCode.UNAVAILABLE),
        (
            boto.CredentialRetrievalError(provider="sso", error_msg="token expired"),
            grpc.StatusCode.UNAVAILABLE,
        ),
        (StreamEndedEarly("no messageStop"), grpc.StatusCode.UNAVAILABLE),
        (KeyError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_transport_and_client_side_failures(exc: BaseException, status: grpc.StatusCode) -> None:
    assert map_error(exc).code == status


def test_connection_failure_says_bedrock_cannot_be_reached() -> None:
    mapped = map_error(boto.EndpointConnectionError(endpoint_url=ENDPOINT))
    assert ENDPOINT in mapped.message


def test_unknown_failures_do_not_leak_their_details() -> None:
    mapped = map_error(RuntimeError("secret internal state"))
    assert mapped.code == grpc.StatusCode.INTERNAL
    assert "secret internal state" not in mapped.message
