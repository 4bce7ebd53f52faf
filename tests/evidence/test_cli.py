"""`guardproxy evidence ...` against a real store: list, show, verify, export, report, label,
corpus, and revealing a sealed copy."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from evidence.test_bundle import KEY, PAGE, flagged_exchange
from typer.testing import CliRunner

from proxy.cli import app
from proxy.evidence.bundle import Kept, build, new_id
from proxy.evidence.recorder import protected_texts, raw_copy
from proxy.evidence.redact import BundleRedactor
from proxy.evidence.seal import Sealer, generate_keypair
from proxy.evidence.store import open_store
from proxy.evidence.store_files import FileStore
from proxy.pii.analyzer import shared_analyzer
from proxy.rules.evaluate import read_corpus

runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "reviewer.key", tmp_path / "reviewer.pub"
    generate_keypair(private, public)
    return private, public


@pytest.fixture
def store_dir(tmp_path: Path, keys: tuple[Path, Path]) -> tuple[Path, list[str]]:
    root = tmp_path / "evidence"
    store = open_store(root)
    ids = []
    for _ in range(3):
        ex = flagged_exchange()
        redactor = BundleRedactor(shared_analyzer(), protected_texts(ex))
        sealed = Sealer(keys[1]).seal(raw_copy(ex))
        bundle = build(ex, new_id(), Kept("flagged", 0.0), redactor, {"ruleset": "sha256:r", "policy": None}, sealed)
        store.append([bundle])
        ids.append(bundle["id"])
    store.close()
    return root, ids


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evidence", *args])
    return result.exit_code, result.output


def test_list_filters_and_show_renders_segments_by_trust(store_dir: tuple[Path, list[str]]) -> None:
    root, ids = store_dir
    code, out = cli("list", "--store", str(root), "--vector", "indirect", "--severity", "high")
    assert code == 0 and all(i in out for i in ids)
    code, out = cli("list", "--store", str(root), "--client", "nobody")
    assert code == 0 and ids[0] not in out
    code, out = cli("show", ids[0], "--store", str(root))
    assert code == 0
    assert out.index("trusted") < out.index("user") < out.index("untrusted")
    assert "injection.override.ignore_previous" in out and "fetch_page" in out and "WITHHELD" in out


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_one_byte_edit_to_any_bundle_makes_verify_fail_naming_it(
    store_dir: tuple[Path, list[str]], where: str
) -> None:
    root, ids = store_dir
    code, out = cli("verify", "--store", str(root))
    assert code == 0 and "OK: 3 bundle(s)" in out
    for seq, evidence_id in enumerate(ids, 1):
        path = FileStore(root).path(evidence_id)
        original = path.read_bytes()
        data = bytearray(original)
        data[{"first": 0, "middle": len(data) // 2, "last": len(data) - 2}[where]] ^= 0x01
        path.write_bytes(bytes(data))
        code, out = cli("verify", "--store", str(root))
        assert code == 1 and f"first broken link: seq {seq} {evidence_id}" in out
        path.write_bytes(original)
    assert cli("verify", "--store", str(root))[0] == 0


def test_export_verifies_offline_and_detects_tampering(store_dir: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, ids = store_dir
    out_file = tmp_path / "incident.zip"
    assert cli("export", *ids[:2], "--out", str(out_file), "--store", str(root))[0] == 0
    assert cli("verify", "--export", str(out_file))[0] == 0
    with zipfile.ZipFile(out_file) as z:
        manifest, first = z.read("manifest.json"), z.read(f"bundles/{ids[0]}.json")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as z:
        z.writestr("manifest.json", manifest)
        z.writestr(f"bundles/{ids[0]}.json", first.replace(b"fetch_page", b"fetch_pagf"))
    code, out = cli("verify", "--export", str(tampered))
    assert code == 1 and ids[0] in out


def test_report_is_prefilled_in_the_post_mortem_shape(store_dir: tuple[Path, list[str]]) -> None:
    root, ids = store_dir
    code, out = cli("report", ids[0], "--store", str(root))
    assert code == 0
    for section in ("## Surface attribution", "## Direct vs indirect", "## Blast radius",
                    "## Evidence preserved", "## Detection gap", "## Action items"):
        assert section in out
    assert "indirect prompt injection (MITRE ATLAS AML.T0051.001)" in out
    assert "tool_result `fetch_page` (tool call call_1)" in out and "- [ ]" in out


def test_labels_become_a_corpus_rules_eval_reads(store_dir: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, ids = store_dir
    assert cli("label", ids[0], "true_positive", "--note", "confirmed", "--store", str(root))[0] == 0
    assert cli("label", ids[1], "false_positive", "--store", str(root))[0] == 0
    assert cli("label", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "true_positive", "--store", str(root))[0] == 2
    corpus = tmp_path / "reviewed.jsonl"
    assert cli("corpus", "--out", str(corpus), "--store", str(root))[0] == 0
    samples = list(read_corpus(corpus))
    assert sorted((s.label, s.vector) for s in samples) == [("benign", "indirect"), ("injection", "indirect")]
    assert all("ignore previous instructions" in s.text for s in samples)
    assert cli("verify", "--store", str(root))[0] == 0  # labels never touch the chain


def test_reveal_opens_the_sealed_raw_copy_only_with_the_private_key(
    store_dir: tuple[Path, list[str]], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    root, ids = store_dir
    code, out = cli("show", ids[0], "--store", str(root))
    assert KEY not in out
    code, out = cli("show", ids[0], "--store", str(root), "--reveal", "--key", str(keys[0]))
    assert code == 0 and KEY in out and json.loads(out)["segments"][-1] == PAGE
    other_private, other_public = tmp_path / "o.key", tmp_path / "o.pub"
    generate_keypair(other_private, other_public)
    code, out = cli("show", ids[0], "--store", str(root), "--reveal", "--key", str(other_private))
    assert code == 2 and KEY not in out


def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    code, out = cli("list", "--store", str(tmp_path / "nowhere"))
    assert code == 2 and "no evidence store" in out


def test_list_prints_column_headers_and_json(store_dir: tuple[Path, list[str]]) -> None:
    root, ids = store_dir
    code, out = cli("list", "--store", str(root))
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["ID", "TIME", "CLIENT", "SEVERITY", "ACTION", "KEPT", "RULES", "SOURCES"]
    code, out = cli("list", "--store", str(root), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == list(reversed(ids))
    assert rows[0]["rules"] == ["injection.override.ignore_previous"] and rows[0]["sources"] == ["fetch_page"]
    assert rows[0]["action"] == "segregate" and rows[0]["seq"] == 3


def test_needs_rule_labels_feed_the_corpus_as_injection(store_dir: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, ids = store_dir
    assert cli("label", ids[0], "needs_rule", "--note", "missed phrasing", "--store", str(root))[0] == 0
    assert cli("label", ids[1], "false_positive", "--store", str(root))[0] == 0
    assert cli("corpus", "--out", str(tmp_path / "c.jsonl"), "--store", str(root))[0] == 0
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    by_bundle = {x["id"].split(":")[0]: x["label"] for x in lines}
    assert by_bundle == {ids[0]: "injection", ids[1]: "benign"}


def test_serve_refuses_to_start_without_a_reviewer_token(store_dir: tuple[Path, list[str]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDPROXY_REVIEW_TOKEN", raising=False)
    code, out = cli("serve", "--store", str(store_dir[0]))
    assert code == 2 and "GUARDPROXY_REVIEW_TOKEN" in out
    monkeypatch.setenv("GUARDPROXY_REVIEW_TOKEN", "short")
    code, out = cli("serve", "--store", str(store_dir[0]))
    assert code == 2 and "too short" in out
