"""Prints the growth table of the complexity suite (path, what grows, ratio at 4x and 16x)."""

from __future__ import annotations

import pytest
from complexity.growth import TABLE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    terminalreporter.section("work growth (CPU time ratio; linear is 4x / 16x)")
    terminalreporter.write_line(f"{'path':<44} {'grows':<18} {'1x s':>8} {'4x':>6} {'16x':>6}")
    for g in TABLE:
        terminalreporter.write_line(
            f"{g.path:<44} {g.grows:<18} {g.seconds[0]:>8.4f} {g.ratios[1]:>6.1f} {g.ratios[2]:>6.1f}"
        )
