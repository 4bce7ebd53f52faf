"""How a reply reaches the client, and how each configured fault breaks that on purpose.

Faults work on the raw transport (aborts, partial writes), which is why the simulator is an aiohttp
app: a framework that always completes its responses could not simulate a broken upstream.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

from aiohttp import web

from proxy.simulator.config import SimConfig

# Builds an error response in the wire format's own shape: (status, message, type, code).
ErrorFactory = Callable[[int, str, str, str | None], web.Response]

GARBAGE = b'{"id": "chatcmpl-sim-garbage", "object": chat.completion <<< this is not JSON'
MID_FAULTS = frozenset({"truncate", "stall_mid"})  # they need the reply: they break it halfway
_FLUSH_WAIT_S = 2.0


async def sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def early_fault(
    request: web.Request, fault: str, config: SimConfig, error: ErrorFactory
) -> web.StreamResponse | None:
    """Carry out a fault that strikes before any reply exists; None lets the request go on."""
    if fault == "500":
        return error(500, "Simulated server error (fault 500).", "server_error", None)
    if fault == "429":
        response = error(429, "Simulated rate limit (fault 429).", "rate_limit_error", "rate_limit_exceeded")
        response.headers["Retry-After"] = "1"
        return response
    if fault == "stall":
        await asyncio.sleep(config.stall_s)  # then answer normally, as a slow upstream would
        return None
    if fault == "reset":
        reset_connection(request)
        # aiohttp will try to send this and fail quietly on the closed transport: no bytes go out.
        return web.Response()
    if fault == "garbage":
        return web.Response(status=200, body=GARBAGE, content_type="application/json")
    return None


def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset before anything was written."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST instead of FIN: the client sees a real reset.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def send_body(request: web.Request, body: bytes, config: SimConfig, fault: str | None) -> web.StreamResponse:
    """Send a whole JSON body; "truncate"/"stall_mid" cut it after half its bytes."""
    if fault not in MID_FAULTS:
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)  # the full length: the client expects more than it gets
    await response.prepare(request)
    half = len(body) // 2
    await response.write(body[:half])
    if fault == "truncate":
        await _abort_after_flush(request)
        return response
    await asyncio.sleep(config.stall_s)
    await response.write(body[half:])
    await response.write_eof()
    return response


async def send_events(
    request: web.Request, events: list[bytes], config: SimConfig, fault: str | None
) -> web.StreamResponse:
    """Stream SSE events one write each, `token_ms` apart; "truncate"/"stall_mid" strike halfway."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    cut = len(events) // 2 if fault in MID_FAULTS else -1
    for index, event in enumerate(events):
        if index == cut:
            if fault == "truncate":
                await _abort_after_flush(request)
                return response
            await asyncio.sleep(config.stall_s)
        if index > 0:
            await sleep_ms(config.token_ms)
        # One write per event: aiohttp hands each to the socket, so clients see tokens as they come.
        await response.write(event)
    await response.write_eof()
    return response


async def _abort_after_flush(request: web.Request) -> None:
    """Abort the connection, but only once what was written has left the buffer."""
    transport = request.transport
    if transport is None:
        return
    # abort() discards buffered bytes; wait (bounded) so the client really receives the first half.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FLUSH_WAIT_S
    while transport.get_write_buffer_size() > 0 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    transport.abort()
