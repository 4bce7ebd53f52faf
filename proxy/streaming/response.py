"""The client-facing streamed response: the pump's bytes, with clean-up that always runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from proxy.model import Exchange
from proxy.streaming.session import StreamSession
from proxy.streaming.sse import pump
from proxy.upstream import UpstreamResponse


class GuardedStream(StreamingResponse):
    """A streaming response that always runs `cleanup` once it is over, however it ended."""

    def __init__(
        self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()


def guarded_stream(
    upstream: UpstreamResponse, exchange: Exchange, sent: float, session: StreamSession, headers: dict[str, str],
    on_end: Callable[[str], Awaitable[None]], on_abandoned: Callable[[], Awaitable[None]],
) -> GuardedStream:
    """`on_end(outcome)` runs when the stream is over (before its last event); `on_abandoned` runs
    after the response however it ended, and must settle what `on_end` did not get to."""
    events = pump(upstream, exchange, sent, session, on_end)

    async def cleanup() -> None:
        # Runs even when the client left before the body started (the generator never ran) or
        # cut it off mid-way: close the generator now, then free the slot and connection.
        await events.aclose()
        await on_abandoned()

    headers = {k: v for k, v in headers.items() if k != "content-type"} | {"cache-control": "no-cache"}
    return GuardedStream(events, cleanup, media_type="text/event-stream", headers=headers)
