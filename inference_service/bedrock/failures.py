"""What a failed AWS call means: the one classification behind statuses, probes, health and retries.

Every decision about a failure of Bedrock (or of reaching it) starts from
classify(): the gRPC status table (statuses.py), a probe's verdict
(probes.py), whether a failed Chat call counts against bedrock-runtime
(health.py) and whether the transport treats an answer as throttling
(transport.py). Each of them reads the kind; none keeps its own list of error
codes or exception classes, so a code added here changes all four at once.

Bedrock's errors arrive as botocore exceptions (transport.py and events.py
raise the ones boto3 would): ClientError or EventStreamError with Bedrock's
code, or a botocore / urllib3 exception without one. Exception classes are
looked up along the exception's MRO, so the most specific known class wins
whatever order the table is written in (botocore's ReadTimeoutError is an
HTTPClientError, and must stay a timeout).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3.exceptions
from botocore import exceptions as boto

__all__ = [
    "BEDROCK_ERROR_CODES",
    "KNOWN_EXCEPTIONS",
    "AwsFailure",
    "FailureKind",
    "KNOWLEDGE_BASE_ERROR_CODES",
    "Meaning",
    "StreamEndedEarly",
    "classify",
]


class StreamEndedEarly(Exception):
    """Bedrock's event stream ended without messageStop: the answer is incomplete."""


class FailureKind(enum.Enum):
    """What went wrong, in AWS's terms and independent of how a caller is told."""

    CREDENTIALS = "credentials"  # refused by AWS, or this service cannot load or sign with them
    THROTTLED = "throttled"  # a rate limit: the same call may pass a moment later
    QUOTA_EXCEEDED = "quota exceeded"  # an account quota, after authentication
    SERVER_ERROR = "server error"  # Bedrock's own fault (its 5xx)
    UNREACHABLE = "unreachable"  # no connection: DNS, refused, TLS, proxy, connect timeout
    TIMED_OUT = "timed out"  # connected, but the answer (or the model) did not come in time
    REQUEST_REJECTED = "request rejected"  # the request itself is invalid
    NOT_FOUND = "not found"  # no such model or resource
    NOT_READY = "not ready"  # the resource exists but is not in a state to serve (not ACTIVE)
    ACCESS_DENIED = "access denied"  # authenticated, but not allowed (IAM, model access)
    MODEL_UNAVAILABLE = "model unavailable"  # one model cannot answer now: not ready, stream failed
    MODEL_FAILURE = "model failure"  # the model failed on this input
    STREAM_CUT = "stream cut"  # the connection broke, or the answer ended before its end
    UNKNOWN = "unknown"  # a code or exception this table does not know


# Kinds that say Bedrock's endpoint cannot serve this service at all, whatever the model:
# evidence against bedrock-runtime. Throttling, the request's own faults and one model's
# trouble are not: counting them would take every replica out of rotation at once.
_ENDPOINT_FAILURES = frozenset(
    {
        FailureKind.CREDENTIALS,
        FailureKind.SERVER_ERROR,
        FailureKind.UNREACHABLE,
        FailureKind.STREAM_CUT,
    }
)


@dataclass(frozen=True)
class Meaning:
    """A known failure: its kind and the phrase that starts what a caller is told."""

    kind: FailureKind
    summary: str


@dataclass(frozen=True)
class AwsFailure:
    """One failed AWS call, classified."""

    kind: FailureKind
    # Bedrock's error code in UpperCamel ("ThrottlingException"), else the exception's class.
    code: str
    # Bedrock's own words, or the exception's text (which may hold details: not for callers
    # when the kind is UNKNOWN and the failure is not Bedrock's).
    message: str
    summary: str
    # Bedrock sent this error, before or inside the stream (False: no answer came, or it is ours).
    from_bedrock: bool = False
    # The HTTP status of Bedrock's error answer; 0 when there was none (or it came mid-stream).
    http_status: int = 0

    @property
    def endpoint_failed(self) -> bool:
        """Whether this says Bedrock's endpoint is unusable for this service (not one model)."""
        return self.kind in _ENDPOINT_FAILURES

    @property
    def server_side(self) -> bool:
        """Bedrock failed on its side: a known server error, or any 5xx answer."""
        return self.kind is FailureKind.SERVER_ERROR or self.http_status >= 500


