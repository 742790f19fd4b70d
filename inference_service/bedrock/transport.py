"""Signed AWS requests on the event loop: botocore's parts over aiohttp, no thread per call.

botocore resolves, once at start, what it is good at: the credential chain
(environment, profile, SSO, web identity, container and instance roles,
credential_process), the region, the endpoint (including
AWS_ENDPOINT_URL_*), the CA bundle. This module then signs each request with
botocore's own SigV4 signer and sends it with aiohttp, so a ConverseStream is
a coroutine reading a socket instead of a thread blocked on one. Measured
against the thread-per-stream boto3 path, see the README's Performance
section.

What botocore's pipeline did per call is kept, each in one place here:
- credentials that expire are refreshed before they do (botocore's own
  advisory window); the refresh is an HTTP call or a subprocess, so it runs on
  a thread, one at a time, and the loop keeps serving other streams;
- retries as botocore's "standard" mode: up to `max_attempts` in all, only
  until a 2xx answer's headers arrive (never once a stream has begun), on
  throttling codes, 5xx and 429 answers and connection failures, with
  jittered exponential backoff and a shared retry quota so an outage does not
  multiply the load;
- connect and read timeouts (the read timeout bounds every wait for bytes,
  the headers and each later read alike);
- failures raised as the botocore exceptions boto3 raises (ClientError with
  Bedrock's code and message, EndpointConnectionError, ReadTimeoutError, ...)
  so failures.py classifies them as it would boto3's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import botocore
from botocore import exceptions as boto
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.retries.quota import RetryQuota
from yarl import URL

from inference_service.bedrock.failures import FailureKind, classify

__all__ = ["AwsTransport", "CredentialSource", "Endpoint", "Timeouts"]

logger = logging.getLogger(__name__)

# botocore's standard mode: what is worth another attempt besides throttling (failures.py).
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_THROTTLING_STATUS = 429
_MAX_BACKOFF_S = 20.0
_THROTTLING_BASE_S = 1.0
_TRANSIENT_BASE_S = 0.05
# The quota is shared by every call of one transport (botocore: per client).
_RETRY_COST = 5
_TIMEOUT_RETRY_COST = 10
_NO_RETRY_INCREMENT = 1


@dataclass(frozen=True)
class Endpoint:
    """Where one AWS service is reached and how its requests are signed."""

    url: str  # scheme://host[:port], no trailing slash
    region: str
    signing_name: str  # "bedrock" for both bedrock-runtime and the control plane

    @classmethod
    def of_client(cls, client: Any) -> Endpoint:
        """What a built boto3 client resolved (AWS_ENDPOINT_URL_*, region, partition)."""
        meta = client.meta
        return cls(
            url=str(meta.endpoint_url).rstrip("/"),
            region=str(meta.region_name),
            signing_name=str(meta.service_model.signing_name),
        )


@dataclass(frozen=True)
class Timeouts:
    connect_s: float
    read_s: float


class CredentialSource:
    """The chain's credentials, frozen per request.

    botocore refreshes RefreshableCredentials inside get_frozen_credentials(),
    blocking on an HTTP call (container, instance role) or a subprocess
    (credential_process). When a refresh is due, that call runs on a thread,
    one at a time; otherwise the frozen set is read directly (no I/O).
    """

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._lock = asyncio.Lock()

    async def frozen(self) -> ReadOnlyCredentials:
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            async with self._lock:
                if refresh_needed():  # still due: nobody refreshed while this call waited
                    return await asyncio.to_thread(self._credentials.get_frozen_credentials)
        return self._credentials.get_frozen_credentials()


class AwsTransport:
    """Signed requests to one endpoint from one aiohttp session, opened on first use."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: CredentialSource,
        *,
        timeouts: Timeouts,
        max_attempts: int,
        user_agent: str,
        ca_bundle: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
        )
        self.max_attempts = max(1, max_attempts)
        self._user_agent = f"{user_agent} Botocore/{botocore.__version__}"
        self._ca_bundle = ca_bundle
        self._quota = RetryQuota()
        self._proxy = proxy_for(endpoint.url)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = ssl.create_default_context(cafile=self._ca_bundle)
            self._session = aiohttp.ClientSession(
                # No pool limit: the service's stream cap bounds open streams already.
                connector=aiohttp.TCPConnector(limit=0, ssl=context, enable_cleanup_closed=True),
                timeout=self._timeout,
                # The proxy is resolved once (proxy_for): trust_env would read the
                # environment and ~/.netrc again on every request.
                trust_env=False,
                # Bedrock's answers are read as bytes; no cookies travel between calls.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """A 2xx response with its headers read and its body not; retried as botocore would.

        `path` is already percent-encoded (and may carry a query). The caller
        reads the body and then releases the response, or closes it to hang up.
        """
        attempt = 1
        cost_paid = 0
        while True:
            try:
                response = await self._attempt(method, path, operation, body, headers)
            except (boto.ClientError, boto.HTTPClientError, boto.ConnectionError) as exc:
                retry = self._retry(exc, attempt)
                if retry is None:
                    raise
                delay, cost_paid = retry
                logger.info(
                    "retrying an AWS call",
                    extra={"operation": operation, "attempt": attempt, "error": classify(exc).code},
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            # Success gives back what the last retry took (or a little, for none).
            self._quota.release(cost_paid or _NO_RETRY_INCREMENT)
            return response

    async def request_json(self, method: str, path: str, *, operation: str) -> dict[str, Any]:
        """A small JSON answer (control-plane reads, probes), body read and connection released."""
        response = await self.send(method, path, operation=operation)
        try:
            payload = await read_body(response, self.endpoint.url)
        finally:
            response.release()
        return json.loads(payload) if payload else {}

    async def _attempt(
        self,
        method: str,
        path: str,
        operation: str,
        body: bytes,
        headers: Mapping[str, str] | None,
    ) -> aiohttp.ClientResponse:
        url = self.endpoint.url + path
        signed = await self._signed_headers(method, url, body, headers)
        try:
            response = await self._http().request(
                method,
                URL(url, encoded=True),
                data=body or None,
                headers=signed,
                proxy=self._proxy,
                # Bedrock's answers are never compressed; nothing unsigned is added to the body.
                skip_auto_headers=("Accept-Encoding", "Content-Type"),
            )
        except aiohttp.ClientError as exc:
            raise translate_connection_error(exc, self.endpoint.url) from exc
        except TimeoutError as exc:
            raise boto.ConnectTimeoutError(endpoint_url=self.endpoint.url) from exc
        if response.status < 300:
            return response
        try:
            payload = await read_body(response, self.endpoint.url)
        finally:
            response.release()
        raise client_error(response.status, response.headers, payload, operation)

    async def _signed_headers(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        credentials = await self._credentials.frozen()
        request = AWSRequest(
            method=method,
            url=url,
            data=body,
            headers={"User-Agent": self._user_agent, **(headers or {})},
        )
        SigV4Auth(credentials, self.endpoint.signing_name, self.endpoint.region).add_auth(request)
        return dict(request.headers.items())

    def _retry(self, exc: Exception, attempt: int) -> tuple[float, int] | None:
        """(seconds to wait, quota taken) before the next attempt; None when this one is final."""
        if attempt >= self.max_attempts:
            return None
        throttled = False
        if isinstance(exc, boto.ClientError):
            failure = classify(exc)
            status = failure.http_status
            throttled = failure.kind is FailureKind.THROTTLED or status == _THROTTLING_STATUS
            transient = failure.code in _TRANSIENT_CODES or status in _TRANSIENT_STATUSES
            if not (throttled or transient):
                return None
        cost = _TIMEOUT_RETRY_COST if isinstance(exc, boto.ReadTimeoutError) else _RETRY_COST
        if not self._quota.acquire(cost):
            return None
        base = _THROTTLING_BASE_S if throttled else _TRANSIENT_BASE_S
        return random.random() * min(base * 2 ** (attempt - 1), _MAX_BACKOFF_S), cost


async def read_body(response: aiohttp.ClientResponse, endpoint_url: str) -> bytes:
    """The whole body of a small answer, connection failures as botocore's exceptions."""
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise translate_read_error(exc, endpoint_url) from exc


def client_error(
    status: int, headers: Mapping[str, str], payload: bytes, operation: str
) -> boto.ClientError:
    """A rest-json error answer as the ClientError botocore would raise for it."""
    try:
        parsed = json.loads(payload) if payload else {}
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    code = str(headers.get("x-amzn-ErrorType", "")).split(":", 1)[0]
    if not code:
        code = str(parsed.get("__type") or parsed.get("code") or "").rsplit("#", 1)[-1]
    message = str(parsed.get("message") or parsed.get("Message") or "")
    return boto.ClientError(
        {
            "Error": {"Code": code or str(status), "Message": message},
            "ResponseMetadata": {
                "RequestId": headers.get("x-amzn-RequestId", ""),
                "HostId": headers.get("x-amz-id-2", ""),
                "HTTPStatusCode": status,
                "HTTPHeaders": {key.lower(): value for key, value in headers.items()},
                # botocore counts its retries here; this transport logs each retry instead.
                "RetryAttempts": 0,
            },
        },
        operation,
    )


def translate_connection_error(exc: aiohttp.ClientError, endpoint_url: str) -> Exception:
    """aiohttp's failure to get an answer, as the botocore exception of the same meaning."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return boto.ConnectTimeoutError(endpoint_url=endpoint_url)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return boto.ReadTimeoutError(endpoint_url=endpoint_url)
    if isinstance(exc, aiohttp.ClientSSLError):
        return boto.SSLError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return boto.ProxyConnectionError(proxy_url=str(exc.host), error=exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return boto.EndpointConnectionError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return boto.ConnectionClosedError(endpoint_url=endpoint_url)
    return boto.HTTPClientError(error=exc)


def translate_read_error(exc: BaseException, endpoint_url: str) -> Exception:
    """A failure while reading an answer's body (the stream was cut, or went quiet)."""
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return boto.ReadTimeoutError(endpoint_url=endpoint_url)
    return boto.ResponseStreamingError(error=exc)


def proxy_for(url: str) -> str | None:
    """HTTPS_PROXY / HTTP_PROXY for `url` unless NO_PROXY covers its host, as botocore does."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme)
