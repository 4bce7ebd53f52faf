"""Telemetry without sockets: exporter plans from OTEL_* variables, content capture and redaction,
timing headers, Prometheus naming, advised buckets, and the guard spans of a pipeline run."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeGuard
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from proxy.errors import ConfigError
from proxy.model import (
    Conversation,
    Exchange,
    Location,
    Output,
    Phase,
    Provenance,
    Segment,
    Timings,
    ToolCall,
    Trust,
)
from proxy.pipeline import Pipeline, Stage
from proxy.settings import StageSettings
from proxy.telemetry import Capture, Telemetry
from proxy.telemetry import names as n
from proxy.telemetry.config import plan_from_env
from proxy.telemetry.content import capture_from_env, input_messages, output_messages, scrub
from proxy.telemetry.prometheus import prometheus_name
from proxy.telemetry.server import timing_headers
from proxy.telemetry.upstream_call import reported_durations, request_attributes


def conversation(*texts: str, **raw: Any) -> Conversation:
    segs = tuple(
        Segment(i, "user", t, Trust.USER, Provenance("user"), Location(("messages", i, "content")))
        for i, t in enumerate(texts)
    )
    return Conversation(api="openai.chat", vendor="openai", model="m", stream=False, segments=segs, raw=raw)


# --- exporter plans ----------------------------------------------------------------------------


def test_nothing_set_means_no_export_and_no_tracer() -> None:
    plan = plan_from_env({})
    assert plan.traces == () and plan.metrics == () and not plan.disabled
    tel = Telemetry.from_env({})
    assert tel.tracer is None and tel.bridge is not None  # /metrics still works


def test_an_otlp_endpoint_switches_otlp_on_for_both_signals() -> None:
    plan = plan_from_env({n.ENV_OTLP_ENDPOINT: "http://collector:4318"})
    assert plan.traces == ("otlp",) and plan.metrics == ("otlp",)
    assert plan.traces_protocol == "http/protobuf"


def test_exporter_lists_and_protocols_are_read_and_validated() -> None:
    plan = plan_from_env({n.ENV_TRACES_EXPORTER: "console,otlp", n.ENV_METRICS_EXPORTER: "none",
                          n.ENV_OTLP_ENDPOINT: "http://c:4317", n.ENV_OTLP_PROTOCOL: "grpc"})
    assert plan.traces == ("console", "otlp") and plan.metrics == ()
    assert plan.traces_protocol == plan.metrics_protocol == "grpc"
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        plan_from_env({n.ENV_TRACES_EXPORTER: "zipkin"})
    with pytest.raises(ConfigError, match="http/json"):
        plan_from_env({n.ENV_OTLP_PROTOCOL: "http/json"})


def test_sdk_disabled_turns_everything_off() -> None:
    tel = Telemetry.from_env({n.ENV_SDK_DISABLED: "true", n.ENV_TRACES_EXPORTER: "console"})
    assert tel.tracer is None and tel.bridge is None
    assert tel.render_metrics()[0] == b""


def test_console_trace_exporter_builds_a_tracer() -> None:
    tel = Telemetry.from_env({n.ENV_TRACES_EXPORTER: "console", n.ENV_SERVICE_NAME: "gp-test"})
    assert tel.tracer is not None and tel.tracer_provider is not None
    assert tel.tracer_provider.resource.attributes["service.name"] == "gp-test"
    tel.shutdown()


# --- content -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "mode"), [
    (None, Capture.NO_CONTENT), ("span_only", Capture.SPAN_ONLY), ("true", Capture.SPAN_ONLY),
    ("SPAN_AND_EVENT", Capture.SPAN_AND_EVENT), ("EVENT_ONLY", Capture.EVENT_ONLY),
    ("bogus", Capture.NO_CONTENT),
])
def test_capture_mode_from_env(value: str | None, mode: Capture) -> None:
    env = {} if value is None else {n.ENV_CAPTURE_CONTENT: value}
    assert capture_from_env(env) is mode


def test_scrub_removes_credentials_and_identifiers() -> None:
    text = ("key sk-abcdefghijklmnopqrstuv, Authorization: Bearer abc.def.ghijklmnop, "
            "mail jane@example.com, card 4111 1111 1111 1111, password=hunter2")
    out = scrub(text)
    for secret in ("sk-abcdefghijklmnopqrstuv", "abc.def.ghijklmnop", "jane@example.com",
                   "4111 1111", "hunter2"):
        assert secret not in out
    assert "<EMAIL_ADDRESS>" in out


def test_messages_follow_the_semconv_shape_and_are_redacted() -> None:
    conv = conversation("mail me at a@b.io", "second")
    assert input_messages(conv, scrub) == (
        '[{"role": "user", "parts": [{"type": "text", "content": "mail me at <EMAIL_ADDRESS>"}]}, '
        '{"role": "user", "parts": [{"type": "text", "content": "second"}]}]'
    )
    out = Output(text="ok", tool_calls=(ToolCall("c1", "send", '{"to": "x@y.com"}'),),
                 finish_reason="tool_calls")
    rendered = output_messages(out, scrub)
    assert '"type": "tool_call"' in rendered and "x@y.com" not in rendered
    assert '"finish_reason": "tool_calls"' in rendered


# --- headers, names, attributes ----------------------------------------------------------------


def test_timing_headers_for_plain_and_streamed_responses() -> None:
    t = Timings(received=0.0, guard_in_ms=3.14, queue_ms=120.0, upstream_ms=850.25,
                guard_out_ms=2.0, total_ms=976.0)
    plain = dict(timing_headers(t, streaming=False))
    assert plain == {
        n.H_QUEUE_MS: "120.0", n.H_UPSTREAM_MS: "850.2", n.H_GUARD_MS: "5.1",
        n.H_SERVER_TIMING: "guard-in;dur=3.1, queue;dur=120.0, upstream;dur=850.2, "
                           "guard-out;dur=2.0, total;dur=976.0",
    }
    streamed = dict(timing_headers(t, streaming=True))
    assert streamed[n.H_SERVER_TIMING] == "guard-in;dur=3.1, queue;dur=120.0"
    assert streamed[n.H_GUARD_MS] == "3.1"


def test_prometheus_names_follow_the_otel_rules() -> None:
    assert prometheus_name(n.M_CLIENT_DURATION, "s") == "gen_ai_client_operation_duration_seconds"
    assert prometheus_name(n.M_CLIENT_TOKENS, "{token}") == "gen_ai_client_token_usage"


def test_request_attributes_from_the_body() -> None:
    conv = conversation("x", max_completion_tokens=9, temperature=1, top_p=0.5, stop="END",
                        seed=7, n=2, response_format={"type": "json_object"})
    a = request_attributes(conv, "api.example", 443)
    assert a[n.GEN_AI_REQUEST_MAX_TOKENS] == 9 and a[n.GEN_AI_REQUEST_TEMPERATURE] == 1.0
    assert a[n.GEN_AI_REQUEST_STOP_SEQUENCES] == ["END"] and a[n.GEN_AI_REQUEST_SEED] == 7
    assert a[n.GEN_AI_REQUEST_CHOICE_COUNT] == 2 and a[n.GEN_AI_OUTPUT_TYPE] == "json"
    assert a[n.OPENAI_API_TYPE] == "chat_completions" and n.GEN_AI_REQUEST_STREAM not in a


def test_upstream_reported_timings_are_converted_to_seconds() -> None:
    got = reported_durations({"openai-processing-ms": "850", "x-queue-time": "12", "x-inference-time": "x"})
    assert got == {n.UPSTREAM_REPORTED_PROCESSING: 0.85, n.UPSTREAM_REPORTED_QUEUE: 0.012}


# --- instruments and spans -----------------------------------------------------------------


def test_histograms_use_the_advised_bucket_boundaries() -> None:
    reader = InMemoryMetricReader()
    tel = Telemetry.for_tests(metric_reader=reader)
    inst = tel.instruments
    for h in (inst.client_duration, inst.client_tokens, inst.server_ttft, inst.queue_wait,
              inst.guard_duration, inst.http_duration):
        h.record(1, {})
    data = reader.get_metrics_data()
    assert data is not None
    bounds = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                point = m.data.data_points[0]
                if isinstance(point, HistogramDataPoint):
                    bounds[m.name] = tuple(point.explicit_bounds)
    assert bounds[n.M_CLIENT_DURATION] == n.B_GEN_AI_DURATION
    assert bounds[n.M_CLIENT_TOKENS] == n.B_TOKENS
    assert bounds[n.M_SERVER_TTFT] == n.B_SERVER_TTFT
    assert bounds[n.M_QUEUE_WAIT] == tuple(float(b) for b in n.B_QUEUE_WAIT)
    assert bounds[n.M_GUARD_DURATION] == n.B_GUARD_DURATION
    assert bounds[n.M_HTTP_SERVER_DURATION] == n.B_HTTP_DURATION


async def test_pipeline_run_makes_scan_and_stage_spans_without_user_text() -> None:
    spans = InMemorySpanExporter()
    tel = Telemetry.for_tests(spans)
    pipeline = Pipeline([
        Stage(FakeGuard("finder", "find"), StageSettings(name="finder")),
        Stage(FakeGuard("boom", "raise"), StageSettings(name="boom", failure_mode="open")),
    ])
    pipeline.stage_hook = tel.stage
    exchange = Exchange(request_id="r", conversation=conversation("secret words"))
    with tel.scan(exchange, Phase.INPUT):
        await pipeline.run(exchange, Phase.INPUT)
    got = {s.name: s for s in spans.get_finished_spans()}
    scan = got["guardrail.scan input"]
    assert scan.kind is SpanKind.INTERNAL
    assert (scan.attributes or {})[n.OPENINFERENCE_SPAN_KIND] == "GUARDRAIL"
    assert (scan.attributes or {})[n.GUARD_FINDINGS_COUNT] == 1
    assert list((scan.attributes or {})[n.GUARD_RULE_IDS]) == ["finder.rule"]  # type: ignore[arg-type]
    finder, boom = got["guardrail.stage finder"], got["guardrail.stage boom"]
    assert finder.parent is not None and finder.parent.span_id == scan.context.span_id
    assert (boom.attributes or {})[n.GUARD_STATUS] == "error"
    assert boom.status.is_ok is False
    event = finder.events[0]
    assert event.name == n.EVENT_FINDING
    assert "x" not in (event.attributes or {}).values()  # the excerpt stays in the evidence
    assert exchange.trace_id == f"{scan.context.trace_id:032x}"


def test_the_app_redacts_opt_in_content_like_evidence() -> None:
    from proxy.app import _content_redactor
    from proxy.settings import load_settings

    redact = _content_redactor(load_settings(None))
    out = redact("mail jane@example.com, key sk-abcdefghijklmnopqrstuvwx")
    assert "jane@example.com" not in out and "sk-abcdefghij" not in out
    assert "[EMAIL_ADDRESS_1]" in out


def test_the_upstream_server_attributes_come_from_its_base_url() -> None:
    from proxy.telemetry.upstream_call import server_of

    assert server_of("http://127.0.0.1:9100/v1") == ("127.0.0.1", 9100)
    assert server_of("https://api.example.com/v1") == ("api.example.com", 443)
    assert server_of("http://models.internal/v1") == ("models.internal", 80)
