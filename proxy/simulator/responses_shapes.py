"""The Responses API's shapes for the simulator: input items -> Transcript, Reply -> output items,
the `response` object and its event stream. Pure.

Items are read the way the chat simulator reads messages: `instructions`, system / developer / user
messages are read; assistant messages are the model's own past turns (only their calls count);
`function_call` / `custom_tool_call` / `mcp_call` items are past calls; their outputs
(`function_call_output`, `custom_tool_call_output`, an `mcp_call`'s `output`) and `file_search_call`
results are tool results, named through their `call_id`. The simulator stays obedient: text found in
any of them is followed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from proxy.simulator import replies
from proxy.simulator.grammar import Call, Transcript, Turn

CREATED = replies.CREATED
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
# Item types the simulator accepts in `input` (the real API's list, minus ones it never reads).
INPUT_ITEM_TYPES = frozenset({
    "message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output",
    "reasoning", "item_reference", "web_search_call", "file_search_call", "computer_call",
    "computer_call_output", "mcp_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
    "image_generation_call", "code_interpreter_call", "local_shell_call", "local_shell_call_output",
    "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output", "tool_search_call",
    "tool_search_output", "additional_tools", "compaction", "compaction_trigger", "program", "program_output",
})


def short_hash(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:16]


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [dict(i) for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []


def with_ids(items: list[dict[str, Any]], seed: str) -> list[dict[str, Any]]:
    """Items as the server lists them: each with an id (a message gets `msg_`), kept if given."""
    out = []
    for i, item in enumerate(items):
        if "type" not in item:  # EasyInputMessage: {"role", "content"}
            item = {"type": "message", **item}
        if not isinstance(item.get("id"), str):
            item = {"id": f"{_prefix(item)}{short_hash(seed, i)}", **item}
        out.append(item)
    return out


def _prefix(item: dict[str, Any]) -> str:
    return {"message": "msg_", "function_call_output": "fco_", "custom_tool_call_output": "ctco_"}.get(
        str(item.get("type")), "item_")


def text_of(content: Any) -> str:
    """A string, or the text of its text parts (input_text / output_text) joined by newlines."""
    if isinstance(content, str):
        return content
    parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") in TEXT_PARTS] \
        if isinstance(content, list) else []
    return "\n".join(p for p in parts if isinstance(p, str))


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def read_transcript(body: dict[str, Any], context: list[dict[str, Any]]) -> Transcript:
    """The grammar's view: `instructions`, then the stored `context` items and this `input`."""
    turns: list[Turn] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        turns.append(Turn("developer", body["instructions"]))
    names: dict[str, str] = {}
    for item in context:
        turns.extend(_turns(item, names))
    choice = body.get("tool_choice")
    return Transcript(turns=tuple(turns), tool_names=frozenset(tool_kinds(body)), tools_allowed=choice != "none")


def _turns(item: dict[str, Any], names: dict[str, str]) -> list[Turn]:
    kind = item.get("type", "message")
    if kind == "message":
        role = str(item.get("role"))
        return [Turn("assistant", "")] if role == "assistant" else [Turn(role, text_of(item.get("content")))]
    if kind in ("function_call", "custom_tool_call", "mcp_call") and isinstance(item.get("name"), str):
        names[str(item.get("call_id") or item.get("id"))] = item["name"]
        raw = item.get("input") if kind == "custom_tool_call" else item.get("arguments")
        turns = [Turn("assistant", "", calls=(Call(item["name"], _arguments(raw)),))]
        if kind == "mcp_call" and isinstance(item.get("output"), str):
            turns.append(Turn("tool", item["output"], tool=item["name"]))
        return turns
    if kind in CLIENT_RUN.values() and isinstance(item.get("call_id"), str):
        names[item["call_id"]] = kind.removesuffix("_call")
        return [Turn("assistant", "")]
    if kind in ("function_call_output", "custom_tool_call_output"):
        return [Turn("tool", text_of(item.get("output")), tool=names.get(str(item.get("call_id"))))]
    if kind in ("local_shell_call_output", "apply_patch_call_output", "program_output", "shell_call_output"):
        # What a command, a patch or a program printed: read and obeyed like any tool result.
        return [Turn("tool", _printed(item), tool=names.get(str(item.get("call_id")), kind.removesuffix("_output")))]
    if kind == "file_search_call":
        results = item.get("results")
        found = results if isinstance(results, list) else []
        text = "\n".join(r["text"] for r in found if isinstance(r, dict) and isinstance(r.get("text"), str))
        return [Turn("tool", text, tool="file_search")] if text else []
    return []


def _printed(item: dict[str, Any]) -> str:
    output = item.get("result") if item.get("type") == "program_output" else item.get("output")
    if isinstance(output, list):  # shell_call_output: [{stdout, stderr, outcome}]
        return "\n".join(str(c.get(k)) for c in output if isinstance(c, dict) for k in ("stdout", "stderr")
                         if isinstance(c.get(k), str) and c.get(k))
    return output if isinstance(output, str) else ""


# Built-in tools the client runs: the simulator calls them by their type, like a named tool.
CLIENT_RUN = {"local_shell": "local_shell_call", "shell": "shell_call"}


def tool_kinds(body: dict[str, Any]) -> dict[str, str]:
    """Offered tool name -> "function" | "custom" | "local_shell" | "shell" (provider-run tools are
    not the simulator's to run)."""
    out: dict[str, str] = {}
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") in ("function", "custom") and isinstance(tool.get("name"), str):
            out[tool["name"]] = tool["type"]
        elif isinstance(tool, dict) and tool.get("type") in CLIENT_RUN:
            out[tool["type"]] = tool["type"]
    return out


