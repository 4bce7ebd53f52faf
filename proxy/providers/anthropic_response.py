"""A non-streamed Anthropic `message` response <-> Output.

Every call block is judged: client tools' `tool_use`, and `server_tool_use` / `mcp_tool_use`
(run on Anthropic's side: a withheld one is removed with its result block, so the client never
acts on it or on what it fetched).
"""

from __future__ import annotations

from typing import Any

from proxy.model import Output, ToolCall
from proxy.providers.anthropic_stream import arguments_json, input_tokens, stop_reason, tool_use_block, unread_blocks
from proxy.providers.jsonpath import copy_tree

CALLS = ("tool_use", "server_tool_use", "mcp_tool_use")


def parse_output(response: dict[str, Any]) -> Output:
    """Normalise a non-streamed `message` response."""
    content = [b for b in response.get("content") or () if isinstance(b, dict)]
    usage = response.get("usage") or {}
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = tuple(
        ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=arguments_json(b.get("input")), index=n,
                 kind="function" if b["type"] == "tool_use" else b["type"])
        for n, b in enumerate(b for b in content if b.get("type") in CALLS)
    )
    return Output(
        text=text,
        tool_calls=calls,
        finish_reason=response.get("stop_reason"),
        response_id=response.get("id"),
        model=response.get("model"),
        input_tokens=input_tokens(usage),
        output_tokens=usage.get("output_tokens"),
        uninspected=unread_blocks(content),
    )


def render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    """The response with its text and call blocks replaced by `output`'s.

    Other blocks (thinking, kept server tools' results) keep their places; all text collapses into
    the first text block's place, since a rewrite cannot say which block each piece came from.
    """
    response = copy_tree(response)  # a parsed JSON tree: the plain copy, not deepcopy's memo and dispatch
    original = [b for b in response.get("content") or () if isinstance(b, dict)]
    kept = {c.id for c in output.tool_calls}
    by_id = {b.get("id"): b for b in original if b.get("type") in CALLS}
    dropped = {i for i in by_id if i not in kept}
    content: list[dict[str, Any]] = []
    text_placed = False
    for block in original:
        kind = block.get("type")
        if kind == "text":
            if not text_placed and output.text:
                content.append({**block, "text": output.text})
            text_placed = True
        elif kind in CALLS:
            if kind != "tool_use" and block.get("id") in kept:
                content.append(block)  # server-side calls keep their place before their results
        elif block.get("tool_use_id") not in dropped:
            content.append(block)
    if not text_placed and output.text:
        content.insert(0, {"type": "text", "text": output.text})
    content.extend(by_id.get(c.id) or tool_use_block(c) for c in output.tool_calls if c.kind == "function")
    response["content"] = content
    response["stop_reason"] = stop_reason(_client_calls(output), response.get("stop_reason"))
    return response


def _client_calls(output: Output) -> Output:
    # stop_reason tool_use means "the client must run something": server calls do not count.
    calls = tuple(c for c in output.tool_calls if c.kind == "function")
    return output if calls == output.tool_calls else Output(text=output.text, tool_calls=calls,
                                                           finish_reason=output.finish_reason)
