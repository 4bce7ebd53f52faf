"""Signed checkpoints: the evidence chain's head, anchored outside the store.

The chain proves that bundles were not changed *relative to each other*; someone with write access
to the store can still delete the newest bundles, re-hash the whole chain or cut its head behind a
forged retention anchor, and the chain alone stays consistent. A checkpoint is the head's seq and
hash signed with an Ed25519 key the proxy holds (PyNaCl); reviewers hold the public key. The proxy
writes one periodically and at shutdown to places apart from the store (a file elsewhere, a
PostgreSQL table, a log line a log pipeline keeps), and `guardproxy evidence verify --checkpoint`
fails, naming the reason, when the store does not extend a checkpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from proxy.errors import ConfigError
from proxy.evidence.chain import Link, verify
from proxy.evidence.seal import fingerprint, read_key
from proxy.evidence.store import Store

log = logging.getLogger("guardproxy.evidence.checkpoint")
FORMAT = "guardproxy.evidence-checkpoint/1"
ALGORITHM = "ed25519"


def generate_keypair(private_file: Path, public_file: Path) -> str:
    """A new signing key pair (private file owner-only); returns the public key's fingerprint."""
    key = SigningKey.generate()
    private_file.write_text(base64.b64encode(bytes(key)).decode() + "\n", encoding="ascii")
    private_file.chmod(0o600)
    public_file.write_text(base64.b64encode(bytes(key.verify_key)).decode() + "\n", encoding="ascii")
    return fingerprint(bytes(key.verify_key))


def signing_key(path: Path) -> SigningKey:
    return SigningKey(read_key(path, "checkpoint signing key"))


def verify_key(path: Path) -> VerifyKey:
    return VerifyKey(read_key(path, "checkpoint public key"))


def _signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def make(store: Store, key: SigningKey, now: datetime | None = None) -> dict[str, Any]:
    """A signed checkpoint over the store's current head (and its retention anchor, if any)."""
    seq, head_hash = store.head()
    anchor = store.anchor()
    checkpoint: dict[str, Any] = {
        "format": FORMAT,
        "store": store.location,
        "seq": seq,
        "hash": head_hash,
        "anchor": list(anchor) if anchor else None,
        "time": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "algorithm": ALGORITHM,
        "key": fingerprint(bytes(key.verify_key)),
    }
    checkpoint["signature"] = base64.b64encode(key.sign(_signed_bytes(checkpoint)).signature).decode()
    return checkpoint


def load(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"checkpoint {path}: not readable JSON ({exc})") from exc
    if not isinstance(loaded, dict) or loaded.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path}: not a {FORMAT} document")
    return loaded


def signature_problem(checkpoint: dict[str, Any], key: VerifyKey) -> str | None:
    """Why the checkpoint is not one this public key signed, or None."""
    if checkpoint.get("key") != fingerprint(bytes(key)):
        return (f"checkpoint was signed by key {checkpoint.get('key')}, "
                f"not by this public key ({fingerprint(bytes(key))})")
    try:
        key.verify(_signed_bytes(checkpoint), base64.b64decode(str(checkpoint.get("signature", ""))))
    except (BadSignatureError, ValueError):
        return "checkpoint signature does not verify: the checkpoint was altered or forged"
    return None


@dataclass(frozen=True, slots=True)
class Extension:
    """The result of checking a store against a checkpoint."""

    ok: bool
    reason: str
    bundles: int = 0


