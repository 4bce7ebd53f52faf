"""The house rules stay true: ruff and mypy --strict are clean on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    result = subprocess.run([str(BIN / "ruff"), "check", "proxy", "tests", "bench"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.timeout(900)  # a cold mypy run on a busy 2-core machine takes minutes
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([str(BIN / "mypy"), "proxy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
