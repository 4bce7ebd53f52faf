"""Index queries the review console pages with, on both backends: action, a seq cursor, an id set,
and pages that stop at their limit with filters applied in SQL or row by row."""

from __future__ import annotations

from evidence.conftest import make_bundle

from proxy.evidence.store import MAX_SQL_IDS, Filters, Store


def test_cursor_action_and_id_filters(store: Store) -> None:
    bundles = [make_bundle(action=("block" if i % 3 == 0 else "tag")) for i in range(10)]
    store.append(bundles)
    seqs = [b["seq"] for b in bundles]
    page1 = store.rows(Filters(limit=4))
    assert [r.seq for r in page1] == seqs[::-1][:4]
    page2 = store.rows(Filters(limit=4, before_seq=page1[-1].seq))
    assert [r.seq for r in page2] == seqs[::-1][4:8]
    blocked = store.rows(Filters(action="block", limit=100))
    assert [r.seq for r in blocked] == [b["seq"] for b in bundles[::-1] if b["action"] == "block"]
    # a row-side filter (vector) with the cursor: still newest first, below the cursor, up to the limit
    indirect = store.rows(Filters(vector="indirect", before_seq=seqs[5], limit=3))
    assert [r.seq for r in indirect] == [seqs[4], seqs[3], seqs[2]]
    chosen = frozenset({bundles[1]["id"], bundles[7]["id"]})
    assert [r.id for r in store.rows(Filters(ids=chosen))] == [bundles[7]["id"], bundles[1]["id"]]
    assert store.rows(Filters(ids=frozenset())) == []


def test_a_large_id_set_is_matched_row_by_row(store: Store) -> None:
    bundles = [make_bundle() for _ in range(3)]
    store.append(bundles)
    many = frozenset({bundles[0]["id"], *(f"01ARZ3NDEKTSV4RRFFQ69G{i:04d}" for i in range(MAX_SQL_IDS))})
    assert [r.id for r in store.rows(Filters(ids=many, limit=5))] == [bundles[0]["id"]]
