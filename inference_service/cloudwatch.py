"""Token usage to Amazon CloudWatch: batched PutMetricData, off the request path, never in its way.

The seed chatbot called CloudWatch inline, with a parameter the API does not
take, and crashed the app when it failed. Here a Chat call only appends its
usage to a bounded in-memory queue (a full queue drops the sample and counts
it); a background task drains the queue every interval, folds the samples
into one statistic set per metric, model and route, and sends them with
PutMetricData on a thread of its own. A failed call is logged, its samples
are counted as dropped, and the `cloudwatch` health name goes NOT_SERVING
until a later call succeeds. Nothing here can raise into a request.

Metrics (namespace DUALNOVA_CLOUDWATCH_NAMESPACE, unit Count, dimensions
ModelId and Route, one datum per flush as SampleCount/Sum/Minimum/Maximum so
SampleCount is the number of calls): InputTokenCount, OutputTokenCount,
TotalTokenCount, and CacheReadInputTokenCount / CacheWriteInputTokenCount for
calls that read or wrote the prompt cache; beside them EstimatedCostUSD (unit
None, US dollars: the call's tokens times the configured prices, an estimate,
for models with a price). Route is micro or pro for calls from the gateway,
`direct` for calls without one.

This is the service's only CloudWatch caller, kept apart from the bedrock
package (which never calls CloudWatch); the client honours
AWS_ENDPOINT_URL_CLOUDWATCH and the credential chain as any boto3 client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import metrics

from dualnova.server.telemetry import INSTRUMENTATION_NAME
from inference_service.bedrock import UsageReport

__all__ = [
    "COST_METRIC",
    "HEALTH_NAME",
    "MAX_DATA_PER_CALL",
    "METRICS",
    "CloudWatchPublisher",
    "build_client",
    "metric_data",
]

logger = logging.getLogger(__name__)

HEALTH_NAME = "cloudwatch"
# PutMetricData takes at most 1,000 MetricData items per request.
MAX_DATA_PER_CALL = 1000
# CloudWatch metric name -> UsageReport field; the cache ones only for calls that used the cache.
METRICS: tuple[tuple[str, str], ...] = (
    ("InputTokenCount", "input_tokens"),
    ("OutputTokenCount", "output_tokens"),
    ("TotalTokenCount", "total_tokens"),
    ("CacheReadInputTokenCount", "cache_read_input_tokens"),
    ("CacheWriteInputTokenCount", "cache_write_input_tokens"),
)
_ONLY_WHEN_USED = frozenset({"cache_read_input_tokens", "cache_write_input_tokens"})
# The estimated cost per call, in US dollars (CloudWatch has no currency unit).
COST_METRIC = "EstimatedCostUSD"

StateListener = Callable[[bool, str], Awaitable[None]]


@dataclass(frozen=True)
class Sample:
    """One Chat call's usage, waiting for the next flush."""

    model_id: str
    route: str
    usage: UsageReport
    # Estimated US dollars; None when the model has no price.
    cost_usd: float | None = None


def build_client(region: str | None) -> Any:
    """A CloudWatch client that fails fast: a slow CloudWatch must not pile up flushes."""
    session = boto3.session.Session(region_name=region)
    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "total_max_attempts": 2},
        user_agent_extra="dualnova-inference",
    )
    return session.client("cloudwatch", config=config)


def metric_data(samples: Iterable[Sample], timestamp: datetime.datetime) -> list[dict[str, Any]]:
    """PutMetricData items: one statistic set per (metric, model, route) over `samples`."""
    stats: dict[tuple[str, str, str], list[float]] = {}

    def add(metric: str, sample: Sample, value: float) -> None:
        key = (metric, sample.model_id, sample.route)
        entry = stats.get(key)
        if entry is None:
            stats[key] = [1, value, value, value]
        else:
            entry[0] += 1
            entry[1] += value
            entry[2] = min(entry[2], value)
            entry[3] = max(entry[3], value)

    for sample in samples:
        for metric, field_name in METRICS:
            value = float(getattr(sample.usage, field_name))
            if field_name in _ONLY_WHEN_USED and value == 0:
                continue
            add(metric, sample, value)
        if sample.cost_usd is not None:
            add(COST_METRIC, sample, sample.cost_usd)
    return [
        {
            "MetricName": metric,
            "Dimensions": [
                {"Name": "ModelId", "Value": model_id},
                {"Name": "Route", "Value": route},
            ],
            "Timestamp": timestamp,
            "StatisticValues": {
                "SampleCount": count,
                "Sum": total,
                "Minimum": low,
                "Maximum": high,
            },
            "Unit": "None" if metric == COST_METRIC else "Count",
            "StorageResolution": 60,
        }
        for (metric, model_id, route), (count, total, low, high) in stats.items()
    ]


