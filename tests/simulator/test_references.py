"""`$TOOL.FIELD` references: values copied out of retrieved content, waiting until it exists."""

from __future__ import annotations

from typing import Any

from proxy.simulator.grammar import decide
from proxy.simulator.openai_api import read_transcript
from proxy.simulator.references import field_value, resolve

TOOLS = [{"type": "function", "function": {"name": n}} for n in ("read_inbox", "send_email")]


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "tools": TOOLS, "messages": list(messages)}


ASK = {"role": "user", "content": "call read_inbox, then call send_email with to=$read_inbox.from, body=ok"}
CALLED = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "read_inbox", "arguments": "{}"}}]}


def test_reference_waits_for_the_result() -> None:
    decision = decide(read_transcript(body(ASK)))
    assert [c.name for c in decision.calls] == ["read_inbox"]


def test_reference_resolves_from_a_json_result() -> None:
    result = {"role": "tool", "tool_call_id": "c1", "content": '[{"from": "alice@x.example", "body": "hi"}]'}
    decision = decide(read_transcript(body(ASK, CALLED, result)))
    assert [(c.name, c.arguments) for c in decision.calls] == [("send_email", {"to": "alice@x.example", "body": "ok"})]


def test_header_lines_resolve_too() -> None:
    assert field_value("From: bob@y.example\nSubject: s", "from") == "bob@y.example"
    assert field_value("no such field", "from") is None


def test_unresolvable_reference_gives_none() -> None:
    assert resolve({"to": "$read_inbox.cc"}, {"read_inbox": '{"from": "a"}'}) is None
    assert resolve({"to": "plain"}, {}) == {"to": "plain"}
