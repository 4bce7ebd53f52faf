"""The inbound side: a pure ASGI middleware for the SERVER span, the timing headers and the
request-duration metrics.

It continues the caller's W3C trace context, stamps `x-guardproxy-{queue,upstream,guard}-ms` and
`Server-Timing` on every chat response from the Exchange's timings (the route leaves the Exchange
in the ASGI scope state), and puts the queue/upstream/guard/total split on the SERVER span.
On a streamed response the headers leave before the upstream has finished: they carry the guard-in
and queue times, and `x-guardproxy-upstream-ms` is the upstream time until its response headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from proxy.coverage import header as coverage_header
from proxy.coverage import uninspected_count
from proxy.model import Exchange, Timings
from proxy.providers import api_named
from proxy.telemetry import names as n

if TYPE_CHECKING:
    from proxy.telemetry.core import Telemetry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXCLUDED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_PROPAGATION = (b"traceparent", b"tracestate", b"baggage")
EXCHANGE_STATE_KEY = "exchange"  # request.state.exchange, set by the chat route


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXCLUDED_PATHS:
            await self.app(scope, receive, send)
            return
        tel = self.telemetry
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        carrier = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope["headers"] if k in _PROPAGATION}
        parent = propagate.extract(carrier) if carrier else None
        span: Span | None = None
        token: Token[Context] | None = None
        if tel.tracer is not None:
            span = tel.tracer.start_span(
                scope["method"], context=parent, kind=SpanKind.SERVER,
                attributes=_request_attributes(scope),
            )
            token = context.attach(trace.set_span_in_context(span, parent))
        else:  # not recording, but the caller's context still flows to the upstream
            token = context.attach(parent) if parent is not None else None
        status = 500

        async def send_with_timings(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                exchange = state.get(EXCHANGE_STATE_KEY)
                if isinstance(exchange, Exchange):
                    headers = list(message.get("headers", []))
                    streaming = any(k == b"content-type" and v.startswith(b"text/event-stream")
                                    for k, v in headers)
                    headers += [(k.encode(), v.encode())
                                for k, v in timing_headers(exchange.timings, streaming=streaming)]
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_timings)
        except BaseException as exc:
            status = 500
            if span is not None:
                span.record_exception(exc)
            raise
        finally:
            self._finish(scope, state, span, status, time.perf_counter() - start)
            if token is not None:
                context.detach(token)

    def _finish(
        self, scope: Scope, state: dict[str, Any], span: Span | None, status: int, elapsed: float
    ) -> None:
        route = getattr(scope.get("route"), "path", None)
        attrs: dict[str, Any] = {n.HTTP_REQUEST_METHOD: scope["method"],
                                 n.HTTP_RESPONSE_STATUS_CODE: status}
        if route:
            attrs[n.HTTP_ROUTE] = route
        if status >= 500:
            attrs[n.ERROR_TYPE] = str(status)
        inst = self.telemetry.instruments
        inst.http_duration.record(elapsed, attrs)
        exchange = state.get(EXCHANGE_STATE_KEY)
        if isinstance(exchange, Exchange):
            conv = exchange.conversation
            gen_attrs: dict[str, Any] = {
                n.GEN_AI_OPERATION_NAME: api_named(conv.api).operation, n.GEN_AI_PROVIDER_NAME: conv.vendor,
                n.GEN_AI_REQUEST_MODEL: conv.model, n.ROUTE: route or scope["path"],
            }
            if status >= 400:
                gen_attrs[n.ERROR_TYPE] = str(status)
            inst.server_duration.record(_total_ms(exchange.timings) / 1000, gen_attrs)
        if span is None:
            return
        if not span.is_recording():
            span.end()
            return
        span.set_attributes(attrs)
        if route:
            span.update_name(f"{scope['method']} {route}")
        if isinstance(exchange, Exchange):
            span.set_attributes(split_attributes(exchange))
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(status)))
        span.end()


def _request_attributes(scope: Scope) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        n.HTTP_REQUEST_METHOD: scope["method"], n.URL_PATH: scope["path"],
        n.URL_SCHEME: scope.get("scheme", "http"),
    }
    client = scope.get("client")
    if client:
        attrs[n.CLIENT_ADDRESS] = client[0]
    for key, value in scope["headers"]:
        if key == b"user-agent":
            attrs[n.USER_AGENT] = value.decode("latin-1")
    return attrs


def split_attributes(exchange: Exchange) -> dict[str, Any]:
    """The runbook's split on the SERVER span: one span answers "where did the time go"."""
    t = exchange.timings
    total = _total_ms(t)
    parts = t.guard_in_ms + t.queue_ms + t.upstream_ms + t.guard_out_ms
    attrs: dict[str, Any] = {
        n.QUEUE_WAIT_DURATION: t.queue_ms / 1000,
        n.UPSTREAM_DURATION: t.upstream_ms / 1000,
        n.GUARD_INPUT_DURATION: t.guard_in_ms / 1000,
        n.GUARD_OUTPUT_DURATION: t.guard_out_ms / 1000,
        n.REQUEST_DURATION: total / 1000,
        n.OVERHEAD_DURATION: max(total - parts, 0.0) / 1000,
        n.GUARD_ACTION: exchange.action().value,
        n.CLIENT_KEY_NAME: exchange.client,
        n.REQUEST_ID: exchange.request_id,
    }
    if exchange.evidence_id:
        attrs[n.EVIDENCE_ID] = exchange.evidence_id
    attrs[n.COVERAGE] = coverage_header(exchange)
    attrs[n.COVERAGE_UNINSPECTED] = uninspected_count(exchange)
    return attrs


def timing_headers(t: Timings, *, streaming: bool) -> list[tuple[str, str]]:
    """`x-guardproxy-*-ms` and W3C `Server-Timing` (milliseconds, one decimal).

    Streaming: only what is known when the headers leave (guard-in, queue; upstream until its
    headers); the full split is on the trace and in the evidence.
    """
    guard = t.guard_in_ms if streaming else t.guard_in_ms + t.guard_out_ms
    entries = [("guard-in", t.guard_in_ms), ("queue", t.queue_ms)]
    if not streaming:
        entries += [("upstream", t.upstream_ms), ("guard-out", t.guard_out_ms),
                    ("total", _total_ms(t))]
    return [
        (n.H_QUEUE_MS, f"{t.queue_ms:.1f}"),
        (n.H_UPSTREAM_MS, f"{t.upstream_ms:.1f}"),
        (n.H_GUARD_MS, f"{guard:.1f}"),
        (n.H_SERVER_TIMING, ", ".join(f"{name};dur={ms:.1f}" for name, ms in entries)),
    ]


def _total_ms(t: Timings) -> float:
    # A request refused before the relay finished (shed, upstream failure) has no total yet.
    if t.total_ms > 0 or not t.received:
        return t.total_ms
    return (time.perf_counter() - t.received) * 1000
