"""The inference service's own Bedrock client, called in this process: the candidate itself.

The inference service reads ConverseStream with inference_service.bedrock
(botocore's credentials and signer over aiohttp, its own event-stream decoder).
Run here without gRPC, on one loop like aiobotocore, its CPU per call and per
1,000 deltas compares directly with aiobotocore's and boto3's: that is the
measurement that chose it (README, Performance).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from bench.clients import ROUTE_DEFAULTS, Sample
from inference_service.bedrock import USER, BedrockRuntime, Conversation, Stopped, TextDelta
from inference_service.bedrock.transport import AwsTransport, CredentialSource, Endpoint, Timeouts


def bedrock_runtime(
    aws_env: Mapping[str, str], *, streams: int, timeout_s: float
) -> BedrockRuntime:
    """A BedrockRuntime like the inference service builds, pointed at the emulator."""
    transport = AwsTransport(
        Endpoint(aws_env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"], aws_env["AWS_REGION"], "bedrock"),
        CredentialSource(
            Credentials(aws_env["AWS_ACCESS_KEY_ID"], aws_env["AWS_SECRET_ACCESS_KEY"])
        ),
        timeouts=Timeouts(min(timeout_s, 10.0), timeout_s),
        max_attempts=3,
        user_agent="dualnova-bench",
    )
    return BedrockRuntime(transport, streams)


def conversation(model_id: str, question: str, route: str) -> Conversation:
    """What the inference service sends for this route's Chat (bench.clients.converse_kwargs)."""
    defaults = ROUTE_DEFAULTS[route]
    return Conversation(
        model_id=model_id,
        messages=((USER, question),),
        max_tokens=defaults.max_tokens,
        temperature=defaults.temperature,
    )


async def transport_stream(runtime: BedrockRuntime, route: str, call: Conversation) -> Sample:
    """One ConverseStream read to its end on this loop, counted as a caller counts deltas."""
    started = time.perf_counter()
    ttft: float | None = None
    deltas = 0
    stopped = False

    def since() -> float:
        return (time.perf_counter() - started) * 1000

    stream = runtime.stream(call)
    try:
        async for batch in stream:
            for event in batch:
                if isinstance(event, TextDelta):
                    deltas += 1
                    if ttft is None:
                        ttft = since()
                elif isinstance(event, Stopped):
                    stopped = True
    except (BotoCoreError, ClientError, OSError, TimeoutError) as exc:
        return Sample(route, ttft, since(), type(exc).__name__, deltas)
    finally:
        await stream.aclose()
    return Sample(route, ttft, since(), None if stopped else "no messageStop", deltas)