class CloudWatchPublisher:
    """The bounded queue, the flush loop, and the health state; one per server."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        *,
        interval_s: float,
        max_queue: int,
        on_state: StateListener | None = None,
    ) -> None:
        self._client = client
        self.namespace = namespace
        self._interval_s = interval_s
        self._max_queue = max_queue
        self._on_state = on_state
        self._pending: list[Sample] = []
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        # Samples lost: the queue was full, or the PutMetricData carrying them failed.
        self.dropped = 0
        self.serving = True
        self._dropped_counter = metrics.get_meter(INSTRUMENTATION_NAME).create_counter(
            "dualnova.cloudwatch.dropped",
            unit="{sample}",
            description="Usage samples that never reached CloudWatch, by reason.",
        )

    def record(
        self, model_id: str, route: str, usage: UsageReport, cost_usd: float | None = None
    ) -> None:
        """Queue one call's usage (and estimated cost); never blocks, never raises. Drops (and
        counts) when full."""
        if len(self._pending) >= self._max_queue:
            self._drop(1, "queue_full")
            return
        self._pending.append(Sample(model_id, route, usage, cost_usd))

    async def start(self) -> None:
        """Report the health name as SERVING (nothing has failed yet) and start flushing."""
        await self._set_state(True, "")
        self._task = asyncio.create_task(self._flush_forever(), name="cloudwatch-publisher")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and send what is queued, giving up after `timeout_s`."""
        try:
            await asyncio.wait_for(self._stop_then_flush(), timeout_s)
        except TimeoutError:
            logger.warning(f"CloudWatch did not take the last metrics within {timeout_s:g} s")
            if self._task is not None:  # still mid-flush: cut it, its samples count as dropped
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None

    async def _stop_then_flush(self) -> None:
        if self._task is not None:
            # Cancel the loop only between flushes: a flush cut mid-send would take
            # its samples with it. Holding the lock, the loop is asleep or waiting.
            async with self._flush_lock:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Send everything queued now, in as few PutMetricData calls as the API allows."""
        async with self._flush_lock:
            samples, self._pending = self._pending, []
            if not samples:
                return
            data = metric_data(samples, datetime.datetime.now(datetime.UTC))
            try:
                for chunk in _chunks(data, MAX_DATA_PER_CALL):
                    await _in_daemon_thread(
                        functools.partial(
                            self._client.put_metric_data, Namespace=self.namespace, MetricData=chunk
                        )
                    )
            except asyncio.CancelledError:
                self._drop(len(samples), "cancelled")  # stop() gave up waiting for CloudWatch
                raise
            except (BotoCoreError, ClientError) as error:
                self._drop(len(samples), "put_failed")
                logger.warning(
                    f"CloudWatch PutMetricData failed; {len(samples)} usage samples dropped",
                    extra={"error": str(error), "status": "NOT_SERVING"},
                )
                await self._set_state(False, f"PutMetricData failed: {error}")
                return
            await self._set_state(True, "")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception as error:  # the loop's boundary: one bad flush must not end publishing
                logger.exception("CloudWatch flush broke")
                await self._set_state(False, f"flush broke: {type(error).__name__}")

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        self._dropped_counter.add(count, {"reason": reason})

    async def _set_state(self, serving: bool, reason: str) -> None:
        self.serving = serving
        if self._on_state is not None:
            await self._on_state(serving, reason)


def _chunks(items: Sequence[dict[str, Any]], size: int) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in_daemon_thread(call: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run a blocking call on a daemon thread: a hung CloudWatch never holds the process at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as caught:  # handed to the awaiting coroutine, not swallowed
            result, error = None, caught
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="cloudwatch-put", daemon=True).start()
    return future
