"""In-process metric aggregation (the default, when /metrics is the only reader): it renders what
the OpenTelemetry SDK renders for the same records, keys attribute sets regardless of order, and
keeps the SDK's cardinality limit."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Observation

from proxy.telemetry import Telemetry
from proxy.telemetry import names as n
from proxy.telemetry.guard_spans import _stage_recorder
from proxy.telemetry.local_metrics import CARDINALITY_LIMIT, LocalMeterProvider
from proxy.telemetry.prometheus import PrometheusBridge

GEN_AI = {n.GEN_AI_OPERATION_NAME: "chat", n.GEN_AI_PROVIDER_NAME: "openai", n.GEN_AI_REQUEST_MODEL: "m",
          n.SERVER_ADDRESS: "127.0.0.1", n.SERVER_PORT: 9100}


def record_traffic(tel: Telemetry) -> None:
    inst = tel.instruments
    for i in range(50):
        inst.client_duration.record(0.003 * i, GEN_AI)
        inst.client_tokens.record(10 * i, GEN_AI | {n.GEN_AI_TOKEN_TYPE: "input"})
        # The same attribute set built in another order is the same series.
        inst.client_tokens.record(i, {n.GEN_AI_TOKEN_TYPE: "output", **GEN_AI})
        inst.guard_duration.record(0.0001 * i, {n.GUARD_STAGE: "injection", n.GUARD_DIRECTION: "input"})
        inst.guard_duration.record(0.0002 * i, {n.GUARD_DIRECTION: "input", n.GUARD_STAGE: "injection"})
        # What the pipeline records per stage: a bound recorder (in process) or the SDK's record.
        _stage_recorder(inst, "tool_scope", "output")(0.0003 * i)
        inst.http_duration.record(0.001 * i, {n.HTTP_REQUEST_METHOD: "POST", n.HTTP_RESPONSE_STATUS_CODE: 200})
        inst.queue_wait.record(0.0, {n.SERVER_ADDRESS: "127.0.0.1", n.QUEUE_OUTCOME: "acquired"})
        if i % 7 == 0:
            inst.decisions.add(1, {n.GUARD_ACTION: "tag", n.GUARD_DIRECTION: "input"})
    inst.client_duration.record(float("nan"), GEN_AI)  # dropped, as the SDK drops it
    inst.guard_duration.record(-1.0, {n.GUARD_STAGE: "x", n.GUARD_DIRECTION: "input"})  # dropped too
    _stage_recorder(inst, "tool_scope", "output")(float("inf"))  # and through a bound recorder


def families(text: bytes) -> list[str]:
    return sorted("# HELP" + block for block in text.decode().split("# HELP")[1:])


def test_default_telemetry_aggregates_in_process_and_an_exporter_puts_metrics_on_the_sdk() -> None:
    assert isinstance(Telemetry.from_env({}).meter_provider, LocalMeterProvider)
    configured = Telemetry.from_env({n.ENV_METRICS_EXPORTER: "console"})
    assert not isinstance(configured.meter_provider, LocalMeterProvider)
    configured.shutdown()


def test_in_process_metrics_render_as_the_sdk_renders_them() -> None:
    local, sdk = Telemetry.from_env({}), Telemetry.for_tests()
    for tel in (local, sdk):
        record_traffic(tel)
    local_text, content_type = local.render_metrics()
    sdk_text, _ = sdk.render_metrics()
    assert content_type.startswith("text/plain")
    assert families(local_text) == families(sdk_text)  # the SDK lists them in first-record order
    text = local_text.decode()
    assert 'gen_ai_client_token_usage_count{gen_ai_operation_name="chat"' in text
    # one series per stage, not one per dict order
    assert text.count("guardproxy_guard_duration_seconds_count{") == 2
    assert ('guardproxy_guard_duration_seconds_count{guardproxy_guard_direction="output",'
            'guardproxy_guard_stage="tool_scope"} 50.0') in text
    assert 'guardproxy_guard_decisions_total{guardproxy_guard_action="tag",guardproxy_guard_direction="input"} 8.0' \
        in text


def test_observable_counters_are_read_when_scraped() -> None:
    provider = LocalMeterProvider()
    depth = [3]

    def observe(_: Any) -> list[Observation]:
        return [Observation(depth[0], {n.SERVER_ADDRESS: "up"})]

    provider.get_meter("t").create_observable_up_down_counter(n.M_QUEUE_DEPTH, callbacks=[observe], unit="{request}")
    bridge = PrometheusBridge(source=provider.metrics)
    assert b'guardproxy_queue_depth{server_address="up"} 3.0' in bridge.render()[0]
    depth[0] = 0
    assert b'guardproxy_queue_depth{server_address="up"} 0.0' in bridge.render()[0]


def test_attribute_sets_past_the_cardinality_limit_share_the_overflow_point() -> None:
    provider = LocalMeterProvider()
    counter = provider.get_meter("t").create_counter("c")
    for i in range(CARDINALITY_LIMIT + 10):
        counter.add(1, {"k": str(i)})
    (metric,) = provider.metrics()
    points = metric.data.data_points
    assert len(points) == CARDINALITY_LIMIT
    overflow = [p for p in points if p.attributes == {"otel.metric.overflow": True}]
    assert len(overflow) == 1 and overflow[0].value == 11
    assert sum(p.value for p in points) == CARDINALITY_LIMIT + 10


def test_an_instrument_asked_for_twice_is_the_same_one() -> None:
    provider = LocalMeterProvider()
    a = provider.get_meter("one").create_counter("guardproxy.x")
    b = provider.get_meter("two").create_counter("guardproxy.x")
    a.add(2)
    b.add(3)
    assert a is b and provider.metrics()[0].data.data_points[0].value == 5
