"""One chat exchange end to end: input guards, upstream call, output guards, response.

The app hands in a parsed body; this module owns the order of events and the timings split the
latency runbook reads (guard-in, upstream, guard-out). A block is a decision turned into an
OpenAI-style error here; exceptions from guards never get this far (the pipeline handles them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx
from starlette.responses import Response, StreamingResponse

from proxy.errors import GuardProxyError, UpstreamProtocolError
from proxy.model import Exchange, Phase, Verdict, VerdictKind
from proxy.pipeline import Pipeline
from proxy.providers import openai_chat
from proxy.streaming import relay_openai_sse
from proxy.upstream import Upstream, relay_headers, translate

Observer = Callable[[Exchange], Awaitable[None]]
MAX_UPSTREAM_BODY = 64 * 1024 * 1024  # a completion larger than this is not a completion


class ChatRelay:
    def __init__(self, pipeline: Pipeline, upstream: Upstream, observers: Sequence[Observer] = ()) -> None:
        self.pipeline = pipeline
        self.upstream = upstream
        self.observers = list(observers)

    async def handle(self, exchange: Exchange, client_headers: dict[str, str], raw: bytes) -> Response:
        start = time.perf_counter()
        verdict = await self.pipeline.run(exchange, Phase.INPUT)
        exchange.timings.guard_in_ms = _ms_since(start)
        if verdict.kind is VerdictKind.BLOCK:
            await self._finish(exchange)
            raise blocked_error(verdict, exchange)
        body = openai_chat.render(exchange.conversation)
        content = raw if body is exchange.conversation.raw else json.dumps(body).encode()
        headers = self.upstream.headers(client_headers, has_body=True)
        sent = time.perf_counter()
        try:
            response = await self.upstream.send(
                "POST", "/chat/completions", content=content, headers=headers,
                stream=exchange.conversation.stream,
            )
        except GuardProxyError:
            exchange.timings.upstream_ms = _ms_since(sent)
            await self._finish(exchange)
            raise
        exchange.upstream_status = response.status_code
        if exchange.conversation.stream and response.status_code == 200:
            return self._stream(exchange, response, sent)
        return await self._plain(exchange, response, sent)

    async def _plain(self, exchange: Exchange, response: httpx.Response, sent: float) -> Response:
        try:
            data = await _read_bounded(response)
        finally:
            exchange.timings.upstream_ms = _ms_since(sent)
            await response.aclose()
        headers = relay_headers(response.headers) | guard_headers(exchange)
        if response.status_code != 200:
            # Upstream errors are relayed faithfully: same status, same body.
            await self._finish(exchange)
            return Response(data, status_code=response.status_code, headers=headers)
        try:
            parsed = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            await self._finish(exchange)
            raise UpstreamProtocolError("upstream answered 200 with a body that is not JSON") from None
        exchange.output = openai_chat.parse_output(parsed)
        out_start = time.perf_counter()
        verdict = await self.pipeline.run(exchange, Phase.OUTPUT)
        exchange.timings.guard_out_ms = _ms_since(out_start)
        await self._finish(exchange)
        if verdict.kind is VerdictKind.BLOCK:
            raise blocked_error(verdict, exchange)
        if exchange.output is not None and verdict.kind is VerdictKind.TRANSFORM:
            data = json.dumps(openai_chat.render_output(parsed, exchange.output)).encode()
        headers = relay_headers(response.headers) | guard_headers(exchange)
        return Response(data, status_code=200, headers=headers)

    def _stream(self, exchange: Exchange, response: httpx.Response, sent: float) -> Response:
        async def on_end() -> None:
            exchange.timings.upstream_ms = _ms_since(sent)
            out_start = time.perf_counter()
            await self.pipeline.run(exchange, Phase.OUTPUT)  # records; the bytes already left
            exchange.timings.guard_out_ms = _ms_since(out_start)
            await self._finish(exchange)

        events = relay_openai_sse(response, exchange, sent, on_end)
        headers = relay_headers(response.headers) | guard_headers(exchange)
        headers.pop("content-type", None)
        headers["cache-control"] = "no-cache"
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def _finish(self, exchange: Exchange) -> None:
        exchange.timings.total_ms = _ms_since(exchange.timings.received)
        for observer in self.observers:
            await observer(exchange)


def guard_headers(exchange: Exchange) -> dict[str, str]:
    headers = {"x-guardproxy-verdict": exchange.action().value}
    rule_ids = sorted({f.rule_id for f in exchange.findings if f.mode != "shadow"})
    if rule_ids:
        headers["x-guardproxy-findings"] = ",".join(rule_ids)
    return headers


def blocked_error(verdict: Verdict, exchange: Exchange) -> GuardProxyError:
    # The exchange's findings: a later stage (e.g. blast-radius escalation) may block on earlier ones.
    rule_ids = sorted({f.rule_id for f in exchange.findings if f.mode != "shadow"})
    error = GuardProxyError(
        verdict.message or "request blocked by guardproxy",
        code=verdict.error_code or "blocked",
        status_code=verdict.status_code,
        headers=guard_headers(exchange),
        extra={"rule_ids": rule_ids} if rule_ids else {},
    )
    error.error_type = verdict.error_type
    return error


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > MAX_UPSTREAM_BODY:
                raise UpstreamProtocolError("upstream response exceeds the size limit")
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise translate(exc) from exc
    return b"".join(chunks)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000

