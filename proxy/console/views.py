"""Bundles as the console's pages show them: segments by trust with findings cut out at their spans,
the bundle's place in the chain, and the per-source tally. Pure functions over bundle dicts.

Every string here came from a bundle and is attacker-controlled; nothing in this module marks
anything safe, so the templates' autoescaping applies to all of it.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Undefined

from proxy.evidence.chain import GENESIS, Link, verify
from proxy.evidence.store import Row, Store

TRUST_ORDER = ("trusted", "user", "untrusted")
TRUST_NAME = {"trusted": "operator", "user": "user", "untrusted": "untrusted"}
COVERAGE_FIELDS = ("coverage", "coverage_ledger")  # the field issue "10" adds; whichever name lands


@dataclass
class Piece:
    """A run of segment text, with the findings whose span covers it (none: plain text)."""

    text: str
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SegmentView:
    segment: dict[str, Any]
    pieces: list[Piece]
    findings: list[dict[str, Any]]
    unplaced: list[dict[str, Any]]  # findings whose matched text is not in the forwarded text


def _place(text: str, f: dict[str, Any]) -> tuple[int, int] | None:
    """Where a finding sits in the segment as stored. Spans refer to the text as received; a guard
    may have rewritten it (segregation markers) and redaction may have shortened it, so fall back
    to the matched text itself."""
    span, match = f.get("span") or [0, 0], f.get("match") or ""
    start, end = int(span[0]), int(span[1])
    if match and 0 <= start < end <= len(text) and text[start:end] == match:
        return start, end
    if match and (at := text.find(match)) >= 0:
        return at, at + len(match)
    return None


def pieces(text: str, findings: list[dict[str, Any]]) -> tuple[list[Piece], list[dict[str, Any]]]:
    """`text` cut at every finding boundary; overlapping findings share the pieces they cover."""
    placed: list[tuple[int, int, dict[str, Any]]] = []
    unplaced = []
    for f in findings:
        where = _place(text, f)
        if where is None:
            unplaced.append(f)
        else:
            placed.append((*where, f))
    cuts = sorted({0, len(text), *(p for s, e, _ in placed for p in (s, e))})
    out: list[Piece] = []
    for a, b in itertools.pairwise(cuts):
        covering = [f for s, e, f in placed if s <= a and b <= e]
        if out and not covering and not out[-1].findings:
            out[-1].text += text[a:b]
        else:
            out.append(Piece(text[a:b], covering))
    return out, unplaced


def segments_by_trust(b: dict[str, Any]) -> list[tuple[str, list[SegmentView]]]:
    by_segment: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in b.get("findings") or []:
        if f.get("phase", "input") == "input":
            by_segment[int(f.get("segment_index", -1))].append(f)
    groups = []
    for trust in TRUST_ORDER:
        views = []
        for s in b.get("segments") or []:
            if s.get("trust") != trust:
                continue
            found = by_segment.get(int(s.get("index", -1)), [])
            cut, unplaced = pieces(str(s.get("text") or ""), found)
            views.append(SegmentView(s, cut, found, unplaced))
        if views:
            groups.append((trust, views))
    return groups


def output_findings(b: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in b.get("findings") or [] if f.get("phase") == "output"]


def pretty(value: Any) -> str:
    """JSON for a <pre> block (escaped by the template like everything else)."""
    if isinstance(value, Undefined):
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class Coverage:
    """The coverage ledger as a table: its summary fields, then one row per entry; `gaps` marks the
    rows no stage inspected."""

    summary: list[tuple[str, str]]
    columns: list[str]
    rows: list[list[str]]
    gaps: list[bool]


def coverage_of(b: dict[str, Any]) -> Coverage | None:
    """The ledger (`coverage`, schema 2: complete, uninspected, entries[]) whatever its exact shape."""
    ledger = next((b[k] for k in COVERAGE_FIELDS if b.get(k) is not None), None)
    if ledger is None:
        return None
    summary: list[tuple[str, str]] = []
    if isinstance(ledger, dict):
        entries = ledger.get("entries")
        summary = [(str(k), _cell(v)) for k, v in ledger.items() if k != "entries"]
        if not isinstance(entries, list):
            return Coverage(summary, [], [], [])
        ledger = entries
    if isinstance(ledger, list) and all(isinstance(x, dict) for x in ledger):
        columns = list(dict.fromkeys(k for x in ledger for k in x))
        rows = [[_cell(x.get(c)) for c in columns] for x in ledger]
        return Coverage(summary, columns, rows, [x.get("stages") == [] or bool(x.get("why")) for x in ledger])
    return Coverage(summary, ["ledger"], [[_cell(ledger)]], [False])


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    ok: bool
    problems: tuple[str, ...]
    prev_id: str | None


def chain_status(store: Store, data: bytes, b: dict[str, Any]) -> ChainStatus:
    """This bundle checked against the index: its own hashes, canonical bytes, and its link to the
    bundle before it (or to the retention anchor / genesis when it is the first)."""
    from proxy.evidence.store import Filters

    seq = int(b.get("seq") or 0)
    near = store.rows(Filters(before_seq=seq + 1, limit=2))
    mine = next((r for r in near if r.seq == seq), None)
    if mine is None:
        return ChainStatus(False, (f"seq {seq} is not in the store's index",), None)
    before = next((r for r in near if r.seq == seq - 1), None)
    anchor = store.anchor()
    if before is not None:
        prev = (before.seq, before.hash)
    elif anchor is not None and anchor[0] == seq - 1:
        prev = anchor
    elif seq == 1:
        prev = (0, GENESIS)
    else:
        return ChainStatus(False, (f"the bundle before (seq {seq - 1}) is missing from the index",), None)
    link = Link(mine.seq, mine.id, mine.hash, mine.prev_hash, data)
    problems = tuple(p.message for p in verify([link], prev))
    return ChainStatus(not problems, problems, before.id if before else None)


@dataclass(frozen=True, slots=True)
class SourceTally:
    source: str
    bundles: int
    indirect: int
    blocked: int
    rules: tuple[str, ...]
    last_seen: str


def source_tally(rows: Iterable[Row]) -> list[SourceTally]:
    """Untrusted sources by how many flagged bundles they were part of (from the index only)."""
    counts: Counter[str] = Counter()
    indirect: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    rules: dict[str, set[str]] = defaultdict(set)
    last: dict[str, str] = {}
    for r in rows:
        if not r.rules:
            continue
        for s in r.sources:
            counts[s] += 1
            indirect[s] += "indirect" in r.vectors
            blocked[s] += r.action == "block"
            rules[s].update(r.rules)
            last[s] = max(last.get(s, ""), r.time)
    ordered = sorted(counts, key=lambda s: (-indirect[s], -counts[s], s))
    return [SourceTally(s, counts[s], indirect[s], blocked[s], tuple(sorted(rules[s])), last[s]) for s in ordered]
