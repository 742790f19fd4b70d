"""Our Usage message in the shape of Bedrock's metadata usage, to compare with the emulator's."""

from __future__ import annotations

from dualnova.chat.v1 import chat_pb2


def usage_dict(usage: chat_pb2.Usage) -> dict[str, int]:
    """Bedrock's `usage` object for these counts (cache fields only when non-zero, as it sends)."""
    result = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.total_tokens,
    }
    if usage.cache_read_input_tokens or usage.cache_write_input_tokens:
        result["cacheReadInputTokens"] = usage.cache_read_input_tokens
        result["cacheWriteInputTokens"] = usage.cache_write_input_tokens
    return result
