"""The embedded evidence store: one file per bundle, an SQLite index, one chain across processes.

Appends take an exclusive `flock` on `chain.lock`, so any number of uvicorn workers (or CLI
commands) on one machine extend a single chain. A bundle file is written atomically (temp
file, fsync, rename, directory fsync) before its index row commits; a writer killed between
the two leaves a file the index never mentions, which `verify` reports as an extra and which
breaks nothing, because the chain is defined by the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SCHEMA = """
create table if not exists bundles (
  seq integer primary key, id text unique not null, time text not null, client text,
  severity text, action text, kept text, model text, rules text, vectors text, sources text,
  hash text not null, prev_hash text not null, size integer not null);
create index if not exists bundles_time on bundles(time);
create table if not exists meta (key text primary key, value text not null);
create table if not exists labels (
  id text primary key, verdict text not null, note text, reviewer text, time text not null);
"""
_COLUMNS = "seq, id, time, client, severity, action, kept, model, rules, vectors, sources, hash, prev_hash, size"


def _day(evidence_id: str) -> str:
    """The UTC day a ULID was minted: bundles are sharded by day, which retention walks."""
    ms = 0
    for ch in evidence_id[:10]:
        ms = ms * 32 + _CROCKFORD.index(ch)
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(files: list[tuple[Path, bytes]], fsyncs: ThreadPoolExecutor) -> None:
    """Each file to a temp name, all fsynced (in parallel: the journal commits them together,
    ~40% cheaper per file here than one after another), then renamed into place."""
    opened: list[tuple[int, Path, Path]] = []
    try:
        for path, data in files:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            opened.append((fd, tmp, path))
            os.write(fd, data)
        list(fsyncs.map(os.fsync, [fd for fd, _, _ in opened]))
    finally:
        for fd, _, _ in opened:
            os.close(fd)
    for _, tmp, path in opened:
        os.replace(tmp, path)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.bundles = root / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        self._fsyncs = ThreadPoolExecutor(8, thread_name_prefix="guardproxy-evidence-fsync")
        self._lock_fd = os.open(root / "chain.lock", os.O_RDWR | os.O_CREAT, 0o640)
        self._db = sqlite3.connect(root / "index.sqlite", timeout=30, check_same_thread=False,
                                   isolation_level=None)
        with self._locked():
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=full")  # a committed row survives power loss
            self._db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def path(self, evidence_id: str) -> Path:
        return self.bundles / _day(evidence_id) / f"{evidence_id}.json"

    def head(self) -> tuple[int, str]:
        """The newest (seq, hash) the index holds: what a checkpoint signs."""
        return self._head()

    def _head(self) -> tuple[int, str]:
        row = self._db.execute("select seq, hash from bundles order by seq desc limit 1").fetchone()
        if row:
            return int(row[0]), str(row[1])
        return self.anchor() or (0, GENESIS)

    def append(self, bundles: list[dict[str, Any]]) -> list[Row]:
        """Link, write and index `bundles`; durable (fsynced and committed) on return."""
        if not bundles:
            return []
        with self._locked():
            datas = link(bundles, *self._head())
            files = [(self.path(b["id"]), d) for b, d in zip(bundles, datas, strict=True)]
            dirs = {path.parent for path, _ in files}
            for d in dirs:
                if not d.exists():
                    d.mkdir(parents=True, exist_ok=True)
                    _fsync_dir(self.bundles)
            write_atomic(files, self._fsyncs)
            for d in dirs:
                _fsync_dir(d)  # the renames themselves are durable
            rows = [row_of(b, len(d)) for b, d in zip(bundles, datas, strict=True)]
            self._db.execute("begin immediate")
            try:
                self._db.executemany(
                    f"insert into bundles ({_COLUMNS}) values ({', '.join('?' * 14)})",
                    [_to_sql(r) for r in rows],
                )
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return rows

    def get(self, evidence_id: str) -> bytes | None:
        try:
            return self.path(evidence_id).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def rows(self, filters: Filters | None = None) -> list[Row]:
        f = filters or Filters()
        where, args = index_query(f, "?")
        raws = self._db.execute(
            f"select {_COLUMNS} from bundles where 1=1{where} order by seq desc{index_limit(f)}", args)
        return first_matches((_from_sql(raw) for raw in raws), f)

    def links(self) -> Iterator[Link]:
        cursor = self._db.execute("select seq, id, hash, prev_hash from bundles order by seq")
        for seq, evidence_id, hash_, prev in cursor:
            yield Link(int(seq), str(evidence_id), str(hash_), str(prev), self.get(str(evidence_id)))

    def anchor(self) -> tuple[int, str] | None:
        row = self._db.execute("select value from meta where key = 'anchor'").fetchone()
        if not row:
            return None
        seq, hash_ = str(row[0]).split(" ", 1)
        return int(seq), hash_

    def extras(self) -> list[str]:
        """Files the index does not list: interrupted writes (or something planted)."""
        known = {str(r[0]) for r in self._db.execute("select id from bundles")}
        return sorted(
            str(p.relative_to(self.root)) for p in self.bundles.rglob("*")
            if p.is_file() and p.name.removesuffix(".json") not in known
        )

    def label(self, label: Label) -> None:
        with self._locked():
            self._db.execute(
                "insert or replace into labels (id, verdict, note, reviewer, time) values (?, ?, ?, ?, ?)",
                (label.id, label.verdict, label.note, label.reviewer, label.time),
            )

    def labels(self) -> dict[str, Label]:
        cursor = self._db.execute("select id, verdict, note, reviewer, time from labels")
        return {str(r[0]): Label(*(str(x or "") for x in r)) for r in cursor}

    def prune(self, before: str | None, max_bytes: int | None) -> PruneResult:
        """Drop the oldest bundles (older than `before`, or beyond `max_bytes` in total)."""
        result = PruneResult()
        with self._locked():
            rows = [_from_sql(r) for r in self._db.execute(f"select {_COLUMNS} from bundles order by seq")]
            total = sum(r.size for r in rows)
            doomed: list[Row] = []
            for r in rows:
                if (before and r.time < before) or (max_bytes is not None and total > max_bytes):
                    doomed.append(r)
                    total -= r.size
                else:
                    break  # only ever the oldest prefix: the survivors stay one unbroken chain
            if not doomed:
                return result
            last = doomed[-1]
            self._db.execute("begin immediate")
            self._db.execute("insert or replace into meta (key, value) values ('anchor', ?)",
                             (f"{last.seq} {last.hash}",))
            self._db.execute("delete from bundles where seq <= ?", (last.seq,))
            self._db.execute("commit")
            for r in doomed:
                with contextlib.suppress(FileNotFoundError):
                    self.path(r.id).unlink()
            result = PruneResult(len(doomed), sum(r.size for r in doomed), (last.seq, last.hash),
                                 [r.id for r in doomed])
        return result

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)
        self._fsyncs.shutdown(wait=False)


def _to_sql(r: Row) -> tuple[Any, ...]:
    return (r.seq, r.id, r.time, r.client, r.severity, r.action, r.kept, r.model,
            "\n".join(r.rules), "\n".join(r.vectors), "\n".join(r.sources), r.hash, r.prev_hash, r.size)


def _from_sql(raw: tuple[Any, ...]) -> Row:
    def split(v: Any) -> tuple[str, ...]:
        return tuple(x for x in str(v or "").split("\n") if x)

    return Row(int(raw[0]), str(raw[1]), str(raw[2]), str(raw[3] or ""), raw[4], str(raw[5] or ""),
               str(raw[6] or ""), str(raw[7] or ""), split(raw[8]), split(raw[9]), split(raw[10]),
               str(raw[11]), str(raw[12]), int(raw[13]))
