"""The metric instruments, created once per meter with the advised bucket boundaries (an SDK meter,
or the in-process one of local_metrics.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from proxy.telemetry import names as n
from proxy.telemetry.local_metrics import LocalMeter

Observe = Callable[[], Iterable[tuple[float, dict[str, str]]]]


class Instruments:
    def __init__(self, meter: Meter | LocalMeter, depth: Observe, active: Observe) -> None:
        h = meter.create_histogram
        self.client_duration = h(
            n.M_CLIENT_DURATION, unit="s", description="GenAI operation duration (upstream call)",
            explicit_bucket_boundaries_advisory=n.B_GEN_AI_DURATION,
        )
        self.client_tokens = h(
            n.M_CLIENT_TOKENS, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=n.B_TOKENS,
        )
        self.client_ttfc = h(
            n.M_CLIENT_TTFC, unit="s",
            description="Time from sending the upstream request to its first chunk (streams)",
            explicit_bucket_boundaries_advisory=n.B_GEN_AI_DURATION,
        )
        self.server_ttft = h(
            n.M_SERVER_TTFT, unit="s",
            description="Arrival at guardproxy to the first token relayed (streams, successful)",
            explicit_bucket_boundaries_advisory=n.B_SERVER_TTFT,
        )
        self.server_duration = h(
            n.M_SERVER_DURATION, unit="s",
            description="Arrival at guardproxy to the last byte of a chat request",
            explicit_bucket_boundaries_advisory=n.B_GEN_AI_DURATION,
        )
        self.http_duration = h(
            n.M_HTTP_SERVER_DURATION, unit="s", description="Duration of inbound HTTP requests",
            explicit_bucket_boundaries_advisory=n.B_HTTP_DURATION,
        )
        self.queue_wait = h(
            n.M_QUEUE_WAIT, unit="s", description="Time waiting for an upstream slot",
            explicit_bucket_boundaries_advisory=n.B_QUEUE_WAIT,
        )
        self.guard_duration = h(
            n.M_GUARD_DURATION, unit="s", description="Time spent in one guard stage",
            explicit_bucket_boundaries_advisory=n.B_GUARD_DURATION,
        )
        c = meter.create_counter
        self.decisions = c(n.M_GUARD_DECISIONS, unit="{decision}", description="Guard decisions")
        self.blocks = c(n.M_GUARD_BLOCKS, unit="{request}", description="Requests blocked")
        self.findings = c(n.M_FINDINGS, unit="{finding}", description="Detector findings")
        self.tools_withheld = c(
            n.M_TOOLS_WITHHELD, unit="{call}", description="Tool calls withheld by the scope policy"
        )
        self.shed = c(n.M_SHED, unit="{request}", description="Requests shed by admission control")
        self.rules_changes = c(n.M_RULES_CHANGES, unit="{change}", description="Rule sets that went live")
        # Gauges read the limiters on collection: no cost on the request path.
        meter.create_observable_up_down_counter(
            n.M_QUEUE_DEPTH, callbacks=[_callback(depth)], unit="{request}",
            description="Requests waiting for an upstream slot",
        )
        meter.create_observable_up_down_counter(
            n.M_UPSTREAM_ACTIVE, callbacks=[_callback(active)], unit="{request}",
            description="Upstream slots in use",
        )


def _callback(observe: Observe) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, attrs) for value, attrs in observe()]

    return callback
