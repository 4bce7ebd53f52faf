"""OpenAI Responses API answers <-> Output: every output item read, withheld calls written out.

Message text (output_text and refusal parts of every `message` item) is the Output's text, for the
output guards; `function_call`, `custom_tool_call` and `mcp_approval_request` items are its tool
calls, for tool scopes and argument provenance (a custom tool's free-form input is judged as
`{"input": ...}`, an approval request as a call of `mcp:<server_label>`), and so are the calls of
built-in tools the client runs: `local_shell_call`, `shell_call`, `apply_patch_call`, `computer_call`
(as calls of `local_shell`, `shell`, `apply_patch`, `computer`, their action as arguments). Items a hosted
tool produced at the provider (`web_search_call`, `file_search_call`, `mcp_call`,
`code_interpreter_call`...) are not calls the client makes; they are returned by `hosted_results`
so the response state can label them untrusted for the next turn.

`render_output` rewrites a response after a guard transformed its Output: withheld calls' items
are removed, a notice becomes its own `message` item, rewritten text replaces the message text, so
the client still receives a valid `response` object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from proxy.model import Output, ToolCall, Uninspected

# Calls of built-in tools the *client* runs (a shell command, a patch, a mouse click): judged like
# function calls, as calls of the tool's policy name with the action as their arguments.
CLIENT_RUN = {"local_shell_call": "local_shell", "shell_call": "shell", "apply_patch_call": "apply_patch",
              "computer_call": "computer"}
CALL_ITEMS = frozenset({"function_call", "custom_tool_call", "mcp_approval_request", *CLIENT_RUN})
NOTICE_ID = "msg_guardproxy_notice"


def call_of(item: dict[str, Any], index: int) -> ToolCall:
    """A call item as the ToolCall the guards judge (its `call_id` is the id the client answers to)."""
    if item.get("type") == "mcp_approval_request":
        # The client is asked to approve a call a remote MCP server will then run: it is judged as a
        # call of that server's tool (`mcp:<label>`), so the key's scope and argument provenance apply.
        return ToolCall(id=str(item.get("id") or ""), name=f"mcp:{item.get('server_label')}",
                        arguments=str(item.get("arguments") or ""), index=index)
    kind = item.get("type")
    if isinstance(kind, str) and kind in CLIENT_RUN:
        action = item.get("operation") if kind == "apply_patch_call" else item.get("action")
        return ToolCall(id=str(item.get("call_id") or item.get("id") or ""), name=CLIENT_RUN[kind],
                        arguments=json.dumps(action if isinstance(action, dict) else {}), index=index)
    if item.get("type") == "custom_tool_call":
        arguments = json.dumps({"input": item.get("input") if isinstance(item.get("input"), str) else ""})
    else:
        arguments = str(item.get("arguments") or "")
    return ToolCall(id=str(item.get("call_id") or item.get("id") or ""), name=str(item.get("name") or ""),
                    arguments=arguments, index=index)


def message_text(item: dict[str, Any]) -> str:
    parts = item.get("content")
    out = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
    return "".join(out)


def _items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Output items; one whose `type` is not a string (a hostile upstream) is read as no known type."""
    output = response.get("output")
    items = [i for i in output if isinstance(i, dict)] if isinstance(output, list) else []
    return [i if isinstance(i.get("type"), str) else {**i, "type": "unknown"} for i in items]


def parse_output(response: dict[str, Any]) -> Output:
    items = _items(response)
    calls = tuple(call_of(item, n) for n, item in enumerate(i for i in items if i.get("type") in CALL_ITEMS))
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    return Output(
        text="".join(message_text(i) for i in items if i.get("type") == "message"),
        tool_calls=calls,
        finish_reason=_finish(response, bool(calls)),
        response_id=response.get("id") if isinstance(response.get("id"), str) else None,
        model=response.get("model") if isinstance(response.get("model"), str) else None,
        input_tokens=usage.get("input_tokens"),  # type: ignore[union-attr]
        output_tokens=usage.get("output_tokens"),  # type: ignore[union-attr]
        uninspected=unread_parts(items),
    )


# Item fields that carry no content a reader could be steered or leaked through.
_BOOKKEEPING = frozenset({"type", "id", "status", "role", "call_id", "container_id", "server_label",
                          "encrypted_content"})
_UNREAD_WHY = {
    "reasoning": "a reasoning summary: no output stage reads it",
    "code_interpreter_call": "code a hosted code interpreter ran and what it printed: no output stage reads them",
}


def unread_parts(items: list[dict[str, Any]]) -> tuple[Uninspected, ...]:
    """What the client gets besides message text and judged calls: each listed for the coverage ledger.

    Message parts' annotations (citation titles, URLs, file names) and every other item (a reasoning
    summary, a hosted tool's code, queries and results) go to the client as they came; the encrypted
    reasoning blob is left out: nobody can read it but the provider."""
    out: list[Uninspected] = []
    for n, item in enumerate(items):
        kind = str(item.get("type"))
        if kind == "message":
            for k, part in enumerate(p for p in item.get("content") or () if isinstance(p, dict)):
                if part.get("annotations"):
                    out.append(Uninspected(f"output.items.{n}.content.{k}.annotations",
                                           "message annotations (citation titles, URLs, files): no output stage "
                                           "reads them", _size(part["annotations"])))
        elif kind not in CALL_ITEMS:
            content = {k: v for k, v in item.items() if k not in _BOOKKEEPING and v not in (None, "", [], {})}
            if content:
                why = _UNREAD_WHY.get(kind, f"a {kind} item: no output stage reads it")
                out.append(Uninspected(f"output.items.{n}", why, _size(content)))
    return tuple(out)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


def _finish(response: dict[str, Any], calls: bool) -> str | None:
    status = response.get("status")
    if status == "completed":
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    return str(status) if isinstance(status, str) else None


def hosted_results(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Output items a provider-run tool produced: untrusted content the next turn will read."""
    return [i for i in _items(response)
            if (str(i.get("type", "")).endswith("_call") and i.get("type") not in CALL_ITEMS)
            or i.get("type") == "mcp_list_tools"]


def notice_item(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": NOTICE_ID, "status": "completed", "role": "assistant", "content": [part]}


def render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    """`response` rewritten to carry exactly `output`'s calls and text."""
    response = copy.deepcopy(response)
    kept = {c.id for c in output.tool_calls}
    items = [i for n, i in enumerate(_items(response))
             if i.get("type") not in CALL_ITEMS or call_of(i, n).id in kept]
    upstream = "".join(message_text(i) for i in items if i.get("type") == "message")
    if output.text != upstream:
        if output.text.startswith(upstream):
            items.append(notice_item(output.text[len(upstream):].lstrip("\n")))
        else:
            items = _replace_text(items, output.text)
    response["output"] = items
    if "output_text" in response:  # some servers add the SDK's convenience field
        response["output_text"] = "".join(message_text(i) for i in items if i.get("type") == "message")
    return response


def _replace_text(items: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The first message carries the whole rewritten text; other messages keep no text."""
    out, placed = [], False
    for item in items:
        if item.get("type") != "message":
            out.append(item)
            continue
        if not placed:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out.append({**item, "content": [part]})
            placed = True
    if not placed:
        out.append(notice_item(text))
    return out
