"""`guardproxy mcp demo` shows each behaviour and says every check held."""

from __future__ import annotations

import pytest

from proxy.mcp.demo import run_demo


def test_demo_runs_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo() == 0
    out = capsys.readouterr().out
    assert "findings: injection.indirect.ignore_content" in out
    assert "refused: tool 'files.send_report' refused by client 'agent'" in out
    assert "a read-only key lists tools\n   read_file\n" in out
    assert "tools now listed: write_file, send_report, summarise_file" in out
    assert out.rstrip().endswith("7/7 checks as expected")
