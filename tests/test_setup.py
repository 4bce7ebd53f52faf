"""Set-up as the README gives it: the lock is a closed, hash-pinned closure installed without a resolver,
and (in CI) a clean clone builds its environment with `make venv` exactly as a new user's would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ("requirements-bootstrap.lock", "requirements.lock")


def _entries(lock: Path) -> list[str]:
    """Each requirement of a lock with its continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())
    return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", LOCKS)
def test_every_lock_entry_is_pinned_exactly_with_a_hash(name: str) -> None:
    entries = _entries(ROOT / name)
    assert entries
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9_.\-]+(\[[^\]]+\])?==[^ ;]+", entry), entry
        assert "--hash=sha256:" in entry, entry


def test_make_installs_the_pinned_installer_then_the_closure_without_resolving() -> None:
    makefile = (ROOT / "Makefile").read_text()
    bootstrap = makefile.index("-r requirements-bootstrap.lock")
    closure = makefile.index("-r requirements.lock")
    assert bootstrap < closure
    for line in makefile.splitlines():
        if "-r requirements" in line:
            assert "--no-deps" in line and "--require-hashes" in line, line
    assert "pip check" in makefile.replace("$(PIP) check", "pip check")


def test_dockerfile_installs_the_same_way() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--no-deps --require-hashes -r requirements-bootstrap.lock" in dockerfile
    assert "--no-deps --require-hashes -r requirements.lock" in dockerfile
    assert "pip check" in dockerfile


@pytest.mark.skipif(not os.environ.get("CI"), reason="builds a second environment (about a minute): CI only")
@pytest.mark.timeout(900)
def test_a_clean_clone_builds_its_environment_as_the_readme_says(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("CI must run on a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)], check=True)
    # What the README's commands run first: `make demo` and `make test` both start with this target.
    result = subprocess.run(["make", "venv"], cwd=clone, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No broken requirements found." in result.stdout
    version = subprocess.run([str(clone / ".venv/bin/guardproxy"), "--help"], capture_output=True, text=True)
    assert version.returncode == 0 and "serve" in version.stdout
