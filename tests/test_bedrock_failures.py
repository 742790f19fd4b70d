"""One classification of AWS failures: the most specific class wins, and every consumer agrees."""

from __future__ import annotations

import grpc
import pytest
import urllib3.exceptions
from botocore import exceptions as boto

from inference_service.bedrock import FailureKind, StreamEndedEarly, classify, map_error
from inference_service.bedrock.failures import KNOWN_EXCEPTIONS
from inference_service.health import counts_against_runtime

ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"


def answer(code: str, http_status: int = 400) -> boto.ClientError:
    """An error answer as transport.py raises it (botocore's ClientError)."""
    return boto.ClientError(
        {
            "Error": {"Code": code, "Message": "Bedrock's own words"},
            "ResponseMetadata": {"HTTPStatusCode": http_status},
        },
        "ConverseStream",
    )


@pytest.mark.parametrize(
    ("exc", "kind", "base"),
    [
        # botocore's ReadTimeoutError is an HTTPClientError: a timeout, not a broken connection.
        (boto.ReadTimeoutError(endpoint_url=ENDPOINT), FailureKind.TIMED_OUT, boto.HTTPClientError),
        # ... and a urllib3 HTTPError too, through urllib3's ReadTimeoutError.
        (
            urllib3.exceptions.ReadTimeoutError(None, ENDPOINT, "Read timed out."),
            FailureKind.TIMED_OUT,
            urllib3.exceptions.HTTPError,
        ),
        # ConnectTimeoutError is a ConnectionError first: Bedrock was never reached.
        (boto.ConnectTimeoutError(endpoint_url=ENDPOINT), FailureKind.UNREACHABLE, None),
        (boto.SSOTokenLoadError(error_msg="expired"), FailureKind.CREDENTIALS, None),
        (boto.ResponseStreamingError(error="cut"), FailureKind.STREAM_CUT, None),
    ],
)
def test_the_most_specific_class_decides_not_its_base(
    exc: BaseException, kind: FailureKind, base: type[BaseException] | None
) -> None:
    failure = classify(exc)
    assert failure.kind is kind
    assert failure.code == type(exc).__name__
    if base is not None:  # a listed base that alone would have said otherwise
        assert KNOWN_EXCEPTIONS[base].kind is not kind


@pytest.mark.parametrize("cls", list(KNOWN_EXCEPTIONS), ids=lambda cls: cls.__qualname__)
def test_every_known_class_is_classified_by_its_own_entry(cls: type[BaseException]) -> None:
    exc = cls.__new__(cls)  # no constructor arguments needed: only the type is looked at
    failure = classify(exc)
    assert (failure.kind, failure.summary) == (
        KNOWN_EXCEPTIONS[cls].kind,
        KNOWN_EXCEPTIONS[cls].summary,
    )


def test_an_unlisted_subclass_takes_its_nearest_listed_ancestor() -> None:
    class SlowBody(boto.ReadTimeoutError):
        pass

    assert classify(SlowBody(endpoint_url=ENDPOINT)).kind is FailureKind.TIMED_OUT
    assert map_error(SlowBody(endpoint_url=ENDPOINT)).code is grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("exc", "status", "counts"),
    [
        (answer("ServiceUnavailableException", 503), grpc.StatusCode.UNAVAILABLE, True),
        (answer("InternalServerException", 500), grpc.StatusCode.UNAVAILABLE, True),
        (answer("ExpiredTokenException"), grpc.StatusCode.UNAVAILABLE, True),
        (answer("InvalidClientTokenId", 403), grpc.StatusCode.UNAVAILABLE, True),
        (answer("ModelNotReadyException", 429), grpc.StatusCode.UNAVAILABLE, False),
        (answer("ModelStreamErrorException", 424), grpc.StatusCode.UNAVAILABLE, False),
        (answer("ThrottlingException", 429), grpc.StatusCode.RESOURCE_EXHAUSTED, False),
        (answer("TooManyRequestsException", 429), grpc.StatusCode.RESOURCE_EXHAUSTED, False),
        (answer("AccessDeniedException", 403), grpc.StatusCode.PERMISSION_DENIED, False),
        (answer("SomethingNewException", 502), grpc.StatusCode.INTERNAL, False),
        (boto.EndpointConnectionError(endpoint_url=ENDPOINT), grpc.StatusCode.UNAVAILABLE, True),
        (boto.ConnectionClosedError(endpoint_url=ENDPOINT), grpc.StatusCode.UNAVAILABLE, True),
        (StreamEndedEarly("no messageStop"), grpc.StatusCode.UNAVAILABLE, True),
        (boto.ReadTimeoutError(endpoint_url=ENDPOINT), grpc.StatusCode.DEADLINE_EXCEEDED, False),
        (boto.NoCredentialsError(), grpc.StatusCode.UNAVAILABLE, True),
        (KeyError("bug"), grpc.StatusCode.INTERNAL, False),
    ],
)
def test_the_status_and_healths_count_follow_the_same_kind(
    exc: BaseException, status: grpc.StatusCode, counts: bool
) -> None:
    mapped = map_error(exc)
    assert mapped.code is status
    assert mapped.failure == classify(exc)
    assert counts_against_runtime(mapped) is counts
