"""Spans and metrics for the guard pipeline: one `guardrail.scan` per phase, one
`guardrail.stage` per guard that ran, findings as span events that carry no user content.

Both read what the pipeline recorded on the Exchange (stage records, findings, decisions) by
remembering where those lists stood when the span began; they never change the Exchange.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from proxy.model import Action, Decision, Exchange, Finding, Phase, StageStatus
from proxy.telemetry import names as n
from proxy.telemetry.instruments import Instruments
from proxy.telemetry.local_metrics import LocalHistogram

_ACTION_ORDER = list(Action)


@contextmanager
def scan(
    tracer: Tracer | None, inst: Instruments, exchange: Exchange, phase: Phase
) -> Iterator[None]:
    marks = (len(exchange.findings), len(exchange.decisions), len(exchange.stages))
    try:
        if tracer is None:
            bind_trace(exchange)
            yield
            return
        attributes = {n.GUARD_DIRECTION: phase.value, n.OPENINFERENCE_SPAN_KIND: "GUARDRAIL"}
        with tracer.start_as_current_span(
            n.SPAN_SCAN.format(direction=phase.value), kind=SpanKind.INTERNAL,
            attributes=attributes,
        ) as span:
            bind_trace(exchange)
            yield
            if span.is_recording():
                _summarise(span, exchange.findings[marks[0]:])
                span.set_attribute(n.GUARD_ACTION, strongest(exchange.decisions[marks[1]:]).value)
    finally:
        record(inst, exchange, phase, marks)


@contextmanager
def stage(tracer: Tracer, exchange: Exchange, name: str, phase: Phase) -> Iterator[None]:
    mark = len(exchange.findings)
    attributes = {n.GUARD_STAGE: name, n.GUARD_DIRECTION: phase.value}
    with tracer.start_as_current_span(
        n.SPAN_STAGE.format(stage=name), kind=SpanKind.INTERNAL, attributes=attributes,
    ) as span:
        yield
        if not span.is_recording():  # sampled out: skip the attribute work
            return
        if exchange.stages and exchange.stages[-1].name == name:
            rec = exchange.stages[-1]
            span.set_attribute(n.GUARD_STATUS, rec.status.value)
            if rec.verdict is not None:
                span.set_attribute(n.GUARD_VERDICT, rec.verdict.value)
            if rec.status in (StageStatus.ERROR, StageStatus.TIMEOUT):
                span.set_attribute(n.ERROR_TYPE, rec.status.value)
                span.set_status(Status(StatusCode.ERROR, rec.detail))
        findings = exchange.findings[mark:]
        _summarise(span, findings)
        for finding in findings:
            span.add_event(n.EVENT_FINDING, finding_attributes(finding))


def bind_trace(exchange: Exchange) -> None:
    """Evidence bundles carry the trace id: the caller's, or ours when tracing is on."""
    if exchange.trace_id is None:
        ctx = trace.get_current_span().get_span_context()
        exchange.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else None


def _summarise(span: Span, findings: Sequence[Finding]) -> None:
    span.set_attribute(n.GUARD_FINDINGS_COUNT, len(findings))
    if findings:
        span.set_attribute(n.GUARD_RULE_IDS, sorted({f.rule_id for f in findings}))


def finding_attributes(finding: Finding) -> dict[str, str | int | list[str]]:
    """Ids, classes and offsets only: the excerpt is user text and stays in the evidence."""
    return {
        n.FINDING_RULE_ID: finding.rule_id,
        n.FINDING_CATEGORY: finding.category,
        n.FINDING_SEVERITY: finding.severity.value,
        n.FINDING_VECTOR: finding.vector.value,
        n.FINDING_DECODING: list(finding.decoding),
        n.FINDING_SEGMENT: finding.segment_index,
        n.FINDING_MODE: finding.mode,
    }


def strongest(decisions: Sequence[Decision]) -> Action:
    return max((d.action for d in decisions), key=_ACTION_ORDER.index, default=Action.ALLOW)


_STAGE_RECORDERS: dict[tuple[int, str, str], tuple[object, Callable[[float], None]]] = {}


def _stage_recorder(inst: Instruments, stage: str, direction: str) -> Callable[[float], None]:
    """The stage-duration histogram's `record` for one (stage, direction), built once: stage names
    come from the configuration, so the table is as small as the pipeline (bounded all the same).
    An in-process histogram binds its point; the SDK's gets the attributes each time."""
    hist = inst.guard_duration
    key = (id(hist), stage, direction)
    found = _STAGE_RECORDERS.get(key)
    if found is not None and found[0] is hist:
        return found[1]
    attributes = {n.GUARD_STAGE: stage, n.GUARD_DIRECTION: direction}
    recorder = (hist.bind(attributes) if isinstance(hist, LocalHistogram)
                else partial(hist.record, attributes=attributes))
    if len(_STAGE_RECORDERS) >= 256:
        _STAGE_RECORDERS.clear()
    _STAGE_RECORDERS[key] = (hist, recorder)
    return recorder


def record(inst: Instruments, exchange: Exchange, phase: Phase, marks: tuple[int, int, int]) -> None:
    """Per-stage durations, decisions, blocks, findings and withheld tool calls of one phase."""
    direction = phase.value
    for rec in exchange.stages[marks[2]:]:
        if rec.status is not StageStatus.SKIPPED:
            _stage_recorder(inst, rec.name, direction)(rec.duration_ms / 1000)
    decisions = exchange.decisions[marks[1]:]
    for d in decisions:
        inst.decisions.add(1, {n.GUARD_ACTION: d.action.value, n.GUARD_DIRECTION: direction})
        for tool in d.calls_blocked:
            inst.tools_withheld.add(1, {n.TOOL_NAME: tool, n.GUARD_DIRECTION: direction})
    blocking = next((d for d in decisions if d.action is Action.BLOCK), None)
    if blocking is not None:
        inst.blocks.add(1, {n.GUARD_STAGE: blocking.stage, n.GUARD_DIRECTION: direction})
    for f in exchange.findings[marks[0]:]:
        inst.findings.add(1, {
            n.FINDING_RULE_ID: f.rule_id, n.FINDING_VECTOR: f.vector.value,
            n.FINDING_SEVERITY: f.severity.value, n.FINDING_MODE: f.mode,
            n.GUARD_DIRECTION: direction,
        })
