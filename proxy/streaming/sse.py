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

from httpx_sse import ServerSentEvent, SSEError
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from proxy.errors import GuardProxyError, UpstreamProtocolError
from proxy.model import Exchange
from proxy.providers.base import PartKind
from proxy.streaming.session import StreamSession
from proxy.upstream import UpstreamResponse

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
    response: UpstreamResponse,
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
        async for event in _events(response):
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
    log.exception("stream relay failed")
    return GuardProxyError("internal error in guardproxy while relaying the stream")


async def _events(response: UpstreamResponse) -> AsyncGenerator[ServerSentEvent, None]:
    """The upstream's SSE events as they arrive (httpx-sse's decoder over our response)."""
    media = response.headers.get("content-type", "").partition(";")[0]
    if "text/event-stream" not in media:
        raise SSEError(f"Expected response header Content-Type to contain 'text/event-stream', got {media!r}")
    lines, decoder = SSELineDecoder(), SSEDecoder()
    async for text in response.aiter_text():
        for line in lines.decode(text):
            if (event := decoder.decode(line.rstrip("\n"))) is not None:
                yield event
    for line in lines.flush():
        if (event := decoder.decode(line)) is not None:
            yield event
