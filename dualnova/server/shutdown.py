"""Graceful shutdown, the same for both servers: report NOT_SERVING, wait, drain, exit.

On SIGTERM (what Kubernetes, ECS and compose send) the order matters:
1. every health name goes NOT_SERVING at once, so probes and balancers stop
   choosing this replica;
2. the server keeps accepting calls for `delay` seconds, because balancers act
   on the next probe, not instantly, and calls they still send must not fail;
3. open Watch streams end (they have seen NOT_SERVING), new calls are refused,
   and running calls get `grace` seconds to finish before they are cancelled.
SIGINT (Ctrl-C at a terminal) skips the delay: nobody balances over a laptop.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc

from dualnova.server.health_service import HealthServicer

__all__ = ["drain", "stop_signals"]

logger = logging.getLogger(__name__)


def stop_signals() -> asyncio.Future[signal.Signals]:
    """Handle SIGTERM and SIGINT from now on; the future resolves to the first one received.

    Call it before slow start-up work, so a signal that arrives early still
    leads to a clean stop rather than the default abrupt exit.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def note(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, note, sig)
    return received


async def drain(
    server: grpc.aio.Server,
    health: HealthServicer,
    *,
    delay: float,
    grace: float,
    received: signal.Signals = signal.SIGTERM,
) -> None:
    """Run steps 1-3 above; returns when the server has stopped."""
    await health.enter_graceful_shutdown()
    if received is signal.SIGTERM and delay > 0:
        logger.info(f"health NOT_SERVING; still accepting calls for {delay:g} s")
        await asyncio.sleep(delay)
    health.end_watches()
    logger.info(f"refusing new calls; running calls may finish within {grace:g} s")
    await server.stop(grace)
