"""The shared evidence store: bundles, index, labels and chain in PostgreSQL, for many replicas.

Every append runs in one transaction under a transaction-scoped advisory lock, so replicas on
different machines extend one chain; a bundle is durable when its transaction commits. Bundles
are kept as their exact canonical bytes (`bytea`), so the same verification applies as for files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from proxy.errors import ConfigError
from proxy.evidence.chain import GENESIS, Link, link
from proxy.evidence.store import (
    Filters,
    Label,
    PruneResult,
    Row,
    first_matches,
    index_limit,
    index_query,
    row_of,
)

CHAIN_LOCK = 0x6775_6172_6470  # "guardp": one advisory lock id for the chain
_SCHEMA = """
create table if not exists guardproxy_evidence (
  seq bigint primary key, id text unique not null, time text not null, client text,
  severity text, action text, kept text, model text, rules text[], vectors text[], sources text[],
  hash text not null, prev_hash text not null, size integer not null, body bytea not null);
create index if not exists guardproxy_evidence_time on guardproxy_evidence(time);
create table if not exists guardproxy_evidence_meta (key text primary key, value text not null);
create table if not exists guardproxy_evidence_labels (
  id text primary key, verdict text not null, note text, reviewer text, time text not null);
"""
_COLUMNS = "seq, id, time, client, severity, action, kept, model, rules, vectors, sources, hash, prev_hash, size"


class PostgresStore:
    def __init__(self, dsn: str) -> None:
        self.location = _safe(dsn)
        self._dsn = dsn
        try:
            self._db = psycopg.connect(dsn, autocommit=False, connect_timeout=5)
        except psycopg.Error as exc:
            raise ConfigError(f"evidence store {self.location}: cannot connect ({exc})") from exc
        self._lock = threading.Lock()
        with self._lock, self._db.transaction():
            self._db.execute("select pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            self._db.execute(_SCHEMA)
        self._db.commit()

    def head(self) -> tuple[int, str]:
        """The newest (seq, hash) the index holds: what a checkpoint signs."""
        with self._lock:
            found = self._head()
            self._db.commit()  # no transaction left open between checkpoints
        return found

    def _head(self) -> tuple[int, str]:
        row = self._db.execute("select seq, hash from guardproxy_evidence order by seq desc limit 1").fetchone()
        if row:
            return int(row[0]), str(row[1])
        return self.anchor() or (0, GENESIS)

    def _reconnect_if_lost(self) -> None:
        """After the server went away the connection stays broken: open a new one when asked to
        write again, so the store recovers by itself once PostgreSQL is back."""
        if self._db.closed or self._db.broken:
            self._db = psycopg.connect(self._dsn, autocommit=False, connect_timeout=5)

    def append(self, bundles: list[dict[str, Any]]) -> list[Row]:
        if not bundles:
            return []
        with self._lock:
            self._reconnect_if_lost()
            return self._append(bundles)

    def _append(self, bundles: list[dict[str, Any]]) -> list[Row]:
        with self._db.transaction():
            self._db.execute("select pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            datas = link(bundles, *self._head())
            rows = [row_of(b, len(d)) for b, d in zip(bundles, datas, strict=True)]
            with self._db.cursor() as cur:
                cur.executemany(
                    f"insert into guardproxy_evidence ({_COLUMNS}, body) values "
                    f"({', '.join(['%s'] * 15)})",
                    [(r.seq, r.id, r.time, r.client, r.severity, r.action, r.kept, r.model,
                      list(r.rules), list(r.vectors), list(r.sources), r.hash, r.prev_hash, r.size, d)
                     for r, d in zip(rows, datas, strict=True)],
                )
        return rows

    def get(self, evidence_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("select body from guardproxy_evidence where id = %s", (evidence_id,)).fetchone()
            self._db.commit()
        return bytes(row[0]) if row else None

    def rows(self, filters: Filters | None = None) -> list[Row]:
        f = filters or Filters()
        where, args = index_query(f, "%s")
        with self._lock:
            # A server-side cursor: filters applied row by row stop reading once the page is full,
            # instead of the driver fetching the whole index first.
            with self._db.cursor(name="guardproxy_evidence_rows") as cur:
                cur.itersize = 500
                cur.execute(f"select {_COLUMNS} from guardproxy_evidence where true{where} "
                            f"order by seq desc{index_limit(f)}", args)
                out = first_matches((_row(raw) for raw in cur), f)
            self._db.commit()
        return out

    def links(self) -> Iterator[Link]:
        last = -1
        while True:  # pages by seq: verifying a large store never holds it all in memory
            with self._lock:
                raws = self._db.execute(
                    "select seq, id, hash, prev_hash, body from guardproxy_evidence where seq > %s "
                    "order by seq limit 500", (last,),
                ).fetchall()
                self._db.commit()
            if not raws:
                return
            for seq, evidence_id, hash_, prev, body in raws:
                yield Link(int(seq), str(evidence_id), str(hash_), str(prev), bytes(body))
            last = int(raws[-1][0])

    def anchor(self) -> tuple[int, str] | None:
        row = self._db.execute("select value from guardproxy_evidence_meta where key = 'anchor'").fetchone()
        if not row:
            return None
        seq, hash_ = str(row[0]).split(" ", 1)
        return int(seq), hash_

    def extras(self) -> list[str]:
        return []  # one transaction writes bundle and index together: nothing can be left over

    def label(self, label: Label) -> None:
        with self._lock, self._db.transaction():
            self._db.execute(
                "insert into guardproxy_evidence_labels (id, verdict, note, reviewer, time) "
                "values (%s, %s, %s, %s, %s) on conflict (id) do update set verdict = excluded.verdict, "
                "note = excluded.note, reviewer = excluded.reviewer, time = excluded.time",
                (label.id, label.verdict, label.note, label.reviewer, label.time),
            )

    def labels(self) -> dict[str, Label]:
        with self._lock:
            raws = self._db.execute(
                "select id, verdict, note, reviewer, time from guardproxy_evidence_labels"
            ).fetchall()
            self._db.commit()
        return {str(r[0]): Label(*(str(x or "") for x in r)) for r in raws}

    def prune(self, before: str | None, max_bytes: int | None) -> PruneResult:
        with self._lock, self._db.transaction():
            self._db.execute("select pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            rows = [_row(r) for r in self._db.execute(f"select {_COLUMNS} from guardproxy_evidence order by seq")]
            total = sum(r.size for r in rows)
            doomed: list[Row] = []
            for r in rows:
                if (before and r.time < before) or (max_bytes is not None and total > max_bytes):
                    doomed.append(r)
                    total -= r.size
                else:
                    break  # the oldest prefix only: the rest stays one unbroken chain
            if not doomed:
                return PruneResult()
            last = doomed[-1]
            self._db.execute(
                "insert into guardproxy_evidence_meta (key, value) values ('anchor', %s) "
                "on conflict (key) do update set value = excluded.value", (f"{last.seq} {last.hash}",))
            self._db.execute("delete from guardproxy_evidence where seq <= %s", (last.seq,))
        return PruneResult(len(doomed), sum(r.size for r in doomed), (last.seq, last.hash), [r.id for r in doomed])

    def close(self) -> None:
        self._db.close()


def _row(raw: Any) -> Row:
    return Row(int(raw[0]), str(raw[1]), str(raw[2]), str(raw[3] or ""), raw[4], str(raw[5] or ""),
               str(raw[6] or ""), str(raw[7] or ""), tuple(raw[8] or ()), tuple(raw[9] or ()),
               tuple(raw[10] or ()), str(raw[11]), str(raw[12]), int(raw[13]))


def _safe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql://(unparsable dsn)"
    info.pop("password", None)
    user, host, port = info.get("user", ""), info.get("host", ""), info.get("port", 5432)
    return f"postgresql://{user}@{host}:{port}/{info.get('dbname', '')}"
