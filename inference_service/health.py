"""The inference service's health: one name per dependency, kept true by background probes.

Names (grpc.health.v1): "" and dualnova.inference.v1.InferenceService (the
server), bedrock-runtime, bedrock, model/micro, model/pro, and optional names
that never count toward the server: knowledge-base (when
DUALNOVA_KNOWLEDGE_BASE_ID is set) and those added with add_optional()
(cloudwatch).

- Probes run every DUALNOVA_HEALTH_INTERVAL seconds, each bounded by
  DUALNOVA_HEALTH_TIMEOUT (never more than the interval, so a change shows
  within two intervals). Check and Watch only read what the last probe found.
- bedrock-runtime follows its probe and real traffic: the latest evidence wins.
  A probe that reaches Bedrock or a Chat call that gets Bedrock's stream makes
  it SERVING; a failed probe, or DUALNOVA_HEALTH_FAILED_CALLS Chat calls in a
  row failing for want of Bedrock (see counts_against_runtime), NOT_SERVING.
- model/* turns NOT_SERVING when the control plane says the model cannot serve;
  when the control plane cannot be asked, `bedrock` turns NOT_SERVING and the
  models keep their last known state (before the first answer: NOT_SERVING).
- knowledge-base is SERVING while bedrock-agent GetKnowledgeBase says the
  knowledge base exists and is ACTIVE, NOT_SERVING with its status or the
  error as the reason otherwise; never a Retrieve (billed per query). It
  leaves the server's status alone: a Chat without grounding is served
  whatever the knowledge base's state.
- The server is SERVING while Chat can be served for at least one model:
  bedrock-runtime SERVING and at least one model/* SERVING.
- Every name's first state and each change after it is logged once with its
  cause (the probe's error when it is down), and kept as the name's reason
  for dualnova.health.v1 ListDetails: a service that starts with credentials
  Bedrock refuses says so in its first lines, before "listening".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from dualnova.routes import MICRO, PRO, ROUTES
from dualnova.server.health_service import HealthServicer, StatusBoard
from inference_service.bedrock import BedrockProbes, MappedError, ProbeResult
from inference_service.config import Settings

__all__ = [
    "CONTROL_PLANE",
    "KNOWLEDGE_BASE",
    "MODEL_NAMES",
    "RUNTIME",
    "SERVICE_NAME",
    "InferenceHealth",
    "RuntimeHealth",
    "chat_can_be_served",
    "counts_against_runtime",
]

logger = logging.getLogger(__name__)

SERVICE_NAME = "dualnova.inference.v1.InferenceService"
RUNTIME = "bedrock-runtime"
CONTROL_PLANE = "bedrock"
KNOWLEDGE_BASE = "knowledge-base"
# Model alias -> its health name.
MODEL_NAMES: Mapping[str, str] = {alias: f"model/{alias}" for alias in ROUTES}

# Why a name is SERVING, for the log line of its transition.
_RUNTIME_PROBE = "ListAsyncInvokes"
_RUNTIME_PROBED = f"the probe ({_RUNTIME_PROBE}) reached Bedrock with this service's credentials"
_RUNTIME_CALLED = "a Chat call got Bedrock's stream"
_MODEL_USABLE = "the control plane says the model is usable and streams"
_CONTROL_PLANE_ANSWERED = "the control plane answered the model checks"
# Why bedrock (and a model not yet known) is NOT_SERVING when no model check got an answer.
_CONTROL_PLANE_FAILED = "the control plane check failed"
_KNOWLEDGE_BASE_ACTIVE = "GetKnowledgeBase says the knowledge base is ACTIVE"


def chat_can_be_served(states: Mapping[str, bool]) -> bool:
    """The server's rule: the runtime is reachable and at least one model is usable."""
    return states[RUNTIME] and any(states[name] for name in MODEL_NAMES.values())


def counts_against_runtime(error: MappedError) -> bool:
    """Whether a failed Chat call is evidence that Bedrock's runtime is down.

    The classification decides (AwsFailure.endpoint_failed): Bedrock
    unreachable, a server error, refused credentials, a connection cut
    mid-stream. Throttling, the request's own faults, model errors and timeouts
    say nothing about the endpoint, and ModelNotReadyException or
    ModelStreamErrorException speak of one model's answer: counting them would
    let one failing model take the whole server (and every replica) out of
    rotation.
    """
    return error.failure.endpoint_failed


