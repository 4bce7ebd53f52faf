"""Turns engine hits over trust-labelled segments into Findings, and findings into an action.

Shared by the injection guard and corpus evaluation so both decide the same way: the vector
comes from the segment's trust, shadow and suppressed findings are recorded but never move the
action, and the strongest enforced severity picks the action from the severity rubric.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from proxy.model import Action, Finding, Segment, Severity, Trust, Vector
from proxy.rules.engine import Engine, Hit
from proxy.rules.suppressions import Suppressor, text_sha256

VECTORS = {Trust.USER: Vector.DIRECT, Trust.UNTRUSTED: Vector.INDIRECT, Trust.TRUSTED: Vector.OTHER}
DEFAULT_ACTIONS: dict[Severity, Action] = {
    Severity.CRITICAL: Action.BLOCK,
    Severity.HIGH: Action.SEGREGATE,
    Severity.MEDIUM: Action.TAG,
    Severity.LOW: Action.TAG,
}
ENFORCE, SHADOW, SUPPRESSED = "enforce", "shadow", "suppressed"


@dataclass(frozen=True, slots=True)
class Context:
    """Who is asking, and which of their findings must not change the wire."""

    client: str | None = None
    shadow_client: bool = False
    today: date | None = None


def scan_segments(
    engine: Engine, segments: Iterable[Segment], suppressor: Suppressor, ctx: Context
) -> list[Finding]:
    findings: list[Finding] = []
    today = ctx.today or date.today()
    scanned = [seg for seg in segments if engine.applies(seg.trust)]
    all_hits = engine.scan_many([(seg.text, seg.trust) for seg in scanned], partition=ctx.client)
    for seg, hits in zip(scanned, all_hits, strict=True):
        text_hash = text_sha256(seg.text) if hits and suppressor.needs_hash else None
        for hit in hits:
            source = seg.provenance.source
            suppressed = suppressor.find(
                hit.rule.id, client=ctx.client, source=source, text_hash=text_hash, today=today
            )
            findings.append(_finding(engine, seg, hit, _mode(hit, ctx, suppressed is not None)))
    return findings


def _mode(hit: Hit, ctx: Context, suppressed: bool) -> str:
    if suppressed:
        return SUPPRESSED
    if ctx.shadow_client or hit.rule.mode == SHADOW:
        return SHADOW
    return ENFORCE


def _finding(engine: Engine, seg: Segment, hit: Hit, mode: str) -> Finding:
    return Finding(
        rule_id=hit.rule.id,
        category=hit.rule.category,
        severity=hit.severity or hit.rule.severity,
        vector=VECTORS[seg.trust],
        segment_index=seg.index,
        span=(hit.start, hit.end),
        excerpt=_excerpt(hit),
        decoding=hit.decoding,
        detector="rules" if hit.score is None else "model",
        ruleset=engine.ruleset.digest,
        provenance=seg.provenance if seg.trust is Trust.UNTRUSTED else None,
        mode=mode,
    )


def _excerpt(hit: Hit) -> str:
    if hit.score is not None:
        return f"[score {hit.score:.3f}] {hit.excerpt}"
    # An encoded run's excerpt is unreadable; show what it decoded to as well.
    return f"{hit.excerpt} [decoded: {hit.decoded}]" if hit.decoded else hit.excerpt


def decide(
    findings: Iterable[Finding], actions: Mapping[Severity, Action] = DEFAULT_ACTIONS
) -> tuple[Action, Severity | None, tuple[str, ...]]:
    """The action for the strongest enforced finding, its severity, and one reason per rule."""
    enforced = [f for f in findings if f.mode == ENFORCE]
    if not enforced:
        return Action.ALLOW, None, ()
    order = list(Action)
    top = max(enforced, key=lambda f: (order.index(actions[f.severity]), f.severity.rank))
    reasons: dict[str, str] = {}
    for f in enforced:
        reasons.setdefault(
            f.rule_id,
            f"{f.rule_id} ({f.severity}, {f.vector}) in segment {f.segment_index} "
            f"at {f.span[0]}:{f.span[1]} via {'+'.join(f.decoding)}",
        )
    return actions[top.severity], top.severity, tuple(reasons.values())
