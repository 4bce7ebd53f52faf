"""Signed checkpoints anchor the chain outside the store: a truncated tail, a re-hashed chain and a
head cut behind a forged retention anchor all fail `verify --checkpoint`, naming the reason, on
both backends; an intact store that grew since passes."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest
from evidence.conftest import make_bundle
from pgtest import fresh_schema
from typer.testing import CliRunner

from proxy.cli import app
from proxy.errors import ConfigError
from proxy.evidence import checkpoint as cp
from proxy.evidence.export import write_export
from proxy.evidence.recorder import EvidenceRecorder, _checkpointer
from proxy.evidence.store import Store, open_store
from proxy.settings import load_settings

runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "cp.key", tmp_path / "cp.pub"
    cp.generate_keypair(private, public)
    return private, public


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evidence", *args])
    return result.exit_code, result.output


def filled(store: Store, n: int = 5) -> list[str]:
    return [row.id for row in store.append([make_bundle() for _ in range(n)])]


def checkpointed(location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "elsewhere" / "checkpoint.json"
    out.parent.mkdir(exist_ok=True)
    code, text = cli("checkpoint", "--store", location, "--key", str(keys[0]), "--out", str(out))
    assert code == 0, text
    assert json.loads(out.read_text())["seq"] == store.head()[0]
    return out


def verify(location: str, checkpoint: Path, public: Path) -> tuple[int, str]:
    return cli("verify", "--store", location, "--checkpoint", str(checkpoint), "--public-key", str(public))


# Tampering as someone with write access to the store would do it, per backend.

def delete_after(location: str, seq: int) -> None:
    if "://" in location:
        with psycopg.connect(location, autocommit=True) as db:
            db.execute("delete from guardproxy_evidence where seq > %s", (seq,))
        return
    root = Path(location)
    with sqlite3.connect(root / "index.sqlite") as db:
        ids = [r[0] for r in db.execute("select id from bundles where seq > ?", (seq,))]
        db.execute("delete from bundles where seq > ?", (seq,))
    for evidence_id in ids:
        for f in root.rglob(f"{evidence_id}.json"):
            f.unlink()


def set_anchor(location: str, seq: int, hash_: str) -> None:
    value = f"{seq} {hash_}"
    if "://" in location:
        with psycopg.connect(location, autocommit=True) as db:
            db.execute("insert into guardproxy_evidence_meta (key, value) values ('anchor', %s) "
                       "on conflict (key) do update set value = excluded.value", (value,))
        return
    with sqlite3.connect(Path(location) / "index.sqlite") as db:
        db.execute("insert or replace into meta (key, value) values ('anchor', ?)", (value,))


def wipe(location: str) -> None:
    if "://" in location:
        with psycopg.connect(location, autocommit=True) as db:
            db.execute("delete from guardproxy_evidence")
            db.execute("delete from guardproxy_evidence_meta")
        return
    shutil.rmtree(location)


def test_an_intact_store_that_grew_extends_its_checkpoint(
    location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    filled(store)
    checkpoint = checkpointed(location, store, keys, tmp_path)
    filled(store, 3)
    code, text = verify(location, checkpoint, keys[1])
    assert code == 0, text
    assert "extends the checkpoint (seq 5) to seq 8" in text


def test_a_truncated_tail_fails_naming_it(location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path) -> None:
    filled(store)
    checkpoint = checkpointed(location, store, keys, tmp_path)
    delete_after(location, 3)
    assert cli("verify", "--store", location)[0] == 0  # the chain alone cannot tell
    code, text = verify(location, checkpoint, keys[1])
    assert code == 1
    assert "ends at seq 3, before the checkpoint's seq 5" in text and "truncated" in text


def test_a_rehashed_chain_fails_naming_it(location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path) -> None:
    filled(store)
    checkpoint = checkpointed(location, store, keys, tmp_path)
    store.close()
    wipe(location)
    rewritten = open_store(location)
    rewritten.append([make_bundle(client="someone-else") for _ in range(6)])  # relinked from genesis
    rewritten.close()
    assert cli("verify", "--store", location)[0] == 0  # consistent, as far as the chain can see
    code, text = verify(location, checkpoint, keys[1])
    assert code == 1
    assert "bundle seq 5 has hash" in text and "re-hashed" in text


@pytest.mark.parametrize("cut_to", [3, 5])
def test_a_head_cut_behind_a_forged_anchor_fails(
    location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path, cut_to: int
) -> None:
    filled(store)
    heads = {link.seq: link.hash for link in store.links()}
    checkpoint = checkpointed(location, store, keys, tmp_path)
    delete_after(location, 0)  # every bundle gone ...
    set_anchor(location, cut_to, heads[cut_to])  # ... and a real-looking retention anchor left
    assert cli("verify", "--store", location)[0] == 0
    code, text = verify(location, checkpoint, keys[1])
    assert code == 1
    assert "truncated" in text if cut_to < 5 else "forged anchor" in text


def test_a_forged_or_foreign_checkpoint_is_refused(
    location: str, store: Store, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    filled(store)
    checkpoint = checkpointed(location, store, keys, tmp_path)
    data = json.loads(checkpoint.read_text())
    data["seq"] = 2
    checkpoint.write_text(json.dumps(data))
    code, text = verify(location, checkpoint, keys[1])
    assert code == 1 and "signature does not verify" in text
    other_private, other_public = tmp_path / "o.key", tmp_path / "o.pub"
    cp.generate_keypair(other_private, other_public)
    code, text = verify(location, checkpointed(location, store, keys, tmp_path), other_public)
    assert code == 1 and "not by this public key" in text
    assert verify(location, checkpoint, tmp_path / "missing.pub")[0] == 2


def test_exports_carry_the_checkpoint_and_verify_it(store: Store, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ids = filled(store)
    out = tmp_path / "checkpoint.json"
    cp.write_file(out, cp.make(store, cp.signing_key(keys[0])))
    export = tmp_path / "export.zip"
    write_export(store, ids, export, out)
    code, text = cli("verify", "--export", str(export), "--public-key", str(keys[1]))
    assert code == 0, text


async def test_the_proxy_writes_checkpoints_to_a_file_postgres_and_the_log(
    tmp_path: Path, keys: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with fresh_schema() as dsn:
        settings = load_settings(None, evidence_dir=str(tmp_path / "evidence"), evidence={
            "checkpoint_key": str(keys[0]), "checkpoint_file": str(tmp_path / "cp.json"),
            "checkpoint_dsn": dsn, "checkpoint_interval_s": 3600, "redact_pii": False})
        checkpointer = _checkpointer(settings)
        assert checkpointer is not None
        recorder = EvidenceRecorder(lambda: open_store(settings.evidence_dir), checkpointer=checkpointer)
        caplog.set_level(logging.INFO, logger="guardproxy.evidence.checkpoint")
        await recorder.start()
        store = open_store(settings.evidence_dir)
        filled(store, 4)
        await recorder.close()  # the shutdown checkpoint covers what was written since start-up
        written = json.loads((tmp_path / "cp.json").read_text())
        assert written["seq"] == 4 and written["hash"] == store.head()[1]
        stored = cp.latest_from_postgres(dsn)
        assert stored == written
        assert any('"seq": 4' in r.getMessage() for r in caplog.records)
        assert cp.signature_problem(written, cp.verify_key(keys[1])) is None
        assert cp.extends(store, written).ok
        store.close()


def test_a_checkpoint_file_inside_the_store_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    settings = load_settings(None, evidence_dir=str(tmp_path / "evidence"), evidence={
        "checkpoint_key": str(keys[0]), "checkpoint_file": str(tmp_path / "evidence" / "cp.json")})
    with pytest.raises(ConfigError, match="apart from what it anchors"):
        _checkpointer(settings)
