"""A Markdown incident report pre-filled from evidence bundles, in the playbook's post-mortem shape.

Sections follow the prompt-injection playbook's post-mortem additions: surface attribution,
direct vs indirect, blast radius, evidence preserved, detection gap, and an action-item
checklist. What the bundles know is filled in; what only a human can judge is left as a
prompt for the reviewer, never guessed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SEVERITIES = ["low", "medium", "high", "critical"]


def _excerpt(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _segments_with_findings(bundle: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    by_index: dict[int, list[dict[str, Any]]] = {}
    for f in bundle.get("findings", []):
        by_index.setdefault(f["segment_index"], []).append(f)
    return [(s, by_index[s["index"]]) for s in bundle.get("segments", []) if s["index"] in by_index]


def _worst(items: list[dict[str, Any]]) -> str:
    found = [f["severity"] for f in items if f.get("severity") in SEVERITIES]
    return max(found, key=SEVERITIES.index) if found else "none"


def render(bundles: list[dict[str, Any]], labels: dict[str, str] | None = None) -> str:
    """One report over one or more bundles of the same incident."""
    labels = labels or {}
    findings = [f for b in bundles for f in b.get("findings", [])]
    decisions = [d for b in bundles for d in b.get("decisions", [])]  # escalation lives here
    vectors = Counter(f["vector"] for f in findings)
    first, last = min(b["time"] for b in bundles), max(b["time"] for b in bundles)
    rules = sorted({f["rule_id"] for f in findings})
    models = sorted(f"{b.get('provider')}/{b.get('model')}" for b in bundles)
    lines = [
        f"# Incident report: prompt injection ({_worst(findings + decisions)})",
        "",
        f"- **Exchanges:** {len(bundles)} ({first} to {last})",
        f"- **Clients:** {', '.join(sorted({b.get('client') or '?' for b in bundles}))}",
        f"- **Models:** {', '.join(sorted(set(models)))}",
        f"- **Action taken by the proxy:** {', '.join(sorted({b.get('action', 'allow') for b in bundles}))}",
        f"- **Rules fired:** {', '.join(rules) or 'none'}",
        f"- **Rule set / policy in force:** {_versions(bundles)}",
        "",
        "## Surface attribution",
        "",
        "Where the payload entered, by segment trust and provenance:",
        "",
    ]
    lines += _surfaces(bundles)
    lines += [
        "",
        "## Direct vs indirect",
        "",
        f"- Direct (user's own words): {vectors.get('direct', 0)} finding(s)",
        f"- Indirect (retrieved / tool content): {vectors.get('indirect', 0)} finding(s)",
        f"- Other (trusted text or model output): {vectors.get('other', 0)} finding(s)",
        "",
        "**Classification:** " + _classification(vectors),
        "",
        "## Blast radius",
        "",
    ]
    lines += _blast(bundles)
    lines += ["", "## Evidence preserved", ""]
    lines += _preserved(bundles, labels)
    lines += ["", "## Detection gap", ""]
    lines += _gap(bundles)
    lines += ["", "## Action items", ""]
    lines += _actions(bundles, vectors)
    return "\n".join(lines) + "\n"


def _versions(bundles: list[dict[str, Any]]) -> str:
    rulesets = {str((b.get("versions") or {}).get("ruleset")) for b in bundles}
    policies = {str((b.get("versions") or {}).get("policy")) for b in bundles}
    return f"rules {', '.join(sorted(rulesets))}; policy {', '.join(sorted(policies))}"


def _surfaces(bundles: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in bundles:
        for seg, found in _segments_with_findings(b):
            prov = seg.get("provenance") or {}
            where = prov.get("kind", "?")
            if prov.get("source"):
                where += f" `{prov['source']}`"
            if prov.get("tool_call_id"):
                where += f" (tool call {prov['tool_call_id']})"
            out.append(f"- `{b['id']}` segment {seg['index']} ({seg['role']}, **{seg['trust']}**, {where}): "
                       f"{', '.join(sorted({f['rule_id'] for f in found}))}")
            for f in found[:3]:
                out.append(f"  - {f['severity']} `{f['rule_id']}` [{'+'.join(f.get('decoding') or [])}]: "
                           f"\"{_excerpt(f.get('excerpt') or '')}\"")
            if seg.get("source_sha256"):
                out.append(f"  - source content hash: `{seg['source_sha256']}` (compare with a snapshot "
                           "of the upstream source)")
        out += [f"- `{b['id']}` output: {f['rule_id']}" for f in b.get("findings", []) if f.get("phase") == "output"]
    return out or ["- No finding points at a segment; attribute the surface by hand."]


def _classification(vectors: Counter[str]) -> str:
    if vectors.get("indirect"):
        return ("indirect prompt injection (MITRE ATLAS AML.T0051.001): the payload arrived in "
                "retrieved content; the source must be treated as compromised until cleaned.")
    if vectors.get("direct"):
        return "direct prompt injection (MITRE ATLAS AML.T0051.000) by the caller."
    return "undetermined: no injection finding in these bundles."


def _blast(bundles: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in bundles:
        radius = b.get("blast_radius")
        calls = (b.get("output") or {}).get("tool_calls") or []
        removed = sorted({t for d in b.get("decisions", []) for t in d.get("tools_removed", [])})
        blocked = sorted({t for d in b.get("decisions", []) for t in d.get("calls_blocked", [])})
        out.append(f"- `{b['id']}`: tools offered {b.get('request', {}).get('tools') or []}, "
                   f"forwarded {b.get('request', {}).get('tools_forwarded') or []}; removed {removed or 'none'}; "
                   f"calls blocked {blocked or 'none'}")
        for c in calls:
            state = "WITHHELD" if c.get("withheld") else "delivered to the client"
            out.append(f"  - model called `{c['name']}` ({state}): `{_excerpt(c.get('arguments') or '', 160)}`")
        if radius is not None:
            out.append(f"  - blast radius at decision time: `{_excerpt(str(radius), 400)}`")
    out.append("- [ ] Confirm with the application owner whether any delivered tool call executed side effects.")
    return out


def _preserved(bundles: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    out = []
    for b in bundles:
        sealed = "sealed raw copy for " + b["sealed"]["recipient"] if b.get("sealed") else "no sealed raw copy"
        verdict = labels.get(b["id"], "unlabelled")
        out.append(f"- `{b['id']}` request {b.get('request_id')} trace {b.get('trace_id') or '-'}: "
                   f"hash `{b.get('hash')}`, chain seq {b.get('seq')}; {sealed}; reviewer label: {verdict}")
    out += [
        "- The offending request (as received and as forwarded), the retrieved context with provenance, "
        "and the model output are in the bundles above (PII redacted, credentials scrubbed).",
        "- [ ] Snapshot the upstream source(s) named under *Surface attribution* before they are purged.",
        "- [ ] `guardproxy evidence export` these ids and `guardproxy evidence verify` the store.",
    ]
    return out


def _gap(bundles: list[dict[str, Any]]) -> list[str]:
    actions = Counter(b.get("action", "allow") for b in bundles)
    shadow = sorted({f["rule_id"] for b in bundles for f in b.get("findings", []) if f.get("mode") != "enforce"})
    out = [f"- Proxy actions: {dict(actions)}"]
    if shadow:
        out.append(f"- Findings that changed nothing on the wire (shadow/suppressed): {', '.join(shadow)}")
    if actions.get("allow") or actions.get("tag"):
        out.append("- Some exchanges were only tagged or allowed: decide whether the rule severity or the "
                   "policy rubric should have blocked or segregated them.")
    out.append("- [ ] What did the detector miss? Add the missed phrasing as a rule example, then "
               "`guardproxy evidence label` these bundles and `guardproxy evidence corpus` them into the "
               "regression set.")
    return out


def _actions(bundles: list[dict[str, Any]], vectors: Counter[str]) -> list[str]:
    items = ["- [ ] Label each bundle true_positive / false_positive (`guardproxy evidence label`)."]
    if vectors.get("indirect"):
        items.append("- [ ] Quarantine or clean the compromised source; re-index it for retrieval.")
    items += [
        "- [ ] Review tool scopes for the client: remove side-effecting tools it does not need.",
        "- [ ] Add the payload to the rules' `match` examples; run `guardproxy rules replay` on stored traffic.",
        "- [ ] Notify affected users/owners if data left through a tool call or the output.",
        "- [ ] Record the timeline (first seen, detected, contained) and the owner of each item.",
    ]
    return items