def _client_run_item(kind: str, call: Any) -> dict[str, Any]:
    """A shell call the client will run: the command is the call's `command` argument."""
    args = _arguments(call.arguments)
    command = str(args.get("command", "")) if isinstance(args, dict) else ""
    action: dict[str, Any] = ({"type": "exec", "command": command.split(), "env": {}} if kind == "local_shell"
                              else {"commands": [command]})
    return {"type": CLIENT_RUN[kind], "id": "sh_" + call.id.removeprefix("call_"), "call_id": call.id,
            "action": action, "status": "completed"}


# --- Rendering -----------------------------------------------------------------------------------


def reasoning_item(reply: replies.Reply) -> dict[str, Any]:
    """The reasoning summary a request asked for (`reasoning.summary`): the obedient model's plan,
    which restates what it is about to say or call."""
    plan = reply.text or "call " + ", ".join(f"{c.name} {c.arguments}" for c in reply.tool_calls)
    return {"type": "reasoning", "id": "rs_" + reply.id.removeprefix("resp_"),
            "summary": [{"type": "summary_text", "text": "Plan: " + plan}]}


def output_items(reply: replies.Reply, kinds: dict[str, str], summary: bool = False) -> list[dict[str, Any]]:
    """The output items of a reply; with `summary`, a reasoning item comes first."""
    return [reasoning_item(reply)] * summary + _answer_items(reply, kinds)


def _answer_items(reply: replies.Reply, kinds: dict[str, str]) -> list[dict[str, Any]]:
    if not reply.tool_calls:
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        return [{"type": "message", "id": "msg_" + reply.id.removeprefix("resp_"), "status": "completed",
                 "role": "assistant", "content": [part]}]
    items = []
    for call in reply.tool_calls:
        if kinds.get(call.name) in CLIENT_RUN:
            items.append(_client_run_item(kinds[call.name], call))
        elif kinds.get(call.name) == "custom":
            items.append({"type": "custom_tool_call", "id": "ctc_" + call.id.removeprefix("call_"),
                          "call_id": call.id, "name": call.name, "input": call.arguments, "status": "completed"})
        else:
            items.append({"type": "function_call", "id": "fc_" + call.id.removeprefix("call_"),
                          "call_id": call.id, "name": call.name, "arguments": call.arguments,
                          "status": "completed"})
    return items


def response_object(body: dict[str, Any], reply: replies.Reply, output: list[dict[str, Any]],
                    status: str = "completed") -> dict[str, Any]:
    """The `response` object, echoing the request's settings as the API does."""
    done = status == "completed"
    return {
        "id": reply.id, "object": "response", "created_at": CREATED, "status": status,
        "background": body.get("background") is True, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"] if isinstance(body.get("model"), str) else "sim-gpt",
        "output": output if done else [], "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "conversation": conversation_ref(body.get("conversation")),
        "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
        "usage": _usage(reply) if done else None, "user": body.get("user"), "metadata": body.get("metadata") or {},
    }


def conversation_ref(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"id": value}
    return {"id": value["id"]} if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def _usage(reply: replies.Reply) -> dict[str, Any]:
    return {"input_tokens": reply.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


def stream_events(response: dict[str, Any], reply: replies.Reply) -> list[dict[str, Any]]:
    """Every `response.*` event of the stream in order, `sequence_number` counting from 0."""
    pending = response | {"status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": pending},
                                    {"type": "response.in_progress", "response": pending}]
    for index, item in enumerate(response["output"]):
        events.extend(_item_events(index, item, reply))
    events.append({"type": "response.completed", "response": response})
    return [e | {"sequence_number": n} for n, e in enumerate(events)]


def _item_events(index: int, item: dict[str, Any], reply: replies.Reply) -> list[dict[str, Any]]:
    kind, item_id = item["type"], item["id"]
    where = {"item_id": item_id, "output_index": index}
    if kind == "message":
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        part = item["content"][0]
        out = [{"type": "response.output_item.added", "output_index": index,
                "item": item | {"status": "in_progress", "content": []}},
               {"type": "response.content_part.added", **where, "content_index": 0, "part": empty}]
        out += [{"type": "response.output_text.delta", **where, "content_index": 0, "delta": t, "logprobs": []}
                for t in reply.tokens]
        out += [{"type": "response.output_text.done", **where, "content_index": 0, "text": part["text"],
                 "logprobs": []},
                {"type": "response.content_part.done", **where, "content_index": 0, "part": part}]
    elif kind in CLIENT_RUN.values():
        out = [{"type": "response.output_item.added", "output_index": index, "item": item | {"status": "in_progress"}}]
    elif kind == "reasoning":
        part, text = item["summary"][0], item["summary"][0]["text"]
        where = where | {"summary_index": 0}
        out = [{"type": "response.output_item.added", "output_index": index, "item": item | {"summary": []}},
               {"type": "response.reasoning_summary_part.added", **where, "part": part | {"text": ""}},
               {"type": "response.reasoning_summary_text.delta", **where, "delta": text},
               {"type": "response.reasoning_summary_text.done", **where, "text": text},
               {"type": "response.reasoning_summary_part.done", **where, "part": part}]
    else:
        field = "input" if kind == "custom_tool_call" else "arguments"
        name = "custom_tool_call_input" if kind == "custom_tool_call" else "function_call_arguments"
        value = item[field]
        out = [{"type": "response.output_item.added", "output_index": index,
                "item": item | {"status": "in_progress", field: ""}}]
        out += [{"type": f"response.{name}.delta", **where, "delta": value[i : i + replies.ARGUMENT_PIECE_CHARS]}
                for i in range(0, len(value), replies.ARGUMENT_PIECE_CHARS)]
        out.append({"type": f"response.{name}.done", **where, field: value}
                   | ({"name": item["name"]} if kind == "function_call" else {}))
    out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return out


def sse_event(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
