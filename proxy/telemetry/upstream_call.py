"""The `chat {model}` CLIENT span and the GenAI client metrics for one upstream call.

The span starts after admission, just before the request is sent (so it measures upstream time
only: network + upstream queue + model compute), carries the traceparent to the upstream, and ends
when the last byte or SSE chunk arrived. Response attributes are filled in afterwards from the
Exchange, with the end time stamped when the upstream finished.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.model import Conversation, Exchange
from proxy.providers import api_named
from proxy.telemetry import content
from proxy.telemetry import names as n

if TYPE_CHECKING:
    from proxy.admission import Lease
    from proxy.telemetry.core import Telemetry

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_REPORTED = (  # upstream timing headers (ms) -> our attribute (s)
    ("openai-processing-ms", n.UPSTREAM_REPORTED_PROCESSING),
    ("x-queue-time", n.UPSTREAM_REPORTED_QUEUE),
    ("x-inference-time", n.UPSTREAM_REPORTED_INFERENCE),
)


class UpstreamCall:
    def __init__(
        self, tel: Telemetry, exchange: Exchange, base_url: str, lease: Lease | None
    ) -> None:
        self._tel = tel
        self._lease = lease
        self.address, self.port = server_of(base_url)
        self._start = time.perf_counter()
        self._start_ns = time.time_ns()
        self._end_ns: int | None = None
        self._duration = 0.0
        self._error: str | None = None
        self._reported: dict[str, float] = {}
        self._ended = False
        self.span: Span | None = None
        if tel.tracer is not None:
            conv = exchange.conversation
            operation = api_named(conv.api).operation
            name = n.SPAN_CHAT.format(operation=operation, model=conv.model) if conv.model else operation
            self.span = tel.tracer.start_span(
                name, kind=SpanKind.CLIENT, start_time=self._start_ns,
                attributes=request_attributes(conv, self.address, self.port),
            )

    def inject(self, headers: dict[str, str]) -> None:
        """Put `traceparent` (and `tracestate`) for the upstream into `headers`.

        With tracing off this forwards the caller's own trace context, if it sent one, so the
        upstream's spans still join the caller's trace.
        """
        ctx = trace.set_span_in_context(self.span) if self.span is not None else None
        # Trace context only: a caller's `baggage` is arbitrary client data, and client headers
        # never reach the upstream unless allow-listed.
        _TRACE_CONTEXT.inject(headers, context=ctx)

    def upstream_done(
        self, headers: Mapping[str, str] | None = None, *, error: str | None = None
    ) -> None:
        """The upstream has finished (last byte, or failure): stamp the end, free the slot."""
        if self._end_ns is not None:
            return
        self._duration = time.perf_counter() - self._start
        self._end_ns = self._start_ns + int(self._duration * 1e9)
        self._error = self._error or error
        if headers is not None:
            self._reported = reported_durations(headers)
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def fail(self, error: str) -> None:
        """Mark the call failed (error.type) after the fact, e.g. an unparseable 200 body."""
        self._error = error

    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, exchange: Exchange) -> None:
        """Record the call (metrics, span attributes) from the finished Exchange. Idempotent."""
        if self._ended:
            return
        self._ended = True
        self.upstream_done()
        error = self._error or error_of(exchange)
        out = exchange.output
        conv = exchange.conversation
        attrs: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: api_named(conv.api).operation, n.GEN_AI_PROVIDER_NAME: conv.vendor,
            n.GEN_AI_REQUEST_MODEL: conv.model, n.SERVER_ADDRESS: self.address,
            n.SERVER_PORT: self.port,
        }
        if out is not None and out.model:
            attrs[n.GEN_AI_RESPONSE_MODEL] = out.model
        if error:
            attrs[n.ERROR_TYPE] = error
        inst = self._tel.instruments
        inst.client_duration.record(self._duration, attrs)
        ttfc = exchange.timings.ttft_ms / 1000 if exchange.timings.ttft_ms is not None else None
        if conv.stream and ttfc is not None:
            inst.client_ttfc.record(ttfc, attrs)
            if not error and exchange.timings.received:
                # As guardproxy's own clients see it: from arrival, guards and queue included.
                waited = self._start - exchange.timings.received
                inst.server_ttft.record(waited + ttfc, _server_attributes(attrs))
        if out is not None and not error:
            for kind, count in (("input", out.input_tokens), ("output", out.output_tokens)):
                if count is not None:
                    inst.client_tokens.record(count, attrs | {n.GEN_AI_TOKEN_TYPE: kind})
        if self.span is not None:
            if self.span.is_recording():
                self._finish_span(self.span, exchange, error, ttfc)
            else:
                self.span.end(end_time=self._end_ns)

    def _finish_span(
        self, span: Span, exchange: Exchange, error: str | None, ttfc: float | None
    ) -> None:
        out = exchange.output
        if out is not None:
            span.set_attributes(response_attributes(out))
        if exchange.conversation.stream and ttfc is not None:
            span.set_attribute(n.GEN_AI_RESPONSE_TTFC, ttfc)
        span.set_attributes(self._reported)
        withheld = [call for d in exchange.decisions for call in d.calls_blocked]
        if withheld:
            span.set_attribute(n.TOOL_BLOCKED, withheld)
            span.add_event(n.EVENT_TOOL_WITHHELD, {n.TOOL_BLOCKED: withheld})
        self._content(span, exchange)
        if error:
            span.set_attribute(n.ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=self._end_ns)

    def _content(self, span: Span, exchange: Exchange) -> None:
        capture = self._tel.capture
        if not (capture.on_span or capture.on_event):
            return
        redact = self._tel.redaction()
        values = {n.GEN_AI_INPUT_MESSAGES: content.input_messages(exchange.conversation, redact)}
        if exchange.output is not None:
            values[n.GEN_AI_OUTPUT_MESSAGES] = content.output_messages(exchange.output, redact)
        if capture.on_span:
            span.set_attributes(values)
        if capture.on_event:
            span.add_event(n.EVENT_INFERENCE_DETAILS, values)


@functools.lru_cache(maxsize=8)  # the configured upstream base URLs: one or two, fixed at start-up
def server_of(base_url: str) -> tuple[str, int]:
    """`server.address` and `server.port` of an upstream base URL (parsed once, not per request)."""
    url = urlsplit(base_url)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def request_attributes(conv: Conversation, address: str, port: int) -> dict[str, Any]:
    """The attributes known at span creation (the ones that matter for sampling come first)."""
    api = api_named(conv.api)
    attrs: dict[str, Any] = {
        n.GEN_AI_OPERATION_NAME: api.operation, n.GEN_AI_PROVIDER_NAME: conv.vendor,
        n.SERVER_ADDRESS: address, n.SERVER_PORT: port,
    }
    if conv.model:
        attrs[n.GEN_AI_REQUEST_MODEL] = conv.model
    p = api.request_params(conv.raw)  # each API spells its settings its own way
    if p.api_type:
        attrs[n.OPENAI_API_TYPE] = p.api_type
    if p.max_tokens is not None:
        attrs[n.GEN_AI_REQUEST_MAX_TOKENS] = p.max_tokens
    for value, name in ((p.temperature, n.GEN_AI_REQUEST_TEMPERATURE), (p.top_p, n.GEN_AI_REQUEST_TOP_P),
                        (p.frequency_penalty, n.GEN_AI_REQUEST_FREQUENCY_PENALTY),
                        (p.presence_penalty, n.GEN_AI_REQUEST_PRESENCE_PENALTY)):
        if value is not None:
            attrs[name] = value
    if p.stop:
        attrs[n.GEN_AI_REQUEST_STOP_SEQUENCES] = list(p.stop)
    if p.seed is not None:
        attrs[n.GEN_AI_REQUEST_SEED] = p.seed
    if p.choice_count is not None:
        attrs[n.GEN_AI_REQUEST_CHOICE_COUNT] = p.choice_count
    if conv.stream:
        attrs[n.GEN_AI_REQUEST_STREAM] = True
    if p.output_type:
        attrs[n.GEN_AI_OUTPUT_TYPE] = p.output_type
    return attrs


def response_attributes(out: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if out.response_id:
        attrs[n.GEN_AI_RESPONSE_ID] = out.response_id
    if out.model:
        attrs[n.GEN_AI_RESPONSE_MODEL] = out.model
    if out.finish_reason:
        attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] = [out.finish_reason]
    if out.input_tokens is not None:
        attrs[n.GEN_AI_USAGE_INPUT_TOKENS] = out.input_tokens
    if out.output_tokens is not None:
        attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS] = out.output_tokens
    return attrs


def reported_durations(headers: Mapping[str, str]) -> dict[str, float]:
    """Upstream-reported timings (OpenAI, TGI), milliseconds on the wire, seconds on the span."""
    found = {}
    for header, attr in _REPORTED:
        value = headers.get(header)
        if not isinstance(value, str):
            continue
        try:
            found[attr] = float(value) / 1000
        except ValueError:
            continue
    return found


def error_of(exchange: Exchange) -> str | None:
    """Low-cardinality error.type: a stream's error code, else a non-200 upstream status."""
    stream_error = exchange.attributes.get("stream_error")
    if isinstance(stream_error, str):
        return stream_error
    status = exchange.upstream_status
    return str(status) if status is not None and status != 200 else None


def _server_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    keep = (n.GEN_AI_OPERATION_NAME, n.GEN_AI_PROVIDER_NAME, n.GEN_AI_REQUEST_MODEL,
            n.GEN_AI_RESPONSE_MODEL)
    return {k: attrs[k] for k in keep if k in attrs}

