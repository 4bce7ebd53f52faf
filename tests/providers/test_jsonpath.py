"""jsonpath: the rewritten body is copied where it is written, so the client's parsed body is never changed."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from proxy.guards.segregation import SegregationGuard
from proxy.model import Exchange, Phase
from proxy.providers import anthropic_messages, jsonpath, openai_chat


def _containers(value: object) -> list[object]:
    out: list[object] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            out.append(item)
            stack.extend(item)
    return out


def test_copy_tree_equals_deepcopy_and_shares_no_container() -> None:
    body = json.loads('{"a": [1, 2.5, {"b": null, "c": [true, "x", []]}], "d": {"e": {}}, "f": "s"}')
    copied = jsonpath.copy_tree(body)
    assert copied == copy.deepcopy(body)
    originals = {id(c) for c in _containers(body)}
    assert not originals & {id(c) for c in _containers(copied)}


def test_a_rewrite_leaves_the_client_body_as_received() -> None:
    raw = {"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "tool", "tool_call_id": "c1", "content": "retrieved text"},
    ]}
    before = copy.deepcopy(raw)
    conv = openai_chat.parse(raw)
    tool = next(s for s in conv.segments if s.role == "tool")
    out = openai_chat.render(conv.with_text(tool.index, "[withheld]"))
    assert out["messages"][1]["content"] == "[withheld]"
    assert raw == before  # evidence and provenance read the body as the client sent it
    out["messages"][0]["content"] = "changed"
    assert raw == before


def _deep_bodies() -> list[tuple[Any, dict[str, Any]]]:
    """Bodies whose rewrites go deep (content parts, tool results) and whose writers insert."""
    chat = {"model": "m", "tools": [{"type": "function", "function": {"name": "send", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "send"}},
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": 'Hi <untrusted source="s">doc</untrusted>'}]},
                {"role": "user", "content": [{"type": "text", "text": 'a <untrusted source="u">b</untrusted> c'}]},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "send", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "retrieved text"},
            ]}
    messages = {"model": "m", "max_tokens": 9, "tools": [{"name": "send", "input_schema": {"type": "object"}}],
                "system": [{"type": "text", "text": 'Op <untrusted source="s">doc</untrusted>'}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "go"}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "send", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                        {"type": "text", "text": "mail body"}]}]},
                ]}
    return [(openai_chat, chat), (anthropic_messages, messages)]


@pytest.mark.parametrize("case", range(2))
def test_a_deep_rewrite_with_inserts_and_dropped_tools_leaves_the_client_body_as_received(case: int) -> None:
    adapter, raw = _deep_bodies()[case]
    before = json.dumps(raw)
    conv = adapter.parse(raw)
    exchange = Exchange("r", conv)
    moved = asyncio.run(SegregationGuard().inspect(exchange, Phase.INPUT)).conversation
    assert moved is not None
    out = adapter.render(moved.with_tools(()))  # every text wrapped, a notice added, tools gone
    assert json.dumps(raw) == before
    assert "<<<DATA" in json.dumps(out) and "tools" not in out
    # The rewritten body shares no container with the client's along any rewritten path.
    originals = {id(c) for c in _containers(raw)}
    changed = [path for path, _ in jsonpath.text_changes(moved)]
    assert changed
    for path in changed:
        node: Any = out
        for key in path[:-1]:
            node = node[key]
            assert id(node) not in originals, path
    for container in _containers(out):  # and nothing a writer may change in place
        if container is out or any(container is v for v in out.values()):
            assert id(container) not in originals