def _refused(summary: str) -> Meaning:
    return Meaning(FailureKind.CREDENTIALS, summary)


_BAD_KEYS = "Bedrock rejected this service's AWS credentials"
_BAD_SIGNATURE = "Bedrock rejected this service's AWS request signature"
_EXPIRED = "this service's AWS credentials expired"
_THROTTLED = Meaning(FailureKind.THROTTLED, "Bedrock throttled the request")

# The errors Bedrock documents for ConverseStream and its health calls (the README's
# error table lists each). Keys are UpperCamel; mid-stream codes arrive lowerCamel.
BEDROCK_ERROR_CODES: Mapping[str, Meaning] = {
    "ValidationException": Meaning(FailureKind.REQUEST_REJECTED, "Bedrock rejected the request"),
    "AccessDeniedException": Meaning(
        FailureKind.ACCESS_DENIED, "Bedrock denied access to the model"
    ),
    "ResourceNotFoundException": Meaning(FailureKind.NOT_FOUND, "Bedrock does not know the model"),
    "ThrottlingException": _THROTTLED,
    "ServiceQuotaExceededException": Meaning(
        FailureKind.QUOTA_EXCEEDED, "Bedrock service quota exceeded"
    ),
    "ModelTimeoutException": Meaning(FailureKind.TIMED_OUT, "the model timed out"),
    "ModelNotReadyException": Meaning(FailureKind.MODEL_UNAVAILABLE, "the model is not ready"),
    "ServiceUnavailableException": Meaning(FailureKind.SERVER_ERROR, "Bedrock is unavailable"),
    "ModelStreamErrorException": Meaning(
        FailureKind.MODEL_UNAVAILABLE, "the model's stream failed"
    ),
    "InternalServerException": Meaning(FailureKind.SERVER_ERROR, "Bedrock had an internal error"),
    "ModelErrorException": Meaning(
        FailureKind.MODEL_FAILURE, "the model failed to process the request"
    ),
    "UnrecognizedClientException": _refused(_BAD_KEYS),
    "InvalidSignatureException": _refused(_BAD_SIGNATURE),
    "ExpiredTokenException": _refused(_EXPIRED),
}

# What the Knowledge Base calls' errors mean (bedrock-agent-runtime Retrieve, bedrock-agent
# GetKnowledgeBase): the same codes speak of a knowledge base, not of a model, and Retrieve
# adds ConflictException for a knowledge base that is not ACTIVE. classify(exc, these) reads
# this table before BEDROCK_ERROR_CODES.
KNOWLEDGE_BASE_ERROR_CODES: Mapping[str, Meaning] = {
    "ValidationException": Meaning(
        FailureKind.REQUEST_REJECTED, "Bedrock rejected the Retrieve request"
    ),
    "AccessDeniedException": Meaning(
        FailureKind.ACCESS_DENIED, "Bedrock denied access to the knowledge base"
    ),
    "ResourceNotFoundException": Meaning(
        FailureKind.NOT_FOUND, "Bedrock does not know the knowledge base"
    ),
    "ConflictException": Meaning(FailureKind.NOT_READY, "the knowledge base is not ready"),
    "DependencyFailedException": Meaning(
        FailureKind.SERVER_ERROR, "a resource the knowledge base depends on failed"
    ),
    "BadGatewayException": Meaning(FailureKind.SERVER_ERROR, "Bedrock had a gateway error"),
}

