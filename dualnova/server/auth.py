"""Bearer tokens at a server: the interceptor that lets a call in, or ends it UNAUTHENTICATED.

Only the methods under the guarded service prefixes are checked; health and
(unless a server turns it off) reflection stay open, so probes and grpcurl's
listing need no token. With no token configured nothing is checked, as
before. A refused call hears one message whatever was wrong (no header, not
Bearer, a token nobody accepts), so a guess learns nothing; the log line
says the same, with the peer, and never the token.

With mutual TLS on (the server names a client CA), a verified client
certificate stands in for a token: a call without `authorization` is let in
under the certificate's identity (its common name, else its first subject
alternative name; `cert-` and a digest prefix if neither is a plain name).
A call that does send a token must send a right one.

A call let in runs with the caller's name as the current caller
(dualnova.server.callers): the log filter puts it in every line of the call,
this interceptor puts it on the call's server span (dualnova.caller), and the
gateway sends it upstream (x-dualnova-caller) for the inference service's
lines. Placed after rpc_tracing.ServerTracing, so the span exists and a
refusal is recorded on it as UNAUTHENTICATED.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry import trace

from dualnova.server.callers import (
    CALLER_ATTRIBUTE,
    CALLER_METADATA_KEY,
    TokenSource,
    relayed_name,
    set_caller,
)
from dualnova.server.interceptors import (
    Behavior,
    Context,
    Handler,
    ScopedInterceptor,
    behavior_of,
    rebuilt,
)

__all__ = ["REFUSAL", "BearerAuth", "certificate_name"]

logger = logging.getLogger(__name__)

# What every refused caller is told: what to send, never what was wrong with what it sent.
REFUSAL = (
    "this service needs a valid bearer token: send metadata 'authorization: Bearer <token>'"
    " (dualnova --token, or DUALNOVA_TOKEN)"
)
_AUTHORIZATION = "authorization"
_SCHEME = "bearer "


class BearerAuth(ScopedInterceptor):
    """Checks `authorization: Bearer <token>` on the guarded services' methods.

    `relay_caller`: take the caller's name from x-dualnova-caller when the
    call carries one (the inference service behind the gateway: the gateway
    names the caller it serves); otherwise the name is the token's.
    `refusal`: what a refused caller is told (REFUSAL unless the server's
    callers are not people, such as the inference service's one gateway).
    """

    def __init__(
        self,
        tokens: TokenSource,
        guarded_prefixes: Sequence[str],
        *,
        relay_caller: bool = False,
        refusal: str = REFUSAL,
    ) -> None:
        super().__init__(guarded_prefixes)
        self._tokens = tokens
        self._relay = relay_caller
        self._refusal = refusal

    def wrap(self, handler: Handler, method: str, details: grpc.HandlerCallDetails) -> Any:
        behavior = behavior_of(handler)
        if behavior is None:
            # An async generator would need a generator wrapper; DualNova's servicers write
            # with context.write, so this is a programming error.
            raise TypeError("BearerAuth guards coroutine handlers only")
        metadata = tuple(details.invocation_metadata or ())
        relayed = _relayed(metadata) if self._relay else None
        presented = _bearer(metadata)
        if self._tokens.enabled and presented is not None:
            # A token, when sent, must be right: a wrong one is never excused by a certificate.
            name = self._tokens.identify(presented)
            if name is None:
                return rebuilt(handler, _refuse(method, self._refusal))
            return rebuilt(handler, _as_caller(behavior, relayed or name))
        # No token (or none needed): a verified client certificate may name the caller, and
        # stands in for the token when one is needed. Only the call's context can tell.
        return rebuilt(
            handler,
            _by_certificate(
                behavior,
                _refuse(method, self._refusal),
                relayed,
                required=self._tokens.enabled,
            ),
        )


def _bearer(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    """The token of `authorization: Bearer <token>`; "" for any other authorization."""
    for key, value in metadata:
        if key == _AUTHORIZATION:
            if not isinstance(value, str) or value[: len(_SCHEME)].lower() != _SCHEME:
                return ""
            return value[len(_SCHEME) :].strip()
    return None


def certificate_name(context: Context) -> str | None:
    """The caller named by its verified client certificate (mutual TLS), else None.

    grpc reports peer identities only for a certificate it verified against the
    server's client CA. The name is the certificate's common name when that is a
    plain name (a SPIFFE URI in the SANs is not), else its first identity, else
    `cert-` and 8 hex digits of that identity's sha256.
    """
    identities = context.peer_identities()
    if not identities:
        return None
    common = context.auth_context().get("x509_common_name") or ()
    candidates = [*common, *identities]
    texts = [c.decode(errors="replace") if isinstance(c, bytes) else str(c) for c in candidates]
    for text in texts:
        if relayed_name(text) is not None:
            return text
    return f"cert-{hashlib.sha256(texts[0].encode()).hexdigest()[:8]}"


def _relayed(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == CALLER_METADATA_KEY:
            return relayed_name(value)
    return None


def _refuse(method: str, refusal: str) -> Behavior:
    async def refuse(request: Any, context: Context) -> None:
        logger.warning(
            f"call refused: no valid bearer token for {method}",
            extra={"status": "UNAUTHENTICATED", "peer": context.peer()},
        )
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)

    return refuse


def _by_certificate(
    behavior: Behavior, refuse: Behavior, relayed: str | None, *, required: bool
) -> Behavior:
    async def by_certificate(request: Any, context: Context) -> Any:
        name = certificate_name(context)
        if name is None and required:
            return await refuse(request, context)
        name = relayed or name
        if name is not None:
            set_caller(name)
            trace.get_current_span().set_attribute(CALLER_ATTRIBUTE, name)
        return await behavior(request, context)

    return by_certificate


def _as_caller(behavior: Behavior, name: str) -> Behavior:
    async def as_caller(request: Any, context: Context) -> Any:
        set_caller(name)  # this call's own context: it ends with the call
        trace.get_current_span().set_attribute(CALLER_ATTRIBUTE, name)
        return await behavior(request, context)

    return as_caller
