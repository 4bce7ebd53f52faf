"""The chain: any one-byte edit, reorder or gap is found and named."""

from __future__ import annotations

import json

import pytest

from proxy.evidence.chain import GENESIS, Link, canonical, content_hash, link, verify


def _links(n: int) -> list[Link]:
    bundles = [{"id": f"B{i}", "payload": "x" * 20} for i in range(n)]
    datas = link(bundles, 0, GENESIS)
    return [Link(b["seq"], b["id"], b["hash"], b["prev_hash"], d) for b, d in zip(bundles, datas, strict=True)]


def test_an_untouched_chain_verifies() -> None:
    assert list(verify(_links(5), None)) == []


def test_hash_covers_prev_hash_and_excludes_itself() -> None:
    [item] = _links(1)
    bundle = json.loads(item.data or b"")
    assert bundle["prev_hash"] == GENESIS and content_hash(bundle) == bundle["hash"]
    assert canonical(bundle) == item.data


@pytest.mark.parametrize("position", [0, 1, 10, 25, -3, -2])
def test_a_one_byte_edit_anywhere_is_named(position: int) -> None:
    links = _links(4)
    data = bytearray(links[2].data or b"")
    data[position] = ord("Z") if data[position] != ord("Z") else ord("Y")
    links[2] = Link(links[2].seq, links[2].id, links[2].hash, links[2].prev_hash, bytes(data))
    problems = list(verify(links, None))
    assert problems and problems[0].id == "B2"


def test_a_dropped_bundle_breaks_the_next_link() -> None:
    links = _links(4)
    del links[1]
    problems = list(verify(links, None))
    assert problems[0].id == "B2" and "gap" in problems[0].message


def test_an_anchor_lets_a_pruned_chain_verify() -> None:
    links = _links(4)
    assert list(verify(links[2:], (links[1].seq, links[1].hash))) == []
    assert list(verify(links[2:], None))  # without the anchor it does not
