"""Neutralising an indirect injection so an agent's run can go on.

A finding in retrieved content (a tool result, a document) is the attacker's text, not the
caller's request: refusing the whole request makes every agent run abort. Instead the offending
segment is replaced by a withheld-content marker (the one quarantine writes) and the stage that
neutralised records which message or tool result carried the injection; the tool scope drops
side-effecting tools for the turn. A direct finding (the caller's own words) still blocks.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.guards.quarantine import WITHHELD
from proxy.model import Conversation, Exchange, Finding, Segment, Trust, Vector

MARKER_START = WITHHELD.split("{", 1)[0]  # "[guardproxy: content from "


def where(seg: Segment) -> str:
    """Which message / tool result a segment is, for messages a person or an agent reads."""
    at = ".".join(str(p) for p in seg.location.path) if seg.location else f"segment {seg.index}"
    prov = seg.provenance
    if prov.kind == "tool_result":
        call = f", call {prov.tool_call_id}" if prov.tool_call_id else ""
        return f"{at} (result of tool {prov.source or '?'}{call})"
    return f"{at} ({prov.kind}{': ' + prov.source if prov.source else ''})"


def segregates(exchange: Exchange, findings: Iterable[Finding]) -> bool:
    """Would a `segregate` action segregate anything? Only retrieved content is segregated, and
    only when the client's segregation is on: otherwise the finding is tagged, and says so."""
    mode = exchange.client_policy.segregation if exchange.client_policy else "delimit"
    return mode != "off" and any(f.vector is Vector.INDIRECT and f.mode == "enforce" for f in findings)


NOTHING_SEGREGATED = "nothing to segregate: no finding is in retrieved content, or segregation is off"


def all_indirect(findings: Iterable[Finding]) -> bool:
    found = list(findings)
    return bool(found) and all(f.vector is Vector.INDIRECT for f in found)


def neutralise(conv: Conversation, findings: Iterable[Finding]) -> tuple[Conversation, tuple[str, ...]]:
    """`conv` with every segment holding an indirect finding replaced by the marker; one reason each."""
    rules: dict[int, list[str]] = {}
    for f in findings:
        if (f.vector is Vector.INDIRECT and f.mode == "enforce" and 0 <= f.segment_index < len(conv.segments)
                and conv.segments[f.segment_index].trust is Trust.UNTRUSTED):
            rules.setdefault(f.segment_index, [])
            if f.rule_id not in rules[f.segment_index]:
                rules[f.segment_index].append(f.rule_id)
    reasons = []
    for index, ids in sorted(rules.items()):
        seg = conv.segments[index]
        if seg.text.startswith(MARKER_START):
            continue  # already withheld (quarantine, or an earlier stage)
        why = f"prompt injection detected ({', '.join(ids)})"
        conv = conv.with_text(index, WITHHELD.format(what=where(seg), why=why))
        reasons.append(f"neutralised {where(seg)}: {', '.join(ids)}")
    return conv, tuple(reasons)
