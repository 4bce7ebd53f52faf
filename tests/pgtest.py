"""The real PostgreSQL server for tests: a fresh schema per test; required in CI, skipped locally
(with the reason) only when the server is unreachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

PG_DSN = os.environ.get("GUARDPROXY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN whose search_path is a new schema, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_DSN} (set GUARDPROXY_TEST_PG_DSN): {exc}")
    schema = f"gp_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"create schema {schema}")
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"drop schema {schema} cascade")
        admin.close()
