"""The inference service's own Bedrock client, called in this process: the candidate itself.

The inference service reads ConverseStream with inference_service.bedrock
(botocore's credentials and signer over aiohttp, its own event-stream decoder).
Run here without gRPC, on one loop like aiobotocore, its CPU per call and per
1,000 deltas compares directly with aiobotocore's and boto3's: that is the
measurement that chose it (README, Performance).
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from bench.clients import ROUTE_DEFAULTS, Sample, StreamTally
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
    tally = StreamTally(route)
    stream = runtime.stream(call)
    try:
        async for batch in stream:
            for event in batch:
                if isinstance(event, TextDelta):
                    tally.delta()
                elif isinstance(event, Stopped):
                    tally.stopped = True
    except (BotoCoreError, ClientError, OSError, TimeoutError) as exc:
        return tally.failed(exc)
    finally:
        await stream.aclose()
    return tally.ended()
