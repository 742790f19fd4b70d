"""The AWS boundary of the inference service: every call to Bedrock, and what its failures mean.

- client.py: ConverseStream, a Conversation in and batches of typed events out,
  and the stream cap (BedrockRuntime); converse_request.py: the Conversation
  and the ConverseStream request built from it (content blocks, tools,
  guardrail, options);
- transport.py: signed AWS requests on the event loop (botocore's credentials
  and SigV4 signer over aiohttp), retries, timeouts, failures as botocore's
  exceptions; events.py: the event-stream decoder;
- knowledge_base.py: Knowledge Base Retrieve (bedrock-agent-runtime), through
  the same transport and retries;
- session.py: the AWS session and the transports built from it;
- probes.py: the unbilled health probes;
- failures.py: the one classification of AWS failures (classify);
- statuses.py: those failures as gRPC statuses, the one table.

Callers import from here; the modules' other names are theirs.
"""

from inference_service.bedrock.client import (
    Batch,
    BedrockRuntime,
    BedrockStream,
    BlockStopped,
    Cited,
    Event,
    GuardrailTraced,
    Started,
    Stopped,
    StreamsExhausted,
    TextDelta,
    ToolInputFragment,
    ToolUseStarted,
    UsageReport,
    build_client,
)
from inference_service.bedrock.converse_request import (
    ASSISTANT,
    USER,
    Conversation,
    content_json,
    converse_request,
    guardrail_json,
    tool_config_json,
)
from inference_service.bedrock.failures import (
    AwsFailure,
    FailureKind,
    StreamEndedEarly,
    classify,
)
from inference_service.bedrock.knowledge_base import (
    KnowledgeBases,
    Retrieved,
    RetrievedPassage,
    RetrieveQuery,
    build_knowledge_bases,
)
from inference_service.bedrock.probes import (
    BedrockProbes,
    ProbeResult,
    build_probes,
    is_inference_profile,
)
from inference_service.bedrock.session import (
    BedrockSetupError,
    build_transport,
    configured_max_attempts,
    open_session,
)
from inference_service.bedrock.statuses import (
    CLIENT_ERROR_CODES,
    RETRIEVE_ERROR_CODES,
    MappedError,
    map_error,
    map_retrieve_error,
)

__all__ = [
    "ASSISTANT",
    "CLIENT_ERROR_CODES",
    "RETRIEVE_ERROR_CODES",
    "USER",
    "AwsFailure",
    "Batch",
    "BedrockProbes",
    "BedrockRuntime",
    "BedrockSetupError",
    "BedrockStream",
    "BlockStopped",
    "Cited",
    "Conversation",
    "Event",
    "FailureKind",
    "GuardrailTraced",
    "KnowledgeBases",
    "MappedError",
    "ProbeResult",
    "RetrieveQuery",
    "Retrieved",
    "RetrievedPassage",
    "Started",
    "Stopped",
    "StreamEndedEarly",
    "StreamsExhausted",
    "TextDelta",
    "ToolInputFragment",
    "ToolUseStarted",
    "UsageReport",
    "build_client",
    "build_knowledge_bases",
    "build_probes",
    "build_transport",
    "classify",
    "configured_max_attempts",
    "content_json",
    "converse_request",
    "guardrail_json",
    "is_inference_profile",
    "map_error",
    "map_retrieve_error",
    "open_session",
    "tool_config_json",
]