def extends(store: Store, checkpoint: dict[str, Any]) -> Extension:
    """Does the store's chain (intact) still hold the checkpointed head, and reach at least as far?"""
    seq, signed_hash = int(checkpoint["seq"]), str(checkpoint["hash"])
    anchor = store.anchor()
    walk = _Walk(store, seq, anchor[0] if anchor else 0)
    broken = next(iter(verify(walk.links(), anchor)), None)
    if broken is not None:
        return Extension(False, f"the chain itself is broken at seq {broken.seq} ({broken.message})", walk.count)
    if anchor is not None and seq > 0 and anchor[0] >= seq:
        # Retention never needs to remove the newest bundle: checkpoints come every minute, and a
        # forged anchor at (or past) the signed head is how a cut head is hidden from the chain.
        return Extension(False, f"the store no longer holds the checkpointed head: its retention anchor "
                                f"(seq {anchor[0]}) is at or past the checkpoint's seq {seq}; a head cut behind "
                                "a forged anchor looks like this (a newer checkpoint is needed after a real prune)",
                         walk.count)
    found = walk.at
    if seq > 0 and found is None:
        if walk.head < seq:
            return Extension(False, f"the store ends at seq {walk.head}, before the checkpoint's seq {seq}: "
                                    f"{seq - walk.head} bundle(s) were removed from the tail (truncated)", walk.count)
        return Extension(False, f"bundle seq {seq} is missing from the store", walk.count)
    if seq > 0 and found != signed_hash:
        return Extension(False, f"bundle seq {seq} has hash {found}, but the checkpoint signed {signed_hash}: "
                                "the chain was rewritten and re-hashed (or its anchor forged)", walk.count)
    return Extension(True, f"the store extends the checkpoint (seq {seq}) to seq {walk.head}", walk.count)


class _Walk:
    """The store's links, noting on the way how many there are, the head, and the checkpointed hash."""

    def __init__(self, store: Store, seq: int, start: int) -> None:
        self.store, self.seq = store, seq
        self.count, self.head = 0, start
        self.at: str | None = None

    def links(self) -> Iterator[Link]:
        for item in self.store.links():
            self.count += 1
            self.head = item.seq
            if item.seq == self.seq:
                self.at = item.hash
            yield item


def write_file(path: Path, checkpoint: dict[str, Any]) -> None:
    """The newest checkpoint, replaced atomically (a reader never sees half a file)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(checkpoint, indent=2) + "\n", encoding="utf-8")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Checkpointer:
    """Signs the store's head every `interval_s` and once more at shutdown, and hands each
    checkpoint to every sink: the file, the PostgreSQL table, the log (where a pipeline keeps it)."""

    def __init__(self, key: SigningKey, *, out_file: Path | None = None, dsn: str | None = None,
                 interval_s: float = 60.0) -> None:
        self.key = key
        self.out_file = out_file
        self.dsn = dsn
        self.interval_s = interval_s
        self.last: dict[str, Any] | None = None
        # The periodic checkpoint may still be running in its thread when the shutdown one starts.
        self._lock = threading.Lock()

    def take(self, store: Store) -> dict[str, Any]:
        """One checkpoint now, written to every sink (blocking: call it off the event loop)."""
        with self._lock:
            return self._take(store)

    def _take(self, store: Store) -> dict[str, Any]:
        checkpoint = make(store, self.key)
        if self.last is not None and (self.last["seq"], self.last["hash"]) == (checkpoint["seq"], checkpoint["hash"]):
            return self.last  # nothing new since the last one: no rewrite, no new row
        if self.out_file is not None:
            write_file(self.out_file, checkpoint)
        if self.dsn is not None:
            _insert(self.dsn, checkpoint)
        log.info("evidence checkpoint %s", json.dumps(checkpoint, sort_keys=True))
        self.last = checkpoint
        return checkpoint


_TABLE = """create table if not exists guardproxy_evidence_checkpoints (
    id bigserial primary key, at timestamptz not null default now(), store text not null,
    seq bigint not null, hash text not null, body jsonb not null)"""


def _insert(dsn: str, checkpoint: dict[str, Any]) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as db:
        db.execute(_TABLE)
        db.execute("insert into guardproxy_evidence_checkpoints (store, seq, hash, body) values (%s, %s, %s, %s)",
                   (checkpoint["store"], checkpoint["seq"], checkpoint["hash"], json.dumps(checkpoint)))


def latest_from_postgres(dsn: str, store: str | None = None) -> dict[str, Any] | None:
    """The newest checkpoint kept in PostgreSQL (for a store, if given)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as db:
        where, args = ("where store = %s", (store,)) if store else ("", ())
        try:
            row = db.execute(f"select body from guardproxy_evidence_checkpoints {where} order by id desc limit 1",
                             args).fetchone()
        except psycopg.errors.UndefinedTable:
            return None  # no checkpoint was ever written there
    if row is None:
        return None
    body = row[0]
    loaded: dict[str, Any] = body if isinstance(body, dict) else json.loads(body)
    return loaded
