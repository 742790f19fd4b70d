"""The unbilled Bedrock calls behind the health probes, and what each answer means.

- bedrock-runtime: ListAsyncInvokes (GET /async-invoke, maxResults=1). It is
  signed with this service's credentials and sent to the endpoint Chat uses,
  and Bedrock bills nothing for it. No probe ever sends Converse or
  ConverseStream. Any answer from Bedrock that is not a credential or server
  error proves the point, so an AccessDeniedException (a role allowed to stream
  but not to list async jobs) still counts as reachable.
- bedrock (control plane) and model/*: GetFoundationModel for a model id
  (the model exists, its lifecycle is ACTIVE or LEGACY, it supports response
  streaming); for an inference-profile id, GetInferenceProfile (ACTIVE) and
  then GetFoundationModel of the model the profile routes to.

The clients come from the Chat client's session (same credentials, region and
endpoint overrides) but make one attempt each (the next probe is the retry)
with connect and read timeouts of the probe timeout, on their own threads so a
probe never waits behind streams.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from inference_service.bedrock import BedrockSetupError
from inference_service.config import Settings

__all__ = ["BedrockProbes", "ProbeResult", "build_probes", "is_inference_profile"]

# LEGACY models still serve until their end-of-life date; taking the service out
# of rotation for a deprecation notice would be an outage of our own making.
USABLE_LIFECYCLES = ("ACTIVE", "LEGACY")

# AWS errors meaning "these credentials were not accepted" (authentication, not authorisation).
_CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
_THROTTLING_ERRORS = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})

# Geography prefixes of system-defined cross-region inference profiles ("us.amazon.nova-pro-v1:0").
# No model provider is named like one, so the prefix tells a profile from a model id.
_PROFILE_PREFIXES = frozenset({"us", "us-gov", "eu", "apac", "global", "ca", "jp", "au"})
_PROFILE_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:\d*:(application-)?inference-profile/")
_FOUNDATION_ARN_ID = re.compile(r":foundation-model/(?P<id>.+)$")


@dataclass(frozen=True)
class ProbeResult:
    """What one probe learned.

    `reached`: Bedrock answered and accepted this service's credentials (True),
    or could not be reached, refused the credentials or failed on its side
    (False); None when the answer says nothing either way (throttled).
    `usable` (model checks only): the model can serve Chat; None unless reached.
    """

    reached: bool | None
    usable: bool | None = None
    detail: str = ""


def is_inference_profile(model_id: str) -> bool:
    """True for a cross-region or application inference profile id or ARN."""
    if model_id.startswith("arn:"):
        return _PROFILE_ARN.match(model_id) is not None
    return model_id.partition(".")[0] in _PROFILE_PREFIXES


class BedrockProbes:
    """The probe calls, each awaited with the probe timeout while its thread does the I/O."""

    def __init__(self, runtime_client: Any, control_client: Any, timeout_s: float) -> None:
        self._runtime = runtime_client
        self._control = control_client
        self._timeout_s = timeout_s
        # A round runs 1 + one per model at once; room for a few rounds whose threads
        # are still finishing after their awaits gave up.
        self._pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="bedrock-probe")

    async def runtime(self) -> ProbeResult:
        """Is the bedrock-runtime endpoint reachable with these credentials?"""
        return await self._run(self._list_async_invokes)

    async def model(self, model_id: str) -> ProbeResult:
        """Can `model_id` (a model or inference-profile id) serve ConverseStream?"""
        return await self._run(self._check_model, model_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, call: Callable[..., ProbeResult], *args: Any) -> ProbeResult:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, call, *args), self._timeout_s
            )
        except TimeoutError:
            return ProbeResult(False, detail=f"no answer within {self._timeout_s:g} s")

    # ---- on a probe thread ----------------------------------------------------

    def _list_async_invokes(self) -> ProbeResult:
        try:
            self._runtime.list_async_invokes(maxResults=1)
        except (ClientError, BotoCoreError) as exc:
            return _failure(exc)
        return ProbeResult(True)

    def _check_model(self, model_id: str) -> ProbeResult:
        try:
            foundation_id = model_id
            if is_inference_profile(model_id):
                profile = self._control.get_inference_profile(inferenceProfileIdentifier=model_id)
                if profile.get("status") != "ACTIVE":
                    return ProbeResult(True, False, f"inference profile is {profile.get('status')}")
                routed = _routed_model(profile)
                if routed is None:
                    return ProbeResult(True, False, "inference profile lists no model")
                foundation_id = routed
            details = self._control.get_foundation_model(modelIdentifier=foundation_id)
        except (ClientError, BotoCoreError) as exc:
            return _failure(exc)
        return _judge(details.get("modelDetails", {}))


def _routed_model(profile: Mapping[str, Any]) -> str | None:
    """The foundation model id behind a profile (the same model in every region it lists)."""
    for model in profile.get("models", []):
        match = _FOUNDATION_ARN_ID.search(str(model.get("modelArn", "")))
        if match:
            return match.group("id")
    return None


def _judge(details: Mapping[str, Any]) -> ProbeResult:
    lifecycle = details.get("modelLifecycle", {}).get("status")
    if lifecycle not in USABLE_LIFECYCLES:
        return ProbeResult(True, False, f"model lifecycle is {lifecycle}")
    if not details.get("responseStreamingSupported"):
        return ProbeResult(True, False, "model does not support response streaming")
    return ProbeResult(True, True)


def _failure(exc: ClientError | BotoCoreError) -> ProbeResult:
    """What a failed probe call says about Bedrock (and, for model checks, the model)."""
    if isinstance(exc, BotoCoreError):  # no answer: connection, timeout, no credentials to sign
        return ProbeResult(False, detail=f"{type(exc).__name__}: {exc}")
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    http_status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _THROTTLING_ERRORS:
        return ProbeResult(None, detail=f"throttled ({code})")
    if code in _CREDENTIAL_ERRORS:
        return ProbeResult(False, detail=f"credentials refused ({code}): {message}")
    if http_status >= 500:
        return ProbeResult(False, detail=f"{code or 'HTTP ' + str(http_status)}: {message}")
    # Bedrock answered and refused this request (not found, access denied, invalid):
    # it is reachable, and whatever was asked about is not usable.
    return ProbeResult(True, False, f"{code}: {message}")


def build_probes(settings: Settings, session: boto3.session.Session) -> BedrockProbes:
    """Probe clients from the service's AWS session, tuned to fail fast."""
    timeout = settings.health_timeout_s
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": 1},
        user_agent_extra="dualnova-health",
    )
    try:
        runtime = session.client("bedrock-runtime", config=config)
        control = session.client("bedrock", config=config)
    except BotoCoreError as exc:
        raise BedrockSetupError(f"cannot build the Bedrock probe clients: {exc}") from exc
    return BedrockProbes(runtime, control, timeout)
