"""Both stores (files + SQLite, PostgreSQL) behave the same: one chain, index, labels, retention."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from evidence.conftest import make_bundle

from proxy.evidence.chain import GENESIS, verify
from proxy.evidence.store import Filters, Label, Store, open_store
from proxy.evidence.store_files import FileStore


def _problems(store: Store) -> list[str]:
    return [f"{p.id}: {p.message}" for p in verify(store.links(), store.anchor())]


def test_append_links_bundles_into_one_chain_that_verifies(store: Store) -> None:
    first = store.append([make_bundle(), make_bundle()])
    second = store.append([make_bundle()])
    assert [r.seq for r in first + second] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS
    assert first[1].prev_hash == first[0].hash and second[0].prev_hash == first[1].hash
    assert _problems(store) == []


def test_get_returns_the_exact_canonical_bytes(store: Store) -> None:
    bundle = make_bundle()
    [row] = store.append([bundle])
    data = store.get(row.id)
    assert data is not None and data.endswith(b"\n") and b'"hash":"' + row.hash.encode() in data
    assert store.get("01ZZZZZZZZZZZZZZZZZZZZZZZZ") is None


def test_rows_filter_by_client_severity_rule_vector_source_and_time(store: Store) -> None:
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="milliseconds")
    store.append([
        make_bundle(client="acme"),
        make_bundle(client="other", time=old, findings=[
            {"rule_id": "pii.email_address", "severity": "low", "vector": "direct", "segment_index": 0}]),
        make_bundle(client="acme", findings=[], kept={"reason": "sampled", "sample_rate": 0.1}),
    ])
    assert [r.client for r in store.rows(Filters(client="other"))] == ["other"]
    assert len(store.rows(Filters(severity="high"))) == 1
    assert len(store.rows(Filters(rule="injection."))) == 1
    assert len(store.rows(Filters(rule="pii.email_address"))) == 1
    assert len(store.rows(Filters(vector="direct"))) == 1
    assert len(store.rows(Filters(source="wiki/x"))) == 3
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert len(store.rows(Filters(since=since))) == 2
    assert [r.seq for r in store.rows()] == [3, 2, 1]  # newest first


def test_labels_live_beside_the_bundle_and_leave_it_unchanged(store: Store) -> None:
    [row] = store.append([make_bundle()])
    before = store.get(row.id)
    store.label(Label(row.id, "false_positive", "wiki quote", "ana", "2026-01-01T00:00:00+00:00"))
    store.label(Label(row.id, "true_positive", "on second look", "ana", "2026-01-02T00:00:00+00:00"))
    assert store.labels()[row.id].verdict == "true_positive"
    assert store.get(row.id) == before
    assert _problems(store) == []


def test_retention_by_age_drops_the_oldest_and_the_rest_still_verifies(store: Store) -> None:
    old = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="milliseconds")
    store.append([make_bundle(time=old), make_bundle(time=old), make_bundle(), make_bundle()])
    cutoff = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    result = store.prune(cutoff, None)
    assert result.removed == 2 and result.anchor is not None and result.anchor[0] == 2
    assert [link.seq for link in store.links()] == [3, 4]
    assert _problems(store) == []
    store.append([make_bundle()])  # the chain continues past the anchor
    assert _problems(store) == []


def test_retention_by_size_keeps_the_newest_within_budget(store: Store) -> None:
    rows = store.append([make_bundle() for _ in range(6)])
    budget = sum(r.size for r in rows[-2:])
    result = store.prune(None, budget)
    assert result.removed == 4
    assert [link.seq for link in store.links()] == [5, 6]
    assert _problems(store) == []


def test_a_bundle_missing_from_the_middle_is_named(store: Store, location: str) -> None:
    rows = store.append([make_bundle() for _ in range(3)])
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("delete from guardproxy_evidence where seq = 2")
    else:
        assert isinstance(store, FileStore)
        store.path(rows[1].id).unlink()
    problems = list(verify(store.links(), store.anchor()))
    assert problems and problems[0].seq in (2, 3)


WORKER = """
import sys
from datetime import UTC, datetime
from proxy.evidence.bundle import new_id
from proxy.evidence.store import open_store

store = open_store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    now = datetime.now(UTC).isoformat()
    store.append([{"id": new_id(), "time": now, "findings": [], "segments": []} for _ in range(2)])
store.close()
"""


def test_two_worker_processes_writing_at_once_keep_one_valid_chain(location: str) -> None:
    open_store(location).close()  # create the schema before the race
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, location, "40"]) for _ in range(2)]
    assert [w.wait(60) for w in workers] == [0, 0]
    store = open_store(location)
    try:
        seqs = [link.seq for link in store.links()]
        assert seqs == list(range(1, 161))
        assert _problems(store) == []
    finally:
        store.close()
