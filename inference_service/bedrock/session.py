"""The AWS session and the transports built from it: where the inference path uses boto3.

boto3 is used for what it resolves, once at start: the region, the credential
chain, the endpoint (AWS_ENDPOINT_URL_*, partition, FIPS), the CA bundle and
AWS_MAX_ATTEMPTS. No call goes through a boto3 client; calls go through
transport.py. (cloudwatch.py, the optional token-metrics publisher, imports
boto3 too: it sends PutMetricData with a boto3 client on a thread of its own.)
"""

from __future__ import annotations

import logging
from typing import Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from inference_service.bedrock.transport import AwsTransport, CredentialSource, Endpoint, Timeouts
from inference_service.config import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "BedrockSetupError",
    "build_transport",
    "call_transport",
    "configured_max_attempts",
    "open_session",
]


class BedrockSetupError(Exception):
    """The Bedrock client cannot be built (no region, no credentials); the message says which."""


def open_session(settings: Settings) -> boto3.session.Session:
    """The AWS session every Bedrock client is built from; BedrockSetupError if it cannot work.

    Region and credentials are checked here so a misconfigured service stops at
    start with one line, instead of failing on its first request.
    """
    try:
        session = boto3.session.Session(region_name=settings.aws_region)
        if not session.region_name:
            raise BedrockSetupError(
                "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION,"
                " or a region in the AWS profile)"
            )
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise BedrockSetupError(f"cannot load the AWS configuration: {exc}") from exc
    if credentials is None:
        raise BedrockSetupError(
            "no AWS credentials found in the default chain (environment, AWS_PROFILE,"
            " SSO, web identity, container or instance role)"
        )
    return session


# The Bedrock endpoints this service calls: ConverseStream and probes, control-plane probes,
# Knowledge Base Retrieve (bedrock-agent-runtime) and its GetKnowledgeBase probe (bedrock-agent).
BedrockService = Literal["bedrock-runtime", "bedrock", "bedrock-agent-runtime", "bedrock-agent"]


def build_transport(
    session: boto3.session.Session,
    service: BedrockService,
    timeouts: Timeouts,
    *,
    max_attempts: int,
    user_agent: str,
) -> AwsTransport:
    """A transport to `service` with what boto3 resolves for it: endpoint, region, credentials.

    The boto3 client is built only to resolve the endpoint (AWS_ENDPOINT_URL_*,
    partition, FIPS settings) the way every AWS SDK does; no call goes through it.
    """
    try:
        client = session.client(service, config=Config(user_agent_extra=user_agent))
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise BedrockSetupError(f"cannot build the {service} client: {exc}") from exc
    if credentials is None:
        raise BedrockSetupError(f"no AWS credentials for {service}")
    return AwsTransport(
        Endpoint.of_client(client),
        CredentialSource(credentials),
        timeouts=timeouts,
        max_attempts=max_attempts,
        user_agent=user_agent,
        ca_bundle=session._session.get_config_variable("ca_bundle"),
    )


def call_transport(
    settings: Settings, session: boto3.session.Session, service: BedrockService
) -> AwsTransport:
    """The transport the service's calls (not its probes) use: the configured timeouts and
    attempts (DUALNOVA_BEDROCK_MAX_ATTEMPTS, else AWS_MAX_ATTEMPTS), logged once at start."""
    transport = build_transport(
        session,
        service,
        Timeouts(settings.bedrock_connect_timeout_s, settings.bedrock_read_timeout_s),
        max_attempts=settings.bedrock_max_attempts or configured_max_attempts(session),
        user_agent="dualnova-inference",
    )
    logger.info(
        "%s client ready in %s",
        service,
        transport.endpoint.region,
        extra={"address": transport.endpoint.url},
    )
    return transport


def configured_max_attempts(session: boto3.session.Session) -> int:
    """AWS_MAX_ATTEMPTS (or max_attempts in the profile), else botocore's standard 3."""
    value = session._session.get_config_variable("max_attempts")
    return int(value) if value else _STANDARD_MAX_ATTEMPTS


_STANDARD_MAX_ATTEMPTS = 3
