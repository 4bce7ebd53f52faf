"""Builds one evidence bundle (a JSON-ready dict) from a finished Exchange.

Everything text-like passes through the bundle's redactor before it lands here; untrusted
segments keep their provenance and a hash of the source text as received, so a reviewer can
match them to a snapshot of the upstream source. The store adds `seq`, `prev_hash` and `hash`.
The published schema is `schema.json` next to this module (`evidence/README.md` explains it).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proxy import __version__
from proxy.coverage import ledger
from proxy.evidence.redact import BundleRedactor
from proxy.model import Conversation, Exchange, Finding, Location, Output, Segment, Trust
from proxy.providers import api_named
from proxy.providers.labels import in_context

SCHEMA = "guardproxy.evidence/2"  # 2: the coverage ledger, the wire API
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now: float | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, Crockford base32; sorts by time."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass(frozen=True, slots=True)
class Kept:
    """Why a bundle exists: `flagged` (a finding or decision) or `sampled` clean traffic."""

    reason: str
    sample_rate: float


def _hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def wall_time(exchange: Exchange) -> str:
    """When the request arrived, as UTC ISO 8601 (timings hold a monotonic clock)."""
    age = time.perf_counter() - exchange.timings.received if exchange.timings.received else 0.0
    return datetime.fromtimestamp(time.time() - age, UTC).isoformat(timespec="milliseconds")


def build(
    exchange: Exchange,
    evidence_id: str,
    kept: Kept,
    redactor: BundleRedactor,
    versions: dict[str, str | None],
    sealed: dict[str, str] | None = None,
) -> dict[str, Any]:
    received = exchange.received_conversation or exchange.conversation
    forwarded = _rendered(exchange.conversation)
    received_body = received.raw
    r = redactor
    # Looked up once per segment and finding: built once here, so the bundle is linear in size.
    sources = {s.location: s.text for s in reversed(received.segments) if s.location is not None}
    by_index = {s.index: s for s in reversed(received.segments)}
    bundle: dict[str, Any] = {
        "schema": SCHEMA,
        "id": evidence_id,
        "time": wall_time(exchange),
        "request_id": exchange.request_id,
        "trace_id": exchange.trace_id,
        "client": exchange.client,
        "provider": received.vendor,
        "api": received.api,
        "model": received.model,
        "stream": received.stream,
        "kept": {"reason": kept.reason, "sample_rate": kept.sample_rate},
        "request": {
            "received": r.value(received_body),
            "forwarded": None if forwarded is received_body or forwarded == received_body else r.value(forwarded),
            "changed": forwarded is not received_body and forwarded != received_body,
            "tools": [t.name for t in received.tools],
            "tools_forwarded": [t.name for t in exchange.conversation.tools],
            # Text the model read that is not in the body (history an API keeps upstream), as received.
            **({"context": context} if (context := [_context(s, r) for s in received.segments if in_context(s)])
               else {}),
        },
        "segments": [_segment(s, sources, r) for s in exchange.conversation.segments],
        "output": _output(exchange, r),
        "findings": [_finding(f, r, _matched(f, by_index)) for f in exchange.findings],
        "decisions": [_decision(d, r) for d in exchange.decisions],
        "action": exchange.action().value,
        "blast_radius": _blast_radius(exchange, r),
        "coverage": ledger(exchange).as_dict(),  # what each stage inspected, and what nobody did
        "stages": [
            {"name": s.name, "phase": s.phase.value, "status": s.status.value,
             "verdict": s.verdict.value if s.verdict else None, "ms": round(s.duration_ms, 3),
             "detail": r.text(s.detail)}
            for s in exchange.stages
        ],
        "timings": _timings(exchange),
        "versions": {"proxy": __version__, "schema": SCHEMA, **versions},
        "redaction": r.summary(),
        "sealed": sealed,
    }
    return bundle


def _rendered(conv: Conversation) -> dict[str, Any]:
    """The body as forwarded, by the adapter of the wire format it came in."""
    return api_named(conv.api).render(conv)


def _segment(seg: Segment, sources: dict[Location, str], r: BundleRedactor) -> dict[str, Any]:
    # The text as it arrived from its source, before any guard rewrote it.
    source = sources.get(seg.location, seg.text) if seg.location is not None else seg.text
    return {
        "index": seg.index,
        "role": seg.role,
        "trust": seg.trust.value,
        "provenance": {
            "kind": seg.provenance.kind,
            "source": r.text(seg.provenance.source or "") or None,
            "tool_call_id": seg.provenance.tool_call_id,
        },
        "location": list(seg.location.path) if seg.location else None,
        "text": r.text(seg.text),
        "chars": len(seg.text),
        # The text as it arrived from its source, before any guard rewrote it.
        "source_sha256": _hash(source) if seg.trust is Trust.UNTRUSTED else None,
        "rewritten": source != seg.text,
    }


def _context(seg: Segment, r: BundleRedactor) -> dict[str, Any]:
    p = seg.provenance
    return {"role": seg.role, "trust": seg.trust.value, "text": r.text(seg.text),
            "provenance": {"kind": p.kind, "source": r.text(p.source or "") or None, "tool_call_id": p.tool_call_id}}


def _output(exchange: Exchange, r: BundleRedactor) -> dict[str, Any] | None:
    out = exchange.output
    produced: Output | None = exchange.attributes.get("upstream_output") or out
    if produced is None:
        return {"upstream_status": exchange.upstream_status, "stream_error": exchange.attributes.get("stream_error")}
    delivered = {c.id or f"#{c.index}" for c in out.tool_calls} if out is not None else set()
    return {
        "text": r.text(out.text if out is not None else ""),
        "model_text": r.text(produced.text) if out is None or produced.text != out.text else None,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": r.text(c.arguments),
             "withheld": (c.id or f"#{c.index}") not in delivered}
            for c in produced.tool_calls
        ],
        "finish_reason": produced.finish_reason,
        "response_id": produced.response_id,
        "model": produced.model,
        "usage": {"input_tokens": produced.input_tokens, "output_tokens": produced.output_tokens},
        "upstream_status": exchange.upstream_status,
        "stream_error": exchange.attributes.get("stream_error"),
    }


def _matched(f: Finding, by_index: dict[int, Segment]) -> str:
    """The text a finding matched, as received (spans refer to the original segment text)."""
    seg = by_index.get(f.segment_index)
    return seg.text[f.span[0] : f.span[1]] if seg is not None else ""


def _finding(f: Finding, r: BundleRedactor, matched: str) -> dict[str, Any]:
    return {
        "rule_id": f.rule_id, "category": f.category, "severity": f.severity.value,
        "vector": f.vector.value, "segment_index": f.segment_index, "span": list(f.span),
        "match": r.text(matched), "excerpt": r.text(f.excerpt), "decoding": list(f.decoding), "detector": f.detector,
        "ruleset": f.ruleset, "phase": f.phase.value, "mode": f.mode,
        "provenance": {"kind": f.provenance.kind, "source": r.text(f.provenance.source or "") or None,
                       "tool_call_id": f.provenance.tool_call_id} if f.provenance else None,
    }


def _decision(d: Any, r: BundleRedactor) -> dict[str, Any]:
    return {
        "stage": d.stage, "action": d.action.value,
        "severity": d.severity.value if d.severity else None,
        "reasons": [r.text(x) for x in d.reasons], "tools_removed": list(d.tools_removed),
        "calls_blocked": list(d.calls_blocked), "blast_radius": r.value(d.blast_radius),
    }


def _blast_radius(exchange: Exchange, r: BundleRedactor) -> Any:
    """The last decision's view of what the model could still reach (None before policy)."""
    for d in reversed(exchange.decisions):
        if d.blast_radius is not None:
            return r.value(d.blast_radius)
    return None


def _timings(exchange: Exchange) -> dict[str, Any]:
    t = exchange.timings
    stages: dict[str, float] = {}
    for s in exchange.stages:
        key = f"{s.name}.{s.phase.value}"
        stages[key] = round(stages.get(key, 0.0) + s.duration_ms, 3)
    return {
        "guard_in_ms": round(t.guard_in_ms, 3), "queue_ms": round(t.queue_ms, 3),
        "upstream_ms": round(t.upstream_ms, 3),
        "ttft_ms": round(t.ttft_ms, 3) if t.ttft_ms is not None else None,
        "guard_out_ms": round(t.guard_out_ms, 3), "total_ms": round(t.total_ms, 3),
        "stages_ms": stages,
    }


def severity_of(bundle: dict[str, Any]) -> str | None:
    """The strongest finding severity (for the index and `list --severity`)."""
    order = ["low", "medium", "high", "critical"]
    found = [f["severity"] for f in bundle.get("findings", []) if f.get("severity") in order]
    return max(found, key=order.index) if found else None
