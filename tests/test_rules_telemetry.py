"""A rule set going live is a telemetry event: a counter by hash and a span of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.guards.injection import build
from proxy.settings import DEFAULT_RULES_DIR, load_settings
from proxy.telemetry import Telemetry


def test_rule_changes_reach_telemetry(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry = Telemetry.for_tests(spans, reader)
    guard = build(load_settings(None, rules_dir=str(rules)), {})
    guard.subscribe(telemetry.rules_changed)
    first = spans.get_finished_spans()[-1]
    assert first.name == "guardproxy.rules.change"
    assert first.attributes["guardproxy.rules.hash"] == guard.store.live.ruleset.digest

    victim = sorted(rules.glob("injection-*.yaml"))[0]
    victim.write_text(victim.read_text().replace("severity: high", "severity: medium", 1))
    guard.store.load()
    change = spans.get_finished_spans()[-1]
    assert change.attributes["guardproxy.rules.previous_hash"] == first.attributes["guardproxy.rules.hash"]
    assert change.attributes["guardproxy.rules.changed"]
    metrics = reader.get_metrics_data().to_json()
    assert "guardproxy.rules.changes" in metrics