# Codes other AWS front ends answer with: authentication failures, and the throttling
# codes botocore's standard retry mode knows.
_OTHER_AWS_CODES: Mapping[str, Meaning] = {
    "IncompleteSignature": _refused(_BAD_SIGNATURE),
    "IncompleteSignatureException": _refused(_BAD_SIGNATURE),
    "SignatureDoesNotMatch": _refused(_BAD_SIGNATURE),
    "ExpiredToken": _refused(_EXPIRED),
    "InvalidClientTokenId": _refused(_BAD_KEYS),
    "MissingAuthenticationToken": _refused(_BAD_KEYS),
    "MissingAuthenticationTokenException": _refused(_BAD_KEYS),
    **dict.fromkeys(
        (
            "Throttling",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "TransactionInProgressException",
            "RequestLimitExceeded",
            "BandwidthLimitExceeded",
            "LimitExceededException",
            "RequestThrottled",
            "SlowDown",
            "PriorRequestNotComplete",
            "EC2ThrottledException",
        ),
        _THROTTLED,
    ),
}

_CUT = Meaning(FailureKind.STREAM_CUT, "the connection to Bedrock failed")
_READ_TIMEOUT = Meaning(FailureKind.TIMED_OUT, "Bedrock did not answer in time")

# Exceptions without an AWS error code. Looked up along type(exc).__mro__, so the
# order here means nothing: the nearest class of the exception's own ancestry wins.
KNOWN_EXCEPTIONS: Mapping[type[BaseException], Meaning] = {
    StreamEndedEarly: Meaning(FailureKind.STREAM_CUT, "Bedrock's answer was cut off"),
    boto.ParamValidationError: Meaning(
        FailureKind.REQUEST_REJECTED, "the request does not fit Bedrock's API"
    ),
    boto.ReadTimeoutError: _READ_TIMEOUT,
    # botocore's mid-stream reads could surface urllib3's errors unwrapped.
    urllib3.exceptions.ReadTimeoutError: _READ_TIMEOUT,
    boto.NoCredentialsError: _refused("this service has no AWS credentials"),
    boto.PartialCredentialsError: _refused("this service's AWS keys are incomplete"),
    boto.CredentialRetrievalError: _refused("this service could not load AWS keys"),
    boto.TokenRetrievalError: _refused("this service could not load an AWS SSO token"),
    boto.SSOError: _refused("this service's AWS SSO session failed"),
    boto.ConnectionError: Meaning(FailureKind.UNREACHABLE, "cannot reach Bedrock"),
    boto.HTTPClientError: _CUT,
    urllib3.exceptions.HTTPError: _CUT,
}


def classify(exc: BaseException, codes: Mapping[str, Meaning] | None = None) -> AwsFailure:
    """What `exc`, raised by a Bedrock call, means; UNKNOWN for what is not an AWS failure.

    `codes`: the operation's own meanings of Bedrock's codes, read first
    (KNOWLEDGE_BASE_ERROR_CODES for Retrieve and GetKnowledgeBase).
    """
    if isinstance(exc, boto.ClientError):
        return _classify_answer(exc, codes or {})
    for cls in type(exc).__mro__:
        meaning = KNOWN_EXCEPTIONS.get(cls)
        if meaning is not None:
            return AwsFailure(meaning.kind, type(exc).__name__, str(exc), meaning.summary)
    name = type(exc).__name__
    return AwsFailure(FailureKind.UNKNOWN, name, str(exc), "internal error")


def _classify_answer(exc: boto.ClientError, codes: Mapping[str, Meaning]) -> AwsFailure:
    """An error Bedrock sent: by its code, which mid-stream arrives lowerCamel."""
    error = exc.response.get("Error", {})
    raw_code = str(error.get("Code") or "")
    code = raw_code[:1].upper() + raw_code[1:]
    message = str(error.get("Message") or error.get("message") or "no message")
    http_status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    meaning = codes.get(code) or BEDROCK_ERROR_CODES.get(code) or _OTHER_AWS_CODES.get(code)
    if meaning is None:
        meaning = Meaning(FailureKind.UNKNOWN, f"Bedrock failed with {code or 'an unnamed error'}")
    return AwsFailure(
        meaning.kind,
        code or type(exc).__name__,
        message,
        meaning.summary,
        from_bedrock=True,
        http_status=http_status,
    )
