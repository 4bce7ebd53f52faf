"""Builds the tracer and meter providers from the standard `OTEL_*` environment variables.

We build the providers by hand (no global SDK configurator), so the exporter variables
(`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`: `otlp`, `console`, `none`) are read here. One
deliberate difference from the SDK default: with nothing set, nothing is exported (traces are
not recorded at all; metrics only feed `/metrics`), so an unconfigured proxy pays next to nothing
and never retries a collector that is not there. Setting an OTLP endpoint switches OTLP on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from proxy.errors import ConfigError
from proxy.telemetry import names as n

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What the environment asks for, resolved and validated."""

    disabled: bool
    traces: tuple[str, ...]  # subset of ("otlp", "console"); empty: tracing off
    metrics: tuple[str, ...]
    traces_protocol: str
    metrics_protocol: str
    service_name: str


def plan_from_env(env: Mapping[str, str]) -> ExportPlan:
    disabled = env.get(n.ENV_SDK_DISABLED, "").strip().lower() == "true"
    base = env.get(n.ENV_OTLP_ENDPOINT)
    protocol = env.get(n.ENV_OTLP_PROTOCOL, "http/protobuf")
    return ExportPlan(
        disabled=disabled,
        traces=_exporters(env, n.ENV_TRACES_EXPORTER, base or env.get(n.ENV_OTLP_TRACES_ENDPOINT)),
        metrics=_exporters(
            env, n.ENV_METRICS_EXPORTER, base or env.get(n.ENV_OTLP_METRICS_ENDPOINT)
        ),
        traces_protocol=_protocol(env.get(n.ENV_OTLP_TRACES_PROTOCOL, protocol)),
        metrics_protocol=_protocol(env.get(n.ENV_OTLP_METRICS_PROTOCOL, protocol)),
        service_name=env.get(n.ENV_SERVICE_NAME) or n.DEFAULT_SERVICE_NAME,
    )


def _exporters(env: Mapping[str, str], var: str, endpoint: str | None) -> tuple[str, ...]:
    raw = env.get(var)
    if raw is None:
        return ("otlp",) if endpoint else ()
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    # `prometheus` is what the SDK configurator calls a pull exporter; ours is always at /metrics.
    unknown = [name for name in names if name not in (*EXPORTERS, "prometheus")]
    if unknown:
        raise ConfigError(f"{var}: unknown exporter {unknown[0]!r} (known: otlp, console, none)")
    return tuple(name for name in dict.fromkeys(names) if name in ("otlp", "console"))


def _protocol(value: str) -> str:
    value = value.strip().lower()
    if value not in PROTOCOLS:
        raise ConfigError(
            f"OTLP protocol {value!r} is not supported here (use grpc or http/protobuf)"
        )
    return value


def resource(plan: ExportPlan, version: str) -> Resource:
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; our explicit values win.
    return Resource.create({SERVICE_NAME: plan.service_name, SERVICE_VERSION: version})


def tracer_provider(plan: ExportPlan, res: Resource) -> TracerProvider | None:
    """None when no trace exporter is configured: spans are then not created at all."""
    if plan.disabled or not plan.traces:
        return None
    provider = TracerProvider(resource=res)  # sampler from OTEL_TRACES_SAMPLER, as the SDK reads it
    for name in plan.traces:
        # Batch export: spans leave off the request path (OTEL_BSP_* tune it).
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(name, plan.traces_protocol)))
    return provider


def meter_provider(
    plan: ExportPlan, res: Resource, pull_readers: list[MetricReader]
) -> MeterProvider | None:
    if plan.disabled:
        return None
    readers = list(pull_readers)
    for name in plan.metrics:
        # Interval from OTEL_METRIC_EXPORT_INTERVAL (default 60 s), read by the reader itself.
        readers.append(PeriodicExportingMetricReader(_metric_exporter(name, plan.metrics_protocol)))
    return MeterProvider(resource=res, metric_readers=readers)


def _span_exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_exporter(name: str, protocol: str) -> MetricExporter:
    if name == "console":
        return ConsoleMetricExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()
