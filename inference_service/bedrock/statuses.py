"""Bedrock and botocore failures as gRPC statuses: one status per kind of failure (failures.py).

The servicer maps every failed Bedrock call here, at its one boundary. What
a failure is comes from failures.classify(); this module only decides how a
caller is told, so the kind of a code is written once, there.

Who retries what (so nobody retries twice):
- transport.py retries as botocore's "standard" mode does, up to the configured
  total attempts, and only BEFORE a stream starts: throttling, 5xx answers,
  connection errors.
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
- Retrieve's ConflictException (the knowledge base is not ACTIVE) ->
  FAILED_PRECONDITION: the request is fine and the knowledge base exists, but
  it cannot serve until its state changes; retrying at once will not help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from inference_service.bedrock.failures import (
    BEDROCK_ERROR_CODES,
    KNOWLEDGE_BASE_ERROR_CODES,
    AwsFailure,
    FailureKind,
    Meaning,
    classify,
)

__all__ = [
    "CLIENT_ERROR_CODES",
    "RETRIEVE_ERROR_CODES",
    "STATUS_OF_KIND",
    "MappedError",
    "map_error",
    "map_retrieve_error",
]

Code = grpc.StatusCode
Kind = FailureKind

STATUS_OF_KIND: Mapping[FailureKind, grpc.StatusCode] = {
    Kind.CREDENTIALS: Code.UNAVAILABLE,
    Kind.THROTTLED: Code.RESOURCE_EXHAUSTED,
    Kind.QUOTA_EXCEEDED: Code.RESOURCE_EXHAUSTED,
    Kind.SERVER_ERROR: Code.UNAVAILABLE,
    Kind.UNREACHABLE: Code.UNAVAILABLE,
    Kind.TIMED_OUT: Code.DEADLINE_EXCEEDED,
    Kind.REQUEST_REJECTED: Code.INVALID_ARGUMENT,
    Kind.NOT_FOUND: Code.NOT_FOUND,
    Kind.NOT_READY: Code.FAILED_PRECONDITION,
    Kind.ACCESS_DENIED: Code.PERMISSION_DENIED,
    Kind.MODEL_UNAVAILABLE: Code.UNAVAILABLE,
    Kind.MODEL_FAILURE: Code.INTERNAL,
    Kind.STREAM_CUT: Code.UNAVAILABLE,
    Kind.UNKNOWN: Code.INTERNAL,
}

# Bedrock's documented error codes -> status and the phrase that starts the gRPC
# message: the README's error table, derived rather than written twice.
CLIENT_ERROR_CODES: Mapping[str, tuple[grpc.StatusCode, str]] = {
    code: (STATUS_OF_KIND[meaning.kind], meaning.summary)
    for code, meaning in BEDROCK_ERROR_CODES.items()
}

# Retrieve's own codes (knowledge-base wording, ConflictException), likewise derived.
RETRIEVE_ERROR_CODES: Mapping[str, tuple[grpc.StatusCode, str]] = {
    code: (STATUS_OF_KIND[meaning.kind], meaning.summary)
    for code, meaning in KNOWLEDGE_BASE_ERROR_CODES.items()
}


@dataclass(frozen=True)
class MappedError:
    """The status and message a failed RPC ends with, and the failure they came from."""

    code: grpc.StatusCode
    message: str
    failure: AwsFailure

    @property
    def cause(self) -> str:
        """The Bedrock error code or exception class, for logs and spans ("ThrottlingException")."""
        return self.failure.code


def map_error(exc: BaseException, codes: Mapping[str, Meaning] | None = None) -> MappedError:
    """The status for a failure of a Bedrock call; unknown failures are INTERNAL."""
    failure = classify(exc, codes)
    return MappedError(STATUS_OF_KIND[failure.kind], _message(failure), failure)


def map_retrieve_error(exc: BaseException) -> MappedError:
    """The status for a failed Knowledge Base Retrieve (its codes speak of a knowledge base)."""
    return map_error(exc, KNOWLEDGE_BASE_ERROR_CODES)


def _message(failure: AwsFailure) -> str:
    """Bedrock's own words after our phrase; nothing of a failure that is not AWS's."""
    if failure.from_bedrock:
        if failure.kind is Kind.UNKNOWN:
            return f"{failure.summary}: {failure.message}"
        return f"{failure.summary}: {failure.message} ({failure.code})"
    if failure.kind is Kind.UNKNOWN:
        return f"{failure.summary}: {failure.code}"  # our own bug: its text stays in the log
    return f"{failure.summary}: {failure.message}"
