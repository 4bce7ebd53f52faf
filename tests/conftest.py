"""Suite-wide isolation: no test writes evidence into the repository's own `evidence/`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _evidence_in_a_temp_dir() -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="guardproxy-test-evidence-") as tmp:
        previous = os.environ.get("GUARDPROXY_EVIDENCE_DIR")
        os.environ["GUARDPROXY_EVIDENCE_DIR"] = tmp
        yield
        if previous is None:
            os.environ.pop("GUARDPROXY_EVIDENCE_DIR", None)
        else:
            os.environ["GUARDPROXY_EVIDENCE_DIR"] = previous
