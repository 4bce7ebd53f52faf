"""The hash chain over evidence bundles: canonical bytes, content hashes, and verification.

A bundle's `hash` is SHA-256 over its canonical JSON without the `hash` key; it covers
`prev_hash`, so changing, dropping or reordering any bundle breaks every later link. A bundle is
stored as exactly its canonical bytes, so even a whitespace edit is caught. Retention removes the
oldest bundles and leaves an anchor (the last removed seq and hash) the first survivor must link to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "sha256:" + "0" * 64


def canonical(bundle: dict[str, Any]) -> bytes:
    """The bytes a bundle is hashed and stored as (sorted keys, no spaces, ASCII, one newline)."""
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def content_hash(bundle: dict[str, Any]) -> str:
    body = {k: v for k, v in bundle.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def link(bundles: list[dict[str, Any]], head_seq: int, head_hash: str) -> list[bytes]:
    """Give each bundle its seq, prev_hash and hash after (head_seq, head_hash); return the bytes."""
    out = []
    for bundle in bundles:
        head_seq += 1
        bundle["seq"], bundle["prev_hash"] = head_seq, head_hash
        bundle.pop("hash", None)
        bundle["hash"] = head_hash = content_hash(bundle)
        out.append(canonical(bundle))
    return out


@dataclass(frozen=True, slots=True)
class Link:
    """What the index says about one bundle, and the stored bytes (None when missing)."""

    seq: int
    id: str
    hash: str
    prev_hash: str
    data: bytes | None


@dataclass(frozen=True, slots=True)
class Problem:
    id: str
    seq: int
    message: str


def verify(links: Iterable[Link], anchor: tuple[int, str] | None) -> Iterator[Problem]:
    """Every broken link, in chain order; the first one is where trust ends."""
    prev_seq, prev_hash = anchor if anchor is not None else (0, GENESIS)
    for item in links:
        yield from _check(item, prev_seq, prev_hash)
        prev_seq, prev_hash = item.seq, item.hash


def _check(item: Link, prev_seq: int, prev_hash: str) -> Iterator[Problem]:
    def problem(message: str) -> Problem:
        return Problem(item.id, item.seq, message)

    if item.seq != prev_seq + 1:
        yield problem(f"sequence gap: expected seq {prev_seq + 1}, found {item.seq} (bundles missing)")
    if item.prev_hash != prev_hash:
        yield problem("index prev_hash does not match the previous bundle's hash")
    if item.data is None:
        yield problem("bundle file is missing")
        return
    try:
        bundle = json.loads(item.data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        yield problem("bundle is not valid JSON (edited or truncated)")
        return
    if not isinstance(bundle, dict):
        yield problem("bundle is not a JSON object")
        return
    if canonical(bundle) != item.data:
        yield problem("bundle bytes are not canonical (edited)")
    if content_hash(bundle) != bundle.get("hash"):
        yield problem("content hash mismatch (bundle edited)")
    if bundle.get("hash") != item.hash:
        yield problem("bundle hash differs from the index")
    if bundle.get("prev_hash") != prev_hash:
        yield problem("bundle prev_hash does not link to the previous bundle")
    if bundle.get("id") != item.id or bundle.get("seq") != item.seq:
        yield problem("bundle id/seq differ from the index")
