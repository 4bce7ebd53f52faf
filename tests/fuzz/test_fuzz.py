"""Runs the atheris fuzz target for a bounded time (FUZZ_SECONDS, default 20) and expects no crash."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytest.importorskip("atheris", reason="atheris wheels exist for Linux x86_64 only")


# The fuzzing itself is bounded by FUZZ_SECONDS; instrumenting the imports first takes minutes on a
# busy machine, so the test bound leaves room for that.
@pytest.mark.timeout(int(os.environ.get("FUZZ_SECONDS", "20")) + 600)
def test_fuzz_target_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "corpus", corpus)  # libFuzzer adds inputs to it; keep the repo clean
    seconds = int(os.environ.get("FUZZ_SECONDS", "20"))
    result = subprocess.run(
        [sys.executable, str(HERE / "fuzz_inputs.py"), f"-max_total_time={seconds}", "-rss_limit_mb=2048",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=seconds + 540, cwd=tmp_path,
    )
    done = re.search(r"Done (\d+) runs", result.stderr)
    print(f"fuzz: {done.group(1) if done else '?'} executions in {seconds}s, exit {result.returncode}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert done and int(done.group(1)) > 1000
    assert not list(tmp_path.glob("crash-*"))
