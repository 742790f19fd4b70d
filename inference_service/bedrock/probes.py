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
- knowledge-base: bedrock-agent GetKnowledgeBase (the knowledge base exists
  and its status is ACTIVE), the control plane's free read. Never Retrieve,
  which is billed per query.

The transports come from the Chat client's session (same credentials, region
and endpoint overrides) but make one attempt each (the next probe is the
retry) with connect and read timeouts of the probe timeout, over connection
pools of their own so a probe never waits behind streams. They run on the
event loop like Chat's streams: no thread per probe.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import percent_encode

from inference_service.bedrock.failures import FailureKind, classify
from inference_service.bedrock.session import build_transport
from inference_service.bedrock.transport import AwsTransport, Timeouts
from inference_service.config import Settings

if TYPE_CHECKING:
    import boto3

__all__ = ["BedrockProbes", "ProbeResult", "build_probes", "is_inference_profile"]

# LEGACY models still serve until their end-of-life date; taking the service out
# of rotation for a deprecation notice would be an outage of our own making.
USABLE_LIFECYCLES = ("ACTIVE", "LEGACY")

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
    `detail`: why it failed, in words (Bedrock's error code and message, the
    connection error, the model's lifecycle), for health's reason and its log
    line; "" for a success.
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
    """The probe calls, each bounded by the probe timeout."""

    def __init__(
        self,
        runtime: AwsTransport,
        control: AwsTransport,
        timeout_s: float,
        *,
        agent: AwsTransport | None = None,
    ) -> None:
        self._runtime = runtime
        self._control = control
        # bedrock-agent, for the knowledge-base probe (None: no knowledge base configured).
        self._agent = agent
        self._timeout_s = timeout_s

    async def runtime(self) -> ProbeResult:
        """Is the bedrock-runtime endpoint reachable with these credentials?"""
        return await self._bounded(self._list_async_invokes())

    async def model(self, model_id: str) -> ProbeResult:
        """Can `model_id` (a model or inference-profile id) serve ConverseStream?"""
        return await self._bounded(self._check_model(model_id))

    async def knowledge_base(self, knowledge_base_id: str) -> ProbeResult:
        """Is the knowledge base there and ACTIVE (GetKnowledgeBase; never a Retrieve)?"""
        return await self._bounded(self._get_knowledge_base(knowledge_base_id))

    async def aclose(self) -> None:
        await self._runtime.aclose()
        await self._control.aclose()
        if self._agent is not None:
            await self._agent.aclose()

    async def _bounded(self, probe: Awaitable[ProbeResult]) -> ProbeResult:
        try:
            return await asyncio.wait_for(probe, self._timeout_s)
        except TimeoutError:
            return ProbeResult(
                False, detail=f"no answer within {self._timeout_s:g} s (DUALNOVA_HEALTH_TIMEOUT)"
            )

    async def _list_async_invokes(self) -> ProbeResult:
        try:
            await self._runtime.request_json(
                "GET", "/async-invoke?maxResults=1", operation="ListAsyncInvokes"
            )
        except (ClientError, BotoCoreError) as exc:
            return _failure(exc)
        return ProbeResult(True)

    async def _check_model(self, model_id: str) -> ProbeResult:
        try:
            foundation_id = model_id
            if is_inference_profile(model_id):
                profile = await self._control.request_json(
                    "GET",
                    f"/inference-profiles/{percent_encode(model_id)}",
                    operation="GetInferenceProfile",
                )
                if profile.get("status") != "ACTIVE":
                    return ProbeResult(True, False, f"inference profile is {profile.get('status')}")
                routed = _routed_model(profile)
                if routed is None:
                    return ProbeResult(True, False, "inference profile lists no model")
                foundation_id = routed
            details = await self._control.request_json(
                "GET",
                f"/foundation-models/{percent_encode(foundation_id)}",
                operation="GetFoundationModel",
            )
        except (ClientError, BotoCoreError) as exc:
            return _failure(exc)
        return _judge(details.get("modelDetails", {}))

    async def _get_knowledge_base(self, knowledge_base_id: str) -> ProbeResult:
        if self._agent is None:
            raise RuntimeError("no bedrock-agent transport: build_probes() got no knowledge base")
        try:
            answer = await self._agent.request_json(
                "GET",
                f"/knowledgebases/{percent_encode(knowledge_base_id)}",
                operation="GetKnowledgeBase",
            )
        except (ClientError, BotoCoreError) as exc:
            return _failure(exc)
        status = answer.get("knowledgeBase", {}).get("status")
        if status != "ACTIVE":
            return ProbeResult(True, False, f"knowledge base {knowledge_base_id} is {status}")
        return ProbeResult(True, True)


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
    failure = classify(exc)
    if not failure.from_bedrock:  # no answer: connection, timeout, no credentials to sign
        return ProbeResult(False, detail=f"{failure.code}: {failure.message}")
    if failure.kind is FailureKind.THROTTLED:
        return ProbeResult(None, detail=f"throttled ({failure.code})")
    if failure.kind is FailureKind.CREDENTIALS:
        return ProbeResult(False, detail=f"credentials refused ({failure.code}): {failure.message}")
    if failure.server_side:
        return ProbeResult(False, detail=f"{failure.code}: {failure.message}")
    # Bedrock answered and refused this request (not found, access denied, invalid):
    # it is reachable, and whatever was asked about is not usable.
    return ProbeResult(True, False, f"{failure.code}: {failure.message}")


def build_probes(settings: Settings, session: boto3.session.Session) -> BedrockProbes:
    """Probe transports from the service's AWS session, tuned to fail fast."""
    timeouts = Timeouts(settings.health_timeout_s, settings.health_timeout_s)
    agent = None
    if settings.knowledge_base_id is not None:
        agent = build_transport(
            session, "bedrock-agent", timeouts, max_attempts=1, user_agent="dualnova-health"
        )
    return BedrockProbes(
        build_transport(
            session, "bedrock-runtime", timeouts, max_attempts=1, user_agent="dualnova-health"
        ),
        build_transport(session, "bedrock", timeouts, max_attempts=1, user_agent="dualnova-health"),
        settings.health_timeout_s,
        agent=agent,
    )
