"""What every evidence store offers, the index row it keeps per bundle, and opening one by location.

A store appends bundles under one chain shared by every writer (processes, replicas), returns
exact stored bytes, lists and filters through its index, keeps reviewer labels beside the
bundles, and prunes old bundles while leaving an anchor so the rest still verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from proxy.evidence.bundle import severity_of
from proxy.evidence.chain import Link


@dataclass(frozen=True, slots=True)
class Row:
    """One bundle as the index knows it: enough to list and filter without opening files."""

    seq: int
    id: str
    time: str
    client: str
    severity: str | None
    action: str
    kept: str
    model: str
    rules: tuple[str, ...]
    vectors: tuple[str, ...]
    sources: tuple[str, ...]
    hash: str
    prev_hash: str
    size: int


@dataclass(frozen=True, slots=True)
class Filters:
    since: str | None = None  # ISO 8601, inclusive
    until: str | None = None
    client: str | None = None
    severity: str | None = None  # at least this severity
    rule: str | None = None  # a rule id, or a prefix ending in "."
    vector: str | None = None
    source: str | None = None  # substring of an untrusted segment's source
    limit: int = 100
    action: str | None = None  # allow | tag | segregate | block
    before_seq: int | None = None  # keyset paging: only bundles older than this seq
    ids: frozenset[str] | None = None  # only these bundles (e.g. those carrying a label)


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    verdict: str  # true_positive | false_positive
    note: str
    reviewer: str
    time: str


@dataclass
class PruneResult:
    removed: int = 0
    freed_bytes: int = 0
    anchor: tuple[int, str] | None = None
    ids: list[str] = field(default_factory=list)


SEVERITIES = ["low", "medium", "high", "critical"]
MAX_SQL_IDS = 2000  # an id set up to this size is matched by the index, a larger one row by row


def row_of(bundle: dict[str, Any], size: int) -> Row:
    findings = bundle.get("findings") or []
    sources = {
        (s.get("provenance") or {}).get("source") or ""
        for s in bundle.get("segments") or []
        if s.get("trust") == "untrusted"
    }
    return Row(
        seq=int(bundle["seq"]),
        id=str(bundle["id"]),
        time=str(bundle["time"]),
        client=str(bundle.get("client") or ""),
        severity=severity_of(bundle),
        action=str(bundle.get("action") or "allow"),
        kept=str((bundle.get("kept") or {}).get("reason") or ""),
        model=str(bundle.get("model") or ""),
        rules=tuple(sorted({f["rule_id"] for f in findings})),
        vectors=tuple(sorted({f["vector"] for f in findings})),
        sources=tuple(sorted(s for s in sources if s)),
        hash=str(bundle["hash"]),
        prev_hash=str(bundle["prev_hash"]),
        size=size,
    )


def index_query(f: Filters, mark: str) -> tuple[str, list[str | int]]:
    """The conditions an SQL index applies itself (time range, client, action, seq cursor) as
    ' and ...' text with its arguments; `mark` is the driver's placeholder (`?` for SQLite, `%s`
    for PostgreSQL)."""
    conditions: list[tuple[str, str | int | None]] = [
        ("time >= ", f.since), ("time <= ", f.until), ("client = ", f.client), ("action = ", f.action),
        ("seq < ", f.before_seq)]
    used = [(sql, value) for sql, value in conditions if value is not None and value != ""]
    where = "".join(f" and {sql}{mark}" for sql, _ in used)
    args: list[str | int] = [value for _, value in used if value is not None]
    if f.ids is not None and len(f.ids) <= MAX_SQL_IDS:  # e.g. the bundles carrying one label
        where += f" and id in ({', '.join([mark] * len(f.ids))})" if f.ids else " and 1 = 0"
        args += sorted(f.ids)
    return where, args


def index_limit(f: Filters) -> str:
    """' limit N' when the index alone decides which rows pass (no filter applied row by row), so a
    page of a large store reads only its own rows."""
    row_side = (f.severity, f.rule, f.vector, f.source)
    ids_in_sql = f.ids is None or len(f.ids) <= MAX_SQL_IDS
    return f" limit {int(f.limit)}" if not any(row_side) and ids_in_sql else ""


def first_matches(rows: Iterable[Row], f: Filters) -> list[Row]:
    """Up to `f.limit` rows that pass every filter, in the order given."""
    out: list[Row] = []
    for row in rows:
        if matches(row, f):
            out.append(row)
            if len(out) >= f.limit:
                break
    return out


def matches(row: Row, f: Filters) -> bool:
    """The filters every store applies the same way (stores may pre-filter in their index)."""
    if (f.since and row.time < f.since) or (f.until and row.time > f.until):
        return False
    if f.client and row.client != f.client:
        return False
    if (f.action and row.action != f.action) or (f.before_seq is not None and row.seq >= f.before_seq):
        return False
    if f.ids is not None and row.id not in f.ids:
        return False
    if f.severity and (row.severity is None or SEVERITIES.index(row.severity) < SEVERITIES.index(f.severity)):
        return False
    if f.rule and not any(r == f.rule or (f.rule.endswith(".") and r.startswith(f.rule)) for r in row.rules):
        return False
    if f.vector and f.vector not in row.vectors:
        return False
    return not (f.source and not any(f.source in s for s in row.sources))


class Store(Protocol):
    location: str

    def append(self, bundles: list[dict[str, Any]]) -> list[Row]: ...

    def get(self, evidence_id: str) -> bytes | None: ...

    def rows(self, filters: Filters | None = None) -> list[Row]: ...

    def links(self) -> Iterator[Link]: ...

    def anchor(self) -> tuple[int, str] | None: ...

    def head(self) -> tuple[int, str]: ...

    def extras(self) -> list[str]: ...

    def label(self, label: Label) -> None: ...

    def labels(self) -> dict[str, Label]: ...

    def prune(self, before: str | None, max_bytes: int | None) -> PruneResult: ...

    def close(self) -> None: ...


def open_store(location: str | Path, dsn: str | None = None) -> Store:
    """A directory opens the files store; a postgresql:// URL (or `dsn`) the PostgreSQL one."""
    text = str(location)
    if dsn or text.startswith(("postgresql://", "postgres://")):
        from proxy.evidence.store_postgres import PostgresStore

        return PostgresStore(dsn or text)
    from proxy.evidence.store_files import FileStore

    return FileStore(Path(text))
