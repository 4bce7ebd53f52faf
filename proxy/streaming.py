"""Relays an upstream SSE stream to the client event by event, never buffering it whole.

Each event is re-sent as soon as it is parsed, so the first byte reaches the client as soon as
the upstream sends it. An upstream fault mid-stream ends the client's stream with an OpenAI-style
error event (the SDK raises a clean APIError) instead of a broken connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from proxy.errors import GuardProxyError, UpstreamProtocolError
from proxy.model import Exchange
from proxy.providers.openai_stream import StreamAccumulator
from proxy.upstream import translate


def encode_event(event: ServerSentEvent) -> bytes:
    lines = []
    if event.event and event.event != "message":
        lines.append(f"event: {event.event}")
    if event.id:
        lines.append(f"id: {event.id}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def error_event(error: GuardProxyError, request_id: str) -> bytes:
    return b"data: " + json.dumps(error.body(request_id)).encode() + b"\n\n"


async def relay_openai_sse(
    response: httpx.Response,
    exchange: Exchange,
    sent: float,
    on_end: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    accumulator = StreamAccumulator()
    try:
        async for event in EventSource(response).aiter_sse():
            if exchange.timings.ttft_ms is None:
                exchange.timings.ttft_ms = (time.perf_counter() - sent) * 1000
            accumulator.feed(event.data)
            yield encode_event(event)
        if not accumulator.done:
            raise UpstreamProtocolError(
                "upstream stream ended before [DONE]", code="upstream_truncated"
            )
    except GuardProxyError as exc:
        exchange.attributes["stream_error"] = exc.code
        yield error_event(exc, exchange.request_id)
    except SSEError as exc:
        exchange.attributes["stream_error"] = "upstream_bad_response"
        yield error_event(UpstreamProtocolError(f"upstream stream is not SSE: {exc}"), exchange.request_id)
    except httpx.HTTPError as exc:
        error = translate(exc)
        exchange.attributes["stream_error"] = error.code
        yield error_event(error, exchange.request_id)
    finally:
        await response.aclose()
        exchange.output = accumulator.output()
        await on_end()
