"""jsonpath: the rewritten body is a deep copy, so the client's parsed body is never changed."""

from __future__ import annotations

import copy
import json

from proxy.providers import jsonpath, openai_chat


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
