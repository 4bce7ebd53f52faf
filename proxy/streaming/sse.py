"""The SSE pump: reads the upstream's events and writes what the session lets out, never buffering
the stream whole.

Each event is split into parts by the codec, each part goes through the session, and whatever it
releases is written at once, so the first byte reaches the client as soon as the upstream sends
it. An upstream fault mid-stream ends the client's stream with the wire format's error event (the
SDK raises a clean APIError) instead of a broken connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from proxy.errors import GuardProxyError, UpstreamProtocolError
from proxy.model import Exchange
from proxy.providers.base import PartKind
from proxy.streaming.session import StreamSession
from proxy.upstream import translate

log = logging.getLogger("guardproxy.streaming")


def encode_event(event: ServerSentEvent) -> bytes:
    lines = []
    if event.event and event.event != "message":
        lines.append(f"event: {event.event}")
    if event.id:
        lines.append(f"id: {event.id}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


async def pump(
    response: httpx.Response,
    exchange: Exchange,
    sent: float,
    session: StreamSession,
    on_end: Callable[[str], Awaitable[None]],
) -> AsyncGenerator[bytes, None]:
    """Relay either wire format through the session (hold-back, holds for judges, clean stops).

    `on_end(outcome)` must call `session.finish(outcome)`; the stream's last event (the wire
    format's final event, a clean stop's, or an error event) leaves only after it, so a flagged
    exchange's evidence is durable before the last byte.
    """
    codec = session.codec
    final: list[ServerSentEvent] = []
    outcome = "complete"
    try:
        async for event in EventSource(response).aiter_sse():
            if exchange.timings.ttft_ms is None:
                exchange.timings.ttft_ms = (time.perf_counter() - sent) * 1000
            for part in codec.parts(event):
                out = await session.process(part)
                if part.kind is PartKind.ERROR:
                    # The upstream's own error event ends the stream; it is relayed as it came.
                    outcome, final = "upstream_error", [codec.encode(part)]
                    exchange.attributes["stream_error"] = "upstream_error_event"
                elif session.stopped is not None:
                    outcome, final, out = "stopped", out[-1:], out[:-1]
                elif part.kind is PartKind.DONE:
                    final = [codec.encode(part)]
                elif codec.done and out:
                    # The wire format's final event came as a finish (Responses' `response.completed`):
                    # it too leaves only after the exchange is recorded.
                    final, out = out[-1:], out[:-1]
                for item in out:
                    yield encode_event(item)
                if final:
                    break
            if final:
                break
        if not final and not codec.done:
            raise UpstreamProtocolError(
                "upstream stream truncated: it closed before its final event", code="upstream_truncated"
            )
    except Exception as exc:  # every failure still ends the client's stream with a proper error event
        error = _stream_error(exc)
        outcome = "upstream_error"
        session.abort()
        exchange.attributes["stream_error"] = error.code
        final = [codec.error_event(error, exchange.request_id)]
    finally:
        await response.aclose()
        await on_end(outcome)
    for item in final:
        yield encode_event(item)


def _stream_error(exc: Exception) -> GuardProxyError:
    if isinstance(exc, GuardProxyError):
        return exc
    if isinstance(exc, SSEError):
        return UpstreamProtocolError(f"upstream stream is not SSE: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return translate(exc)
    log.exception("stream relay failed")
    return GuardProxyError("internal error in guardproxy while relaying the stream")
