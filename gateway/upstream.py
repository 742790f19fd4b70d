"""The gateway's one connection to the inference service.

One long-lived grpc.aio channel serves every DualChat: HTTP/2 multiplexes the
streams, so a channel per call would only add handshakes. With a resolver
target (dns:///inference:50051) the channel sees every replica's address and
the round_robin policy spreads calls over them one by one; the inference
servers' max connection age makes the channel re-resolve, so new replicas
join the rotation. Anything else that follows the upstream's state (a health
follower) belongs here too.
"""

from __future__ import annotations

import json

import grpc

from dualnova.inference.v1 import inference_pb2_grpc

__all__ = ["SERVICE_CONFIG", "Upstream", "channel_options"]

# round_robin per call instead of the default pick_first (which pins every call
# of this process to one replica). Set both ways: the service config is the
# documented mechanism, the channel arg makes it win over a config a DNS TXT
# record might carry.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# Keepalive pings detect a replica that vanished without closing the connection
# (a lost node) while a stream waits for tokens. Only during calls, and no more
# often than every 5 minutes: by default a gRPC server counts quicker pings on
# a quiet connection as abuse and sends GOAWAY after two. Lower this together
# with the inference server's grpc.http2.min_ping_interval_without_data_ms.
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000


def channel_options() -> list[tuple[str, object]]:
    """Channel arguments of the upstream channel (round-robin, keepalive)."""
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
    ]


class Upstream:
    """The channel to the inference service and its stub. Create inside the running loop."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=channel_options())
        self.stub = inference_pb2_grpc.InferenceServiceStub(self.channel)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; running calls get `grace` seconds, then are cancelled."""
        await self.channel.close(grace)
