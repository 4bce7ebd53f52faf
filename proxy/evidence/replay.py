"""Replays candidate rules over stored bundles: which exchanges would flip, and why.

Each bundle's request *as received* is parsed again by its provider adapter (trust labels and
provenance come back exactly as the proxy saw them), with the text the request read from outside
its body (Responses history restored from the response state, kept in the bundle as received) put
back in front, and scanned with the candidate rule set
through the same engine, suppressions and decision code as the injection stage. An exchange is
flagged when its enforced rule findings reach at least `tag`; the bundle's own rule findings say
how it was flagged at the time. Redaction never touches rule matches, so what fired then can
fire again; PII placeholders stand in for values no rule should depend on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError, GuardProxyError
from proxy.evidence.store import Filters, open_store
from proxy.model import Action, Conversation, Location, Provenance, Segment, Trust
from proxy.providers.labels import CONTEXT_ROOT
from proxy.rules.findings import Context, decide, scan_segments
from proxy.rules.store import RuleStore


@dataclass(frozen=True, slots=True)
class Flip:
    id: str
    time: str
    client: str
    direction: str  # "newly flagged" | "no longer flagged"
    before: tuple[str, ...]  # rule ids that fired then
    after: tuple[str, ...]  # rule ids the candidate set fires
    excerpt: str


@dataclass
class ReplayReport:
    ruleset: str
    bundles: int = 0
    flagged_before: int = 0
    flagged_after: int = 0
    skipped: list[str] = field(default_factory=list)  # ids whose request could not be re-parsed
    flips: list[Flip] = field(default_factory=list)

    def count(self, direction: str) -> int:
        return sum(f.direction == direction for f in self.flips)


def _parse(bundle: dict[str, Any]) -> Conversation:
    """The conversation the live request judged: the body re-parsed, with the text it read from
    outside the body (history an API keeps upstream) put back in front, as the proxy restored it."""
    request = bundle.get("request") or {}
    body = request.get("received")
    if not isinstance(body, dict):
        raise ValueError("bundle holds no received request")
    from proxy.providers import api_named

    conv = api_named(bundle.get("api") or bundle.get("provider")).parse(body)
    context = [_context_segment(n, c) for n, c in enumerate(request.get("context") or ())]
    return conv.with_segments([*context, *conv.segments]) if context else conv


def _context_segment(n: int, entry: dict[str, Any]) -> Segment:
    prov = entry.get("provenance") or {}
    return Segment(n, str(entry["role"]), str(entry["text"]), Trust(entry["trust"]),
                   Provenance(str(prov.get("kind") or "history"), prov.get("source"), prov.get("tool_call_id")),
                   Location((CONTEXT_ROOT, "history", n)))


def _rules_then(bundle: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted({
        f["rule_id"] for f in bundle.get("findings", [])
        if f.get("detector") == "rules" and f.get("mode", "enforce") == "enforce"
    }))


def replay(bundles: Iterable[dict[str, Any]], rules: Path) -> ReplayReport:
    """Scan every bundle with the rule set in `rules`; ConfigError when the set does not load."""
    store = RuleStore(rules)
    store.load()
    live = store.live
    report = ReplayReport(live.ruleset.digest)
    for bundle in bundles:
        report.bundles += 1
        try:
            conv = _parse(bundle)
        except (GuardProxyError, ValueError, KeyError, TypeError):
            report.skipped.append(str(bundle.get("id")))
            continue
        findings = scan_segments(live.engine, conv.segments, live.suppressor,
                                 Context(client=bundle.get("client")))
        action, _, _ = decide(findings)
        after = tuple(sorted({f.rule_id for f in findings if f.mode == "enforce"}))
        before = _rules_then(bundle)
        was, now = bool(before), action is not Action.ALLOW
        report.flagged_before += was
        report.flagged_after += now
        if was != now:
            hit = next((f for f in findings if f.mode == "enforce"), None)
            excerpt = hit.excerpt if hit is not None else _excerpt_then(bundle)
            report.flips.append(Flip(str(bundle["id"]), str(bundle.get("time", "")), str(bundle.get("client", "")),
                                     "newly flagged" if now else "no longer flagged", before, after, excerpt))
    return report


def _excerpt_then(bundle: dict[str, Any]) -> str:
    for f in bundle.get("findings", []):
        if f.get("detector") == "rules":
            return str(f.get("excerpt") or "")
    return ""


def stored_bundles(location: str | Path) -> Iterator[dict[str, Any]]:
    """Every bundle in a store, oldest first."""
    import json

    store = open_store(location)
    try:
        for row in reversed(store.rows(Filters(limit=10**9))):
            data = store.get(row.id)
            if data is not None:
                yield json.loads(data)
    finally:
        store.close()


def format_report(report: ReplayReport, limit: int = 50) -> str:
    """Plain text for a terminal: each flip with its excerpt, then the summary counts."""
    lines = []
    for flip in report.flips[:limit]:
        rules = ", ".join(flip.after if flip.direction == "newly flagged" else flip.before) or "-"
        lines.append(f"{flip.direction:<17} {flip.id} {flip.time} {flip.client}: {rules}")
        lines.append(f"    \"{' '.join(flip.excerpt.split())[:200]}\"")
    if len(report.flips) > limit:
        lines.append(f"... and {len(report.flips) - limit} more")
    lines.append(
        f"rule set {report.ruleset} over {report.bundles} bundle(s): "
        f"{report.count('newly flagged')} newly flagged, {report.count('no longer flagged')} no longer "
        f"flagged; flagged before {report.flagged_before}, after {report.flagged_after}"
        + (f"; {len(report.skipped)} skipped (request not re-parsable)" if report.skipped else "")
    )
    return "\n".join(lines)


def run(evidence: str | Path, rules: Path) -> tuple[int, str]:
    """What `guardproxy rules replay --evidence DIR --rules PATH` prints, and its exit code."""
    try:
        report = replay(stored_bundles(evidence), rules)
    except ConfigError as exc:
        return 2, f"error: {exc.message}"
    return 0, format_report(report)
