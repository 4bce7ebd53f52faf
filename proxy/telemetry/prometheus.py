"""Serves the OpenTelemetry metrics at `/metrics` in Prometheus text format, for scrapers.

The instruments are recorded once (through the OpenTelemetry SDK, or aggregated in process when
nothing else reads them); this pull reader converts a cumulative snapshot into prometheus-client
metric families on each scrape, following the OTel-to-Prometheus naming rules (dots to
underscores, unit suffix such as `_seconds`, `_total` on counters).
prometheus-client lives here and nowhere else; the opentelemetry-exporter-prometheus package is
not needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def prometheus_name(name: str, unit: str) -> str:
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit, "")  # annotations such as {token} carry no suffix
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    return _INVALID.sub("_", key)


class PrometheusBridge(InMemoryMetricReader):
    """A pull reader (cumulative temporality) that renders itself as Prometheus text.

    With `source`, it renders what that returns instead of what an SDK meter provider collects
    into it (the in-process aggregation, local_metrics.py, when /metrics is the only reader).
    """

    def __init__(self, source: Callable[[], Iterable[Metric]] | None = None) -> None:
        super().__init__()
        self.source = source
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def metrics(self) -> Iterator[Metric]:
        if self.source is not None:
            yield from self.source()
            return
        data = self.get_metrics_data()
        if data is None:
            return
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                yield from sm.metrics


class _Collector(Collector):
    def __init__(self, bridge: PrometheusBridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterable[Any]:
        for metric in self.bridge.metrics():
            family = convert(metric)
            if family is not None:
                yield family


def convert(metric: Metric) -> Family | None:
    name = prometheus_name(metric.name, metric.unit or "")
    doc = metric.description or metric.name
    data = metric.data
    points: Sequence[Any] = data.data_points
    keys = sorted({k for p in points for k in (p.attributes or {})})
    labels = [label_name(k) for k in keys]
    family: Family

    def values(point: Any) -> list[str]:
        attrs = point.attributes or {}
        return [_label_value(attrs.get(k, "")) for k in keys]

    if isinstance(data, Histogram):
        family = HistogramMetricFamily(name, doc, labels=labels)
        for p in points:
            buckets, running = [], 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                running += count
                buckets.append((_le(bound), float(running)))
            buckets.append(("+Inf", float(p.count)))
            family.add_metric(values(p), buckets, p.sum)
        return family
    if isinstance(data, Sum) and data.is_monotonic:
        family = CounterMetricFamily(name, doc, labels=labels)
    elif isinstance(data, Sum | Gauge):
        family = GaugeMetricFamily(name, doc, labels=labels)
    else:  # exponential histograms are not configured anywhere
        return None
    for p in points:
        family.add_metric(values(p), p.value)
    return family


def _label_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _le(bound: float) -> str:
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text
