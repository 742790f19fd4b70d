"""Noticing that the caller hung up, during pauses and writes.

aiohttp does not cancel a handler when its client disconnects, so the
streaming code asks here before and between every step: a pause returns
early (False) once the transport is gone, and a write that hits a closed
socket reports False instead of raising.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

POLL_S = 0.02


def peer_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.BaseRequest, seconds: float) -> bool:
    """Wait `seconds`; False as soon as the caller is gone (checked every POLL_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not peer_gone(request):
        left = deadline - loop.time()
        if left <= 0:
            return True
        await asyncio.sleep(min(left, POLL_S))
    return False


async def send(request: web.BaseRequest, response: web.StreamResponse, data: bytes) -> bool:
    """Write one chunk; False if the caller is gone."""
    if peer_gone(request):
        return False
    try:
        await response.write(data)
    except ConnectionResetError:
        return False
    return True
