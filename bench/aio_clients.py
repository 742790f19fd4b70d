"""The second baseline: the same converse_stream through aiobotocore, every stream on one loop.

boto3 holds a thread per stream, which is what the seed app did and what the
inference service did before it read Bedrock on its event loop. aiobotocore
is botocore's request pipeline on asyncio, so it is the fair yardstick for a
relay that runs on one loop: same request, same signer and parser, no threads.

aiobotocore pins botocore to a narrow range, so it lives in the `bench` extra
(`make bench` installs it into its own environment). Without it the
aiobotocore scenarios are skipped with `unavailable()`'s reason.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from importlib import metadata
from types import ModuleType
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from bench.clients import Sample, StreamTally, client_config

# aiobotocore's modules, or None where the bench extra is not installed.
try:
    aio_config: ModuleType | None = importlib.import_module("aiobotocore.config")
    aio_session: ModuleType | None = importlib.import_module("aiobotocore.session")
except ImportError:
    aio_config = aio_session = None

_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)


def unavailable() -> str | None:
    """Why the aiobotocore scenarios cannot run here, or None if they can."""
    if aio_session is None:
        return "aiobotocore not installed (pip install -e '.[bench]'; make bench does)"
    return None


def versions() -> dict[str, str]:
    """aiobotocore and the botocore it runs on: the JSON records what each baseline used."""
    found = {}
    for package in ("aiobotocore", "botocore"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def aio_bedrock_client(
    aws_env: Mapping[str, str], *, pool_size: int, timeout_s: float
) -> AbstractAsyncContextManager[Any]:
    """A bedrock-runtime client like bench.clients.bedrock_client, on asyncio; `async with` it."""
    if aio_session is None or aio_config is None:
        raise RuntimeError(unavailable())
    config = aio_config.AioConfig(**client_config(pool_size=pool_size, timeout_s=timeout_s))
    return aio_session.get_session().create_client(
        "bedrock-runtime",
        endpoint_url=aws_env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
        region_name=aws_env["AWS_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )


async def aio_stream(
    client: Any, route: str, kwargs: Mapping[str, Any], started: float | None = None
) -> Sample:
    """One converse_stream read to its end on this loop. `started` defaults to now."""
    tally = StreamTally(route, started)
    try:
        response = await client.converse_stream(**kwargs)
        async for event in response["stream"]:
            tally.see(event)
    except _FAILURES as exc:
        return tally.failed(exc)
    return tally.ended()


async def aio_dual(client: Any, kwargs_by_route: Mapping[str, Mapping[str, Any]]) -> list[Sample]:
    """Micro and Pro at once on this loop, both timed from the same start, as DualChat's are."""
    started = time.perf_counter()
    micro, pro = await asyncio.gather(
        aio_stream(client, "micro", kwargs_by_route["micro"], started),
        aio_stream(client, "pro", kwargs_by_route["pro"], started),
    )
    return [micro, pro]
