"""Who is calling: the SigV4 access key id (or a Bedrock API key) in Authorization.

Signatures are not verified; the emulator only needs to tell "no credentials"
and "credentials AWS would not recognise" from good ones. An access key id or
bearer token starting with INVALID counts as unrecognised, so tests can
simulate bad credentials with the real client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bedrock_emulator.catalog import DEFAULT_REGION
from bedrock_emulator.errors import INVALID_TOKEN, BedrockError

_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/\s,]+)/\d{8}/(?P<region>[^/\s,]+)/"
    r"[^/\s,]+/aws4_request"
)
_BEARER = re.compile(r"^Bearer\s+(?P<token>\S+)$")
REJECTED_PREFIX = "INVALID"


@dataclass(frozen=True)
class Caller:
    principal: str
    region: str


def signing_key(headers: Mapping[str, str]) -> str | None:
    """The access key id a SigV4 request names (tests check which credentials were used)."""
    sigv4 = _SIGV4.match(headers.get("Authorization", "").strip())
    return sigv4.group("key") if sigv4 else None


def authenticate(headers: Mapping[str, str]) -> Caller:
    """The caller, or UnrecognizedClientException (checked first, as AWS does)."""
    value = headers.get("Authorization", "").strip()
    sigv4 = _SIGV4.match(value)
    if sigv4 and not sigv4.group("key").startswith(REJECTED_PREFIX):
        return Caller(sigv4.group("key"), sigv4.group("region"))
    bearer = _BEARER.match(value)
    if bearer and not bearer.group("token").startswith(REJECTED_PREFIX):
        return Caller("api-key", DEFAULT_REGION)
    raise BedrockError("UnrecognizedClientException", INVALID_TOKEN)
