"""Metrics aggregated in process, for the default set-up where `/metrics` is their only reader.

The OpenTelemetry SDK validates, copies and hashes the attributes of every measurement (about 7 µs
a record, and a chat request makes 6 to 14 records: a tenth of the proxy's own CPU per request).
With no metric exporter configured, nothing but the Prometheus scrape reads them, so guardproxy
aggregates them itself: each histogram or counter keeps one running point per attribute set, and a
scrape renders the same metric data the SDK would hand over (cumulative, same bucket boundaries,
same cardinality limit; tests/test_telemetry.py checks the two render alike). Configuring an OTLP
or console metric exporter puts every instrument back on the SDK.

The instruments take the API's call shapes (`record(amount, attributes)`, `add(amount,
attributes)`, observable callbacks), so the code that records does not know which is in use.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

Attributes = Mapping[str, Any] | None
Callback = Callable[[CallbackOptions], Iterable[Observation]]
# The SDK's defaults, for a histogram created without advised boundaries.
DEFAULT_BOUNDARIES = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
                      7500.0, 10000.0)
# The SDK's per-instrument cardinality limit: past it, new attribute sets share one overflow point.
CARDINALITY_LIMIT = 2000
OVERFLOW = {"otel.metric.overflow": True}


def _key(attributes: Attributes) -> frozenset[tuple[str, Any]]:
    """The attribute set as a key: independent of the order the caller built the dict in."""
    if not attributes:
        return frozenset()
    try:
        return frozenset(attributes.items())
    except TypeError:  # a list value (allowed by the API): keyed by its items
        return frozenset((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items())


class _Instrument:
    def __init__(self, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._lock = threading.Lock()  # records come from the event loop, but a reload may be a thread
        self._start = time.time_ns()

    def _new(self, points: dict[frozenset[tuple[str, Any]], Any], key: frozenset[tuple[str, Any]],
             attributes: Attributes, make: Callable[[dict[str, Any]], Any]) -> Any:
        """The point for an attribute set seen for the first time (or the overflow point)."""
        if len(points) >= CARDINALITY_LIMIT - 1:
            key, attributes = frozenset(OVERFLOW.items()), OVERFLOW
            if key in points:
                return points[key]
        point = points[key] = make(dict(attributes or {}))
        return point


class _HistogramPoint:
    __slots__ = ("attributes", "count", "counts", "max", "min", "sum")

    def __init__(self, attributes: dict[str, Any], buckets: int) -> None:
        self.attributes = attributes
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.counts = [0] * buckets


class LocalHistogram(_Instrument):
    def __init__(self, name: str, unit: str, description: str, boundaries: Sequence[float] | None) -> None:
        super().__init__(name, unit, description)
        self.boundaries = tuple(float(b) for b in (DEFAULT_BOUNDARIES if boundaries is None else boundaries))
        self._points: dict[frozenset[tuple[str, Any]], _HistogramPoint] = {}

    def record(self, amount: float, attributes: Attributes = None, context: object = None) -> None:
        if not math.isfinite(amount) or amount < 0:  # the SDK drops these too (with a warning)
            return
        key = _key(attributes)
        with self._lock:
            p = self._points.get(key)
            if p is None:
                p = self._new(self._points, key, attributes, lambda a: _HistogramPoint(a, len(self.boundaries) + 1))
            self._add(p, amount)

    def bind(self, attributes: Attributes) -> Callable[[float], None]:
        """`record` for one fixed attribute set, its point found once: what a hot path that
        records the same few sets on every request (one per guard stage) calls instead."""
        key = _key(attributes)
        with self._lock:
            point = self._points.get(key)
            if point is None:
                point = self._new(self._points, key, attributes,
                                  lambda a: _HistogramPoint(a, len(self.boundaries) + 1))

        def record(amount: float) -> None:
            if math.isfinite(amount) and amount >= 0:
                with self._lock:
                    self._add(point, amount)

        return record

    def _add(self, p: _HistogramPoint, amount: float) -> None:
        p.counts[bisect_left(self.boundaries, amount)] += 1  # bucket i holds (b[i-1], b[i]]
        p.count += 1
        p.sum += amount
        if amount < p.min:
            p.min = amount
        if amount > p.max:
            p.max = amount

    def collect(self, now: int) -> Metric | None:
        with self._lock:
            points = [HistogramDataPoint(p.attributes, self._start, now, p.count, p.sum, list(p.counts),
                                         self.boundaries, p.min, p.max)
                      for p in self._points.values()]
        if not points:
            return None
        return Metric(self.name, self.description, self.unit,
                      Histogram(points, AggregationTemporality.CUMULATIVE))


class _SumPoint:
    __slots__ = ("attributes", "value")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.value: float = 0


class LocalCounter(_Instrument):
    def __init__(self, name: str, unit: str, description: str, monotonic: bool) -> None:
        super().__init__(name, unit, description)
        self.monotonic = monotonic
        self._points: dict[frozenset[tuple[str, Any]], _SumPoint] = {}

    def add(self, amount: float, attributes: Attributes = None, context: object = None) -> None:
        if self.monotonic and amount < 0:  # the SDK refuses a negative add on a counter
            return
        key = _key(attributes)
        with self._lock:
            p = self._points.get(key)
            if p is None:
                p = self._new(self._points, key, attributes, _SumPoint)
            p.value += amount

    def collect(self, now: int) -> Metric | None:
        with self._lock:
            points = [NumberDataPoint(p.attributes, self._start, now, p.value) for p in self._points.values()]
        if not points:
            return None
        return Metric(self.name, self.description, self.unit,
                      Sum(points, AggregationTemporality.CUMULATIVE, self.monotonic))


class LocalObservable(_Instrument):
    """An observable up-down counter: its callbacks are read when the metrics are collected."""

    def __init__(self, name: str, unit: str, description: str, callbacks: Sequence[Callback]) -> None:
        super().__init__(name, unit, description)
        self.callbacks = list(callbacks)

    def collect(self, now: int) -> Metric | None:
        points = [NumberDataPoint(dict(o.attributes or {}), self._start, now, o.value)
                  for callback in self.callbacks for o in callback(CallbackOptions())]
        if not points:
            return None
        return Metric(self.name, self.description, self.unit, Sum(points, AggregationTemporality.CUMULATIVE, False))


Local = LocalHistogram | LocalCounter | LocalObservable


class LocalMeter:
    """The API's instrument factories, over the provider's one registry (names are unique there)."""

    def __init__(self, provider: LocalMeterProvider) -> None:
        self._provider = provider

    def create_histogram(self, name: str, unit: str = "", description: str = "",
                         explicit_bucket_boundaries_advisory: Sequence[float] | None = None) -> LocalHistogram:
        made = self._provider.register(LocalHistogram(name, unit, description, explicit_bucket_boundaries_advisory))
        assert isinstance(made, LocalHistogram), f"{name} is already another kind of instrument"
        return made

    def create_counter(self, name: str, unit: str = "", description: str = "") -> LocalCounter:
        made = self._provider.register(LocalCounter(name, unit, description, monotonic=True))
        assert isinstance(made, LocalCounter), f"{name} is already another kind of instrument"
        return made

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> LocalCounter:
        made = self._provider.register(LocalCounter(name, unit, description, monotonic=False))
        assert isinstance(made, LocalCounter), f"{name} is already another kind of instrument"
        return made

    def create_observable_up_down_counter(self, name: str, callbacks: Sequence[Callback] | None = None,
                                          unit: str = "", description: str = "") -> LocalObservable:
        made = self._provider.register(LocalObservable(name, unit, description, callbacks or ()))
        assert isinstance(made, LocalObservable), f"{name} is already another kind of instrument"
        return made


class LocalMeterProvider:
    """Instruments in creation order (the order a scrape lists them in, as the SDK does)."""

    def __init__(self) -> None:
        self._instruments: dict[str, Local] = {}
        self._lock = threading.Lock()

    def get_meter(self, name: str, version: str | None = None, *args: object, **kwargs: object) -> LocalMeter:
        return LocalMeter(self)

    def register(self, instrument: Local) -> Local:
        """The instrument of that name: the first one made (as the SDK hands back a duplicate's)."""
        with self._lock:
            return self._instruments.setdefault(instrument.name, instrument)

    def metrics(self) -> list[Metric]:
        now = time.time_ns()
        with self._lock:
            instruments = list(self._instruments.values())
        return [m for i in instruments if (m := i.collect(now)) is not None]

    def shutdown(self) -> None:
        return None
