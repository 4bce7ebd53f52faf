"""OpenAI chat completions <-> Conversation, losslessly.

`parse` labels every piece of text with its trust and provenance: system/developer trusted,
user/assistant the client's own, `role: tool` (and legacy `function`) untrusted with the tool's name,
and `<untrusted>` spans untrusted wherever they appear. `render` writes segment text and tools back
into a copy of the body the client sent; with no rewrite it gives back that very body, minus the
retrieval markup.
"""

from __future__ import annotations

import copy
from typing import Any

from proxy.model import Conversation, Location, Output, Provenance, Segment, ToolCall, ToolSpec, Trust
from proxy.providers import jsonpath, params
from proxy.providers.base import WireAPI
from proxy.providers.markup import split_marked
from proxy.providers.openai_events import OpenAICodec
from proxy.providers.openai_schema import validate_request

API = "openai.chat"
VENDOR = "openai"
_ROLE_TRUST = {
    "system": Trust.TRUSTED,
    "developer": Trust.TRUSTED,
    "user": Trust.USER,
    "assistant": Trust.USER,  # client-supplied history: as trustworthy as the client, no more
    "tool": Trust.UNTRUSTED,
    "function": Trust.UNTRUSTED,
}


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a chat completions request body and normalise it."""
    validate_request(body)
    tool_names = _tool_call_names(body["messages"])
    segments: list[Segment] = []
    for i, message in enumerate(body["messages"]):
        for path, text in _texts(message, ("messages", i)):
            _add_segments(segments, message, path, text, tool_names)
    return Conversation(
        api=API,
        vendor=VENDOR,
        model=body["model"],
        stream=bool(body.get("stream", False)),
        segments=tuple(segments),
        tools=tuple(_tool_spec(t) for t in body.get("tools") or ()),
        raw=body,
    )


def render(conv: Conversation) -> dict[str, Any]:
    """The body to forward: the client's JSON with rewritten texts/tools, markup removed."""
    return jsonpath.rewritten(conv, lambda t: (t.get("function") or {}).get("name"), _write_tools, _write_inserts)


def _write_inserts(body: dict[str, Any], conv: Conversation) -> None:
    for at, message in reversed(_inserts(conv)):  # back to front, so earlier positions stay valid
        body["messages"].insert(at, message)


def is_unchanged(conv: Conversation) -> bool:
    return render(conv) is conv.raw


def parse_output(response: dict[str, Any]) -> Output:
    """Normalise a non-streamed chat.completion response (first choice)."""
    choices = response.get("choices") or [{}]
    message = choices[0].get("message") or {}
    usage = response.get("usage") or {}
    calls = tuple(
        ToolCall(
            id=c.get("id", ""),
            name=(c.get("function") or {}).get("name", ""),
            arguments=(c.get("function") or {}).get("arguments", ""),
            index=n,
        )
        for n, c in enumerate(message.get("tool_calls") or ())
    )
    return Output(
        text=message.get("content") or "",
        tool_calls=calls,
        finish_reason=choices[0].get("finish_reason"),
        response_id=response.get("id"),
        model=response.get("model"),
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
    )


def _texts(message: dict[str, Any], at: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    content = message.get("content")
    if isinstance(content, str):
        return [((*at, "content"), content)]
    if isinstance(content, list):
        return [
            ((*at, "content", j, "text"), part["text"])
            for j, part in enumerate(content)
            if part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
    return []


def _add_segments(
    segments: list[Segment],
    message: dict[str, Any],
    path: tuple[str | int, ...],
    text: str,
    tool_names: dict[str, str],
) -> None:
    role = message["role"]
    base = _provenance(message, tool_names)
    for part, piece in enumerate(split_marked(text)):
        if piece.marked:
            trust, prov = Trust.UNTRUSTED, Provenance("marked", piece.source, base.tool_call_id)
        else:
            trust, prov = _ROLE_TRUST[role], base
        segments.append(Segment(len(segments), role, piece.text, trust, prov, Location(path, part)))


def _provenance(message: dict[str, Any], tool_names: dict[str, str]) -> Provenance:
    role = message["role"]
    if role == "tool":
        call_id = message.get("tool_call_id")
        return Provenance("tool_result", tool_names.get(call_id or "", message.get("name")), call_id)
    if role == "function":
        return Provenance("tool_result", message.get("name"))
    return Provenance(role)


def _tool_call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistant messages that made the calls."""
    names: dict[str, str] = {}
    for m in messages:
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            if call.get("id") and fn.get("name"):
                names[call["id"]] = fn["name"]
    return names


def _tool_spec(entry: dict[str, Any]) -> ToolSpec:
    fn = entry.get("function") or {}
    return ToolSpec(
        name=fn.get("name", ""),
        description=fn.get("description") or "",
        parameters=fn.get("parameters") or {},
        raw=entry,
    )


def _inserts(conv: Conversation) -> list[tuple[int, dict[str, Any]]]:
    """(message position, message) for added segments: after the previous segment's message."""
    out: list[tuple[int, dict[str, Any]]] = []
    at = 0
    for seg in conv.segments:
        if seg.location is not None:
            at = int(seg.location.path[1]) + 1
        else:
            out.append((at, {"role": seg.role, "content": seg.text}))
    return out


def _write_tools(body: dict[str, Any], tools: tuple[ToolSpec, ...]) -> None:
    """Replace `tools` and keep `tool_choice` valid for what is left."""
    names = {t.name for t in tools}
    if tools:
        body["tools"] = [t.raw for t in tools]
    else:
        body.pop("tools", None)
        body.pop("parallel_tool_calls", None)
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tools:
        body.pop("tool_choice")
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        body["tool_choice"] = "auto"


def render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    """The response with the first choice's content and tool calls replaced by `output`'s."""
    response = copy.deepcopy(response)
    choice = (response.get("choices") or [{}])[0]
    message = choice.setdefault("message", {"role": "assistant"})
    message["content"] = output.text or None
    if output.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in output.tool_calls
        ]
    else:
        message.pop("tool_calls", None)
    if output.finish_reason:
        choice["finish_reason"] = output.finish_reason
    return response


OPENAI = WireAPI(
    name=API,
    vendor=VENDOR,
    route="/v1/chat/completions",
    upstream_path="/chat/completions",
    parse=parse,
    render=render,
    parse_output=parse_output,
    render_output=render_output,
    stream_codec=OpenAICodec,
    error_body=lambda error, request_id: error.body(request_id),
    request_params=params.openai_chat,
    message_count=params.message_count,
    stopped_reason="content_filter",
)
