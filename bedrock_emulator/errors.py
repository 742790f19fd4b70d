"""Bedrock's errors as the rest-json protocol puts them on the wire.

An error before the stream is an HTTP status, an `x-amzn-ErrorType` header
(`<Name>:http://internal.amazon.com/coral/com.amazon.bedrock/`, which botocore
cuts at the first colon) and a JSON body `{"message": ...}`. One table holds
the status of each name so no handler picks its own.
"""

from __future__ import annotations

import json

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# Messages Bedrock sends, reused wherever the same condition arises.
INVALID_TOKEN = "The security token included in the request is invalid."
NO_MODEL_ACCESS = "You don't have access to the model with the specified model ID."
INVALID_MODEL_ID = "The provided model identifier is invalid."
UNRESOLVED_FOUNDATION_MODEL = (
    "Could not resolve the foundation model from the provided model identifier."
)
TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
SERVICE_UNAVAILABLE = "Bedrock is unable to process your request."
INTERNAL = "The system encountered an unexpected error during processing. Try your request again."
MODEL_STREAM_ERROR = (
    "The model encountered an error while streaming the response. Try your request again."
)


class BedrockError(Exception):
    """An error Bedrock answers instead of a result; `code` is the exception name."""

    def __init__(self, code: str, message: str) -> None:
        if code not in STATUS:
            raise ValueError(f"no HTTP status known for {code}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code + ERROR_TYPE_SUFFIX}

    def body(self) -> bytes:
        return json.dumps({"message": self.message}).encode()


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def constraint(path: str, value: object, requirement: str) -> BedrockError:
    """A ValidationException in the coral style Bedrock uses for shape constraints."""
    return validation(
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
        f"constraint: {requirement}"
    )
