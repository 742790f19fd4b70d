"""RESOURCE_EXHAUSTED that says when to try again: google.rpc.RetryInfo in the status details.

Both services refuse work past a limit at once rather than queueing it; the
details (grpc-status-details-bin, read with grpcio-status's
rpc_status.from_call) tell a client or a balancer how long to wait.
"""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = ["exhausted_trailers"]


def exhausted_trailers(message: str, retry_after_s: float) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata for RESOURCE_EXHAUSTED `message` with a RetryInfo of `retry_after_s`."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    )
    return tuple(status.trailing_metadata)
