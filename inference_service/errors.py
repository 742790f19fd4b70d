"""Bedrock and botocore failures as gRPC statuses: the one table, used at the servicer boundary.

Who retries what (so nobody retries twice):
- botocore retries, in "standard" mode, up to the configured total attempts, and
  only BEFORE a stream starts: throttling, 5xx answers, connection errors.
- Once ConverseStream has returned its stream (Start was sent to our caller),
  nothing retries: the caller already has part of an answer, and a retry here
  would duplicate text and bill twice. A mid-stream error ends the RPC with
  the status below, after the events already sent.
- The gateway never retries either; it reports the route's error. A caller
  that wants a retry sees a retryable code (UNAVAILABLE, RESOURCE_EXHAUSTED)
  and decides.

Decisions where more than one code would do:
- ModelStreamErrorException -> UNAVAILABLE, not ABORTED. AWS documents it as
  transient ("retry your request"); ABORTED means a concurrency conflict the
  caller resolves at a higher level, which this is not. gRPC's own retry
  policies never replay a stream that already sent messages, so UNAVAILABLE is
  safe even mid-stream.
- InternalServerException and ServiceUnavailableException -> UNAVAILABLE, not
  INTERNAL. The fault is in a dependency, transient, and AWS says retry.
  INTERNAL is kept for ModelErrorException (the model itself failed on this
  input) and for anything unknown, i.e. our own bugs.
- Credential failures (UnrecognizedClientException, ExpiredTokenException,
  InvalidSignatureException, botocore's credential errors) -> UNAVAILABLE.
  They are this service's misconfiguration, not the caller's:
  UNAUTHENTICATED / PERMISSION_DENIED would tell the caller to fix *their*
  identity. From the caller's side Bedrock is unusable right now, and rotated
  credentials (role, SSO) often make a later retry succeed. The service logs
  these at error level so an operator sees them.
- AccessDeniedException -> PERMISSION_DENIED: the model is not enabled for
  this account or not allowed by IAM; the caller chose that model and can
  choose another.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import urllib3.exceptions
from botocore import exceptions as boto

from inference_service.bedrock import StreamEndedEarly

__all__ = ["MappedError", "map_error", "CLIENT_ERROR_CODES"]

Code = grpc.StatusCode


@dataclass(frozen=True)
class MappedError:
    """The status and message a failed RPC ends with."""

    code: grpc.StatusCode
    message: str
    # The Bedrock error code or exception class, for logs ("ThrottlingException").
    cause: str


# Bedrock error codes (x-amzn-ErrorType before the stream, :exception-type in
# it) -> status and the phrase that starts the gRPC message. Keys are
# UpperCamel; lookups normalise the first letter because mid-stream
# exceptions arrive lowerCamel ("throttlingException").
CLIENT_ERROR_CODES: dict[str, tuple[grpc.StatusCode, str]] = {
    "ValidationException": (Code.INVALID_ARGUMENT, "Bedrock rejected the request"),
    "AccessDeniedException": (Code.PERMISSION_DENIED, "Bedrock denied access to the model"),
    "ResourceNotFoundException": (Code.NOT_FOUND, "Bedrock does not know the model"),
    "ThrottlingException": (Code.RESOURCE_EXHAUSTED, "Bedrock throttled the request"),
    "ServiceQuotaExceededException": (
        Code.RESOURCE_EXHAUSTED,
        "Bedrock service quota exceeded",
    ),
    "ModelTimeoutException": (Code.DEADLINE_EXCEEDED, "the model timed out"),
    "ModelNotReadyException": (Code.UNAVAILABLE, "the model is not ready"),
    "ServiceUnavailableException": (Code.UNAVAILABLE, "Bedrock is unavailable"),
    "ModelStreamErrorException": (Code.UNAVAILABLE, "the model's stream failed"),
    "InternalServerException": (Code.UNAVAILABLE, "Bedrock had an internal error"),
    "ModelErrorException": (Code.INTERNAL, "the model failed to process the request"),
    "UnrecognizedClientException": (
        Code.UNAVAILABLE,
        "Bedrock rejected this service's AWS credentials",
    ),
    "InvalidSignatureException": (
        Code.UNAVAILABLE,
        "Bedrock rejected this service's AWS request signature",
    ),
    "ExpiredTokenException": (Code.UNAVAILABLE, "this service's AWS credentials expired"),
}

# botocore / urllib3 exceptions without an AWS error code, checked in order
# (subclasses before their bases).
_EXCEPTION_TYPES: tuple[tuple[type[BaseException], grpc.StatusCode, str], ...] = (
    (StreamEndedEarly, Code.UNAVAILABLE, "Bedrock's answer was cut off"),
    (boto.ParamValidationError, Code.INVALID_ARGUMENT, "the request does not fit Bedrock's API"),
    (boto.ReadTimeoutError, Code.DEADLINE_EXCEEDED, "Bedrock did not answer in time"),
    # Mid-stream, botocore reads urllib3's body directly, so its errors arrive unwrapped.
    (urllib3.exceptions.ReadTimeoutError, Code.DEADLINE_EXCEEDED, "Bedrock did not answer in time"),
    (boto.NoCredentialsError, Code.UNAVAILABLE, "this service has no AWS credentials"),
    (boto.PartialCredentialsError, Code.UNAVAILABLE, "this service's AWS keys are incomplete"),
    (boto.CredentialRetrievalError, Code.UNAVAILABLE, "this service could not load AWS keys"),
    (boto.TokenRetrievalError, Code.UNAVAILABLE, "this service could not load an AWS SSO token"),
    (boto.SSOError, Code.UNAVAILABLE, "this service's AWS SSO session failed"),
    (boto.ConnectionError, Code.UNAVAILABLE, "cannot reach Bedrock"),
    (boto.HTTPClientError, Code.UNAVAILABLE, "the connection to Bedrock failed"),
    (urllib3.exceptions.HTTPError, Code.UNAVAILABLE, "the connection to Bedrock failed"),
)


def map_error(exc: BaseException) -> MappedError:
    """The status for a failure of a Bedrock call; unknown failures are INTERNAL."""
    if isinstance(exc, boto.ClientError):
        return _map_client_error(exc)
    for exc_type, code, phrase in _EXCEPTION_TYPES:
        if isinstance(exc, exc_type):
            return MappedError(code, f"{phrase}: {exc}", type(exc).__name__)
    return MappedError(Code.INTERNAL, f"internal error: {type(exc).__name__}", type(exc).__name__)


def _map_client_error(exc: boto.ClientError) -> MappedError:
    error = exc.response.get("Error", {})
    raw_code = str(error.get("Code") or "")
    code_name = raw_code[:1].upper() + raw_code[1:]
    message = str(error.get("Message") or error.get("message") or "no message")
    entry = CLIENT_ERROR_CODES.get(code_name)
    if entry is None:
        return MappedError(
            Code.INTERNAL,
            f"Bedrock failed with {code_name or 'an unnamed error'}: {message}",
            code_name or type(exc).__name__,
        )
    status, phrase = entry
    return MappedError(status, f"{phrase}: {message} ({code_name})", code_name)
