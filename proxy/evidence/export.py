"""Exports: chosen bundles plus a manifest of their hashes in one zip that verifies offline.

The manifest lists each bundle's file SHA-256, its own content hash and its chain links; a
reviewer without the store (or without guardproxy: any sha256 tool and the README's canonical
JSON rule) can check that nothing was altered in transit.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError
from proxy.evidence.chain import content_hash, sha256
from proxy.evidence.checkpoint import load as load_checkpoint
from proxy.evidence.checkpoint import signature_problem, verify_key
from proxy.evidence.store import Store

FORMAT = "guardproxy.evidence-export/1"


class ExportError(Exception):
    """An id the store does not hold, or a file that is not an export."""


def write_export(store: Store, ids: list[str], out_file: Path, checkpoint: Path | None = None) -> int:
    """The zip; with `checkpoint`, the latest signed checkpoint rides along (checkpoint.json), so a
    reviewer can tell the bundles' chain positions against a head signed outside the store."""
    manifest: dict[str, Any] = {"format": FORMAT, "store": store.location,
                                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "bundles": []}
    datas = {}
    for evidence_id in ids:
        data = store.get(evidence_id)
        if data is None:
            raise ExportError(f"no bundle {evidence_id} in {store.location}")
        datas[evidence_id] = data
    with zipfile.ZipFile(out_file, "w", zipfile.ZIP_DEFLATED) as z:
        for evidence_id, data in datas.items():
            b = json.loads(data)
            z.writestr(f"bundles/{evidence_id}.json", data)
            manifest["bundles"].append({"id": evidence_id, "file": f"bundles/{evidence_id}.json",
                                        "file_sha256": sha256(data), "hash": b["hash"],
                                        "prev_hash": b["prev_hash"], "seq": b["seq"]})
        if checkpoint is not None:
            try:
                z.writestr("checkpoint.json", json.dumps(load_checkpoint(checkpoint), indent=2) + "\n")
            except ConfigError as exc:
                raise ExportError(exc.message) from exc
        z.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
    return len(datas)


def check_export(path: Path, public_key: Path | None = None) -> tuple[int, list[str]]:
    """(bundles listed, problems); ExportError when the file is not an export at all. With the
    signer's public key, the carried checkpoint must verify (and agree with a bundle at its seq)."""
    problems = []
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
            names = set(z.namelist())
            if public_key is not None:
                problems += _checkpoint_problems(z, names, manifest, public_key)
            for entry in manifest["bundles"]:
                if entry["file"] not in names:
                    problems.append(f"{entry['id']}: listed in the manifest, missing from the export")
                    continue
                data = z.read(entry["file"])
                b = json.loads(data)
                if not (sha256(data) == entry["file_sha256"] and content_hash(b) == b.get("hash") == entry["hash"]):
                    problems.append(f"{entry['id']}: file or content hash does not match the manifest")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExportError(f"{path}: not an evidence export ({exc})") from exc
    return len(manifest["bundles"]), problems


def _checkpoint_problems(z: zipfile.ZipFile, names: set[str], manifest: dict[str, Any], public_key: Path) -> list[str]:
    if "checkpoint.json" not in names:
        return ["the export carries no checkpoint"]
    checkpoint = json.loads(z.read("checkpoint.json"))
    try:
        problem = signature_problem(checkpoint, verify_key(public_key))
    except ConfigError as exc:
        raise ExportError(exc.message) from exc
    if problem is not None:
        return [problem]
    return [f"{e['id']}: seq {e['seq']} has hash {e['hash']}, the checkpoint signed {checkpoint['hash']}"
            for e in manifest["bundles"] if e["seq"] == checkpoint["seq"] and e["hash"] != checkpoint["hash"]]