class RuntimeHealth:
    """bedrock-runtime from both kinds of evidence; chat.py reports every call's outcome here."""

    def __init__(self, board: StatusBoard, failed_calls: int) -> None:
        self._board = board
        self._threshold = failed_calls
        self._failures = 0

    async def probed(self, result: ProbeResult) -> None:
        if result.reached is None:
            # Throttled: no news, unless nothing is known yet (then say why it is not SERVING).
            await self._board.assume(RUNTIME, False, f"no answer yet: {result.detail}")
            return
        if result.reached:
            self._failures = 0
            await self._board.set(RUNTIME, True, _RUNTIME_PROBED)
            return
        await self._board.set(
            RUNTIME, False, f"the probe ({_RUNTIME_PROBE}) failed: {result.detail}"
        )

    async def call_reached_bedrock(self) -> None:
        """A Chat call got Bedrock's stream: the runtime works. Cheap when nothing changes."""
        self._failures = 0
        await self._board.set(RUNTIME, True, _RUNTIME_CALLED)

    async def call_failed(self, error: MappedError) -> None:
        if not counts_against_runtime(error):
            return
        self._failures += 1
        if self._failures >= self._threshold:
            await self._board.set(
                RUNTIME,
                False,
                f"{self._failures} Chat calls in a row failed; last: {error.cause}",
            )


class InferenceHealth:
    """The health servicer, its names, and the probe loop; server.py starts and stops it."""

    def __init__(self, settings: Settings, probes: BedrockProbes) -> None:
        self.servicer = HealthServicer()
        self.board = StatusBoard(
            self.servicer,
            service_name=SERVICE_NAME,
            dependencies=(RUNTIME, CONTROL_PLANE, *MODEL_NAMES.values()),
            overall=chat_can_be_served,
            initial_reason="the first probe has not finished",
        )
        self.runtime = RuntimeHealth(self.board, settings.health_failed_calls)
        self._probes = probes
        self._models = {
            MODEL_NAMES[MICRO]: settings.micro_model,
            MODEL_NAMES[PRO]: settings.pro_model,
        }
        self._knowledge_base = settings.knowledge_base_id
        if self._knowledge_base is not None:
            self.board.add_extra(KNOWLEDGE_BASE)
        self._interval_s = settings.health_interval_s
        self._task: asyncio.Task[None] | None = None

    def add_optional(self, name: str) -> Callable[[bool, str], Awaitable[None]]:
        """Report a dependency (cloudwatch) that must never decide the server's status.

        Returns the coroutine function its owner calls with (serving, reason)
        whenever its state may have changed.
        """
        self.board.add_extra(name)

        async def report(serving: bool, reason: str = "") -> None:
            await self.board.set(name, serving, reason)

        return report

    async def start(self) -> None:
        """Publish, probe once (so the first answer a client gets is real), then keep probing."""
        await self.board.publish()
        await self.probe_once()
        self._task = asyncio.create_task(self._probe_forever(), name="health-probes")

    async def stop(self) -> None:
        """Stop probing (names stay as they are; shutdown sets them NOT_SERVING)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._probes.aclose()

    async def probe_once(self) -> None:
        """One round: the runtime, every model and the knowledge base at once, each within the
        probe timeout."""
        names = list(self._models)
        knowledge_base, (runtime, *models) = await asyncio.gather(
            self._probe_knowledge_base(),
            asyncio.gather(
                self._probes.runtime(), *(self._probes.model(self._models[n]) for n in names)
            ),
        )
        await self.runtime.probed(runtime)
        if knowledge_base is not None:
            await self._knowledge_base_probed(knowledge_base)
        for name, result in zip(names, models, strict=True):
            if result.reached:
                usable = bool(result.usable)
                await self.board.set(name, usable, result.detail if not usable else _MODEL_USABLE)
            else:
                # The control plane could not be asked: the last known state stays; before
                # the first answer the model is NOT_SERVING, and this says why.
                await self.board.assume(name, False, f"{_CONTROL_PLANE_FAILED}: {result.detail}")
        if any(result.reached for result in models):
            await self.board.set(CONTROL_PLANE, True, _CONTROL_PLANE_ANSWERED)
        elif all(result.reached is False for result in models):
            await self.board.set(
                CONTROL_PLANE, False, f"{_CONTROL_PLANE_FAILED}: {models[0].detail}"
            )
        else:
            detail = next(result.detail for result in models if not result.reached)
            await self.board.assume(CONTROL_PLANE, False, f"no answer yet: {detail}")

    async def _probe_knowledge_base(self) -> ProbeResult | None:
        if self._knowledge_base is None:
            return None
        return await self._probes.knowledge_base(self._knowledge_base)

    async def _knowledge_base_probed(self, result: ProbeResult) -> None:
        if result.reached is None:
            # Throttled: no news, unless nothing is known yet.
            await self.board.assume(KNOWLEDGE_BASE, False, f"no answer yet: {result.detail}")
        elif result.reached and result.usable:
            await self.board.set(KNOWLEDGE_BASE, True, _KNOWLEDGE_BASE_ACTIVE)
        else:
            await self.board.set(KNOWLEDGE_BASE, False, f"GetKnowledgeBase: {result.detail}")

    async def _probe_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self._interval_s
        while True:
            await asyncio.sleep(max(0.0, next_round - loop.time()))
            # Fixed rate (a round takes at most the timeout); if the loop fell behind, the
            # next round still waits half an interval rather than running back to back.
            next_round = max(next_round + self._interval_s, loop.time() + 0.5 * self._interval_s)
            try:
                await self.probe_once()
            except Exception:  # the loop's boundary: a bug in one round must not end probing
                logger.exception("health probe round failed")
