"""`guardproxy demo` runs end to end and shows each scripted request's outcome."""

from __future__ import annotations

from rich.console import Console

from proxy.demo import run_demo


def test_demo_runs_every_scripted_request_and_exits_zero() -> None:
    console = Console(record=True, width=600)  # wide enough that no cell wraps
    assert run_demo(console) == 0
    out = console.export_text()
    for name in ("benign chat", "streaming chat", "direct injection", "indirect injection", "quiet indirect"):
        assert name in out
    assert "Simulated answer to: What is the capital of France?" in out
    assert "injection.override.ignore_previous" in out  # detection tags the direct attempt
    assert "[guardproxy] A tool call was withheld" in out  # scopes stop what detection let through
    assert "send_email({" not in out, "no injected tool call reaches the client"
    assert "guardproxy demo" in out
