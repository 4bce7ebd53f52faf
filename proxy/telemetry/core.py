"""The Telemetry object: built once (from `OTEL_*` or for tests) and passed to whoever records.

It owns the tracer (None when tracing is off, so the request path skips span work entirely), the
meter and its instruments, the `/metrics` bridge and the content-capture policy, and it offers
one hook per point in a request's life: guard scans and stages, the queue wait, the upstream call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from opentelemetry.metrics import Meter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from proxy import __version__
from proxy.model import Exchange, Phase
from proxy.telemetry import config, guard_spans
from proxy.telemetry import names as n
from proxy.telemetry.content import Capture, Redactor, capture_from_env, scrub
from proxy.telemetry.instruments import Instruments
from proxy.telemetry.local_metrics import LocalMeter, LocalMeterProvider
from proxy.telemetry.prometheus import PrometheusBridge
from proxy.telemetry.upstream_call import UpstreamCall

if TYPE_CHECKING:
    from proxy.admission import Admission, Lease, QueueEvent


class Telemetry:
    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | LocalMeterProvider | None,
        bridge: PrometheusBridge | None,
        capture: Capture = Capture.NO_CONTENT,
        redaction: Callable[[], Redactor] = lambda: scrub,
        owns_providers: bool = True,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer: Tracer | None = (
            tracer_provider.get_tracer(n.INSTRUMENTATION_SCOPE, __version__)
            if tracer_provider is not None else None
        )
        meter: Meter | LocalMeter = (meter_provider or NoOpMeterProvider()).get_meter(
            n.INSTRUMENTATION_SCOPE, __version__
        )
        self.bridge = bridge
        self.capture = capture
        self.redaction = redaction  # a fresh redactor per call: placeholders agree within a span
        self.owns_providers = owns_providers
        self.admissions: list[Admission] = []
        self.instruments = Instruments(meter, self._depths, self._actives)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *,
        redaction: Callable[[], Redactor] = lambda: scrub,
    ) -> Telemetry:
        """Exporters from the standard variables; with none set, only `/metrics` is fed.

        `redaction` makes the redactor for opt-in content (the app passes the evidence one).
        """
        env = os.environ if env is None else env
        plan = config.plan_from_env(env)
        res = config.resource(plan, __version__)
        meters: MeterProvider | LocalMeterProvider | None
        if plan.disabled:
            meters, bridge = None, None
        elif not plan.metrics:
            # /metrics is the only reader: aggregated in process, without the SDK's per-record work.
            meters = LocalMeterProvider()
            bridge = PrometheusBridge(source=meters.metrics)
        else:
            bridge = PrometheusBridge()
            meters = config.meter_provider(plan, res, [bridge])
        return cls(
            tracer_provider=config.tracer_provider(plan, res),
            meter_provider=meters,
            bridge=bridge,
            capture=capture_from_env(env),
            redaction=redaction,
        )

    @classmethod
    def for_tests(
        cls,
        span_exporter: SpanExporter | None = None,
        metric_reader: MetricReader | None = None,
        *,
        capture: Capture = Capture.NO_CONTENT,
        redaction: Callable[[], Redactor] = lambda: scrub,
    ) -> Telemetry:
        """Synchronous export to the given in-memory exporter/reader (None: that signal is off)."""
        tp = None
        if span_exporter is not None:
            tp = TracerProvider()
            tp.add_span_processor(SimpleSpanProcessor(span_exporter))
        bridge = PrometheusBridge()
        readers: list[MetricReader] = [bridge] + ([metric_reader] if metric_reader else [])
        return cls(tracer_provider=tp, meter_provider=MeterProvider(metric_readers=readers),
                   bridge=bridge, capture=capture, redaction=redaction, owns_providers=False)

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls(tracer_provider=None, meter_provider=None, bridge=None, owns_providers=False)

    def shutdown(self) -> None:
        """Flush and stop exporters (called once, at app shutdown)."""
        if not self.owns_providers:
            return
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    # --- hooks ---------------------------------------------------------------------------------
    def scan(self, exchange: Exchange, phase: Phase) -> AbstractContextManager[None]:
        """Wrap one phase of the pipeline: `guardrail.scan {phase}` span and guard metrics.

        The input scan is the first thing a chat request does, so it also binds the exchange to
        the trace (evidence bundles carry the trace id).
        """
        return guard_spans.scan(self.tracer, self.instruments, exchange, phase)

    def stage(self, exchange: Exchange, name: str, phase: Phase) -> AbstractContextManager[None]:
        """The pipeline's per-stage hook: a `guardrail.stage {name}` span (tracing only)."""
        if self.tracer is None:
            return _NULL
        return guard_spans.stage(self.tracer, exchange, name, phase)

    def watch(self, admission: Admission) -> None:
        """Expose an upstream's queue depth and slots in use as gauges."""
        self.admissions.append(admission)

    def on_queue(self, exchange: Exchange, event: QueueEvent) -> None:
        """Admission observer: queue-wait histogram, shed counter, and the `queue wait` span."""
        upstream = _upstream_of(self.admissions, exchange)
        attrs = {n.SERVER_ADDRESS: upstream, n.QUEUE_OUTCOME: event.outcome}
        self.instruments.queue_wait.record(event.waited_s, attrs)
        if event.shed_reason is not None:
            self.instruments.shed.add(1, {n.SERVER_ADDRESS: upstream, n.SHED_REASON: event.shed_reason})
        # A request that got a free slot at once has no wait worth a span (recorded as 0 above).
        if self.tracer is None or not (event.queued or event.shed_reason):
            return
        span = self.tracer.start_span(
            n.SPAN_QUEUE, kind=SpanKind.INTERNAL, start_time=event.start_ns,
            attributes={
                n.QUEUE_WAIT_DURATION: event.waited_s,
                n.QUEUE_DEPTH: event.depth,
                n.QUEUE_OUTCOME: event.outcome,
            },
        )
        if event.shed_reason is not None:
            span.set_attribute(n.SHED_REASON, event.shed_reason)
            span.set_status(Status(StatusCode.ERROR, f"shed: {event.shed_reason}"))
        span.end(end_time=event.start_ns + int(event.waited_s * 1e9))

    def rules_changed(self, record: Mapping[str, object]) -> None:
        """A rule set went live ("did the detector itself change?"): a counter and a span of its own."""
        digest = str(record.get("digest"))
        self.instruments.rules_changes.add(1, {n.RULES_HASH: digest})
        if self.tracer is None:
            return
        attrs = {
            n.RULES_HASH: digest,
            n.RULES_PREVIOUS: str(record.get("previous")),
            n.RULES_ADDED: [str(x) for x in record.get("added") or ()],  # type: ignore[attr-defined]
            n.RULES_REMOVED: [str(x) for x in record.get("removed") or ()],  # type: ignore[attr-defined]
            n.RULES_CHANGED: [str(x) for x in record.get("changed") or ()],  # type: ignore[attr-defined]
            n.RULES_FILES: [str(x) for x in record.get("files") or ()],  # type: ignore[attr-defined]
        }
        self.tracer.start_span(n.SPAN_RULES_CHANGE, kind=SpanKind.INTERNAL, attributes=attrs).end()

    def upstream_call(self, exchange: Exchange, base_url: str, lease: Lease | None) -> UpstreamCall:
        """Start the `chat {model}` CLIENT span; call right before the request is sent."""
        return UpstreamCall(self, exchange, base_url, lease)

    # --- /metrics ------------------------------------------------------------------------------
    def render_metrics(self) -> tuple[bytes, str]:
        if self.bridge is None:
            return b"", "text/plain; version=0.0.4; charset=utf-8"
        return self.bridge.render()

    def _depths(self) -> Iterable[tuple[float, dict[str, str]]]:
        return [(a.limiter.depth, {n.SERVER_ADDRESS: a.upstream}) for a in self.admissions]

    def _actives(self) -> Iterable[tuple[float, dict[str, str]]]:
        return [(a.limiter.in_flight, {n.SERVER_ADDRESS: a.upstream}) for a in self.admissions]


def _upstream_of(admissions: list[Admission], exchange: Exchange) -> str:
    # One upstream today; with several, the exchange will name the one it was routed to.
    return admissions[0].upstream if admissions else ""


class _Null(AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()
