"""Evidence fixtures: a store per backend (files always; PostgreSQL on the real server), bundles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pgtest import fresh_schema

from proxy.evidence.bundle import new_id
from proxy.evidence.store import Store, open_store


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_schema() as dsn:
        yield dsn


@pytest.fixture(params=["files", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "files":
        return str(tmp_path / "evidence")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
def store(location: str) -> Iterator[Store]:
    s = open_store(location)
    yield s
    s.close()


def make_bundle(**fields: Any) -> dict[str, Any]:
    """A minimal bundle with what the index reads; tests override fields."""
    bundle: dict[str, Any] = {
        "schema": "guardproxy.evidence/1",
        "id": new_id(),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "client": "acme",
        "model": "sim",
        "action": "tag",
        "kept": {"reason": "flagged", "sample_rate": 0.0},
        "segments": [{"index": 0, "trust": "untrusted", "text": "page",
                      "provenance": {"kind": "tool_result", "source": "https://wiki/x", "tool_call_id": "c1"}}],
        "findings": [{"rule_id": "injection.override.ignore_previous", "severity": "high",
                      "vector": "indirect", "segment_index": 0}],
    }
    bundle.update(fields)
    return bundle
