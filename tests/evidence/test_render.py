"""`evidence show` prints what a bundle holds as written: client-controlled fields carrying rich markup
(a model name, a client name, reasons) are shown literally, never interpreted."""

from __future__ import annotations

import io

from rich.console import Console

from proxy.evidence.render import print_bundle

MARKUP = "[bold red]x[/bold red][link=javascript:alert(1)]click[/link]"


def test_markup_in_client_controlled_fields_is_printed_literally() -> None:
    bundle = {
        "id": "ev_1", "seq": 1, "time": "2026-12-04T00:00:00Z", "kept": {"reason": "flagged"},
        "request_id": "req", "trace_id": None, "client": MARKUP, "api": "openai.chat", "model": MARKUP,
        "stream": False, "action": "tag", "segments": [], "findings": [],
        "output": {"text": MARKUP, "tool_calls": [{"name": MARKUP, "arguments": MARKUP, "withheld": True}]},
        "decisions": [{"stage": "tool_scope", "action": "block", "severity": None, "reasons": [MARKUP],
                       "tools_removed": [MARKUP], "calls_blocked": []}],
        "blast_radius": {"tools": [MARKUP]}, "timings": {"upstream_ms": 1.0}, "versions": {"policy": MARKUP},
    }
    out = io.StringIO()
    print_bundle(Console(file=out, width=400, color_system=None), bundle)
    text = out.getvalue()
    header = text.splitlines()[1]
    assert f"client {MARKUP}" in header and f"openai.chat/{MARKUP}" in header
    assert text.count(MARKUP) >= 8  # client, model, text, name, arguments, reason, removed, policy
