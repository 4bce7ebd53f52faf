"""Anthropic Messages <-> Conversation, losslessly.

`parse` labels every piece of text with its trust and provenance: `system` trusted, user text the
user's own, assistant text client-supplied history, `tool_result` blocks untrusted (provenance: the
tool's name, found through the matching `tool_use` id), `document` and `search_result` blocks
untrusted (provenance: title, else URL), and `<untrusted>` spans untrusted wherever they appear.
`render` writes segment text and tools back into a copy of the body the client sent; with no
rewrite it gives back that very body, minus the retrieval markup.
"""

from __future__ import annotations

import copy
from typing import Any

from proxy.model import Conversation, Location, Output, Provenance, Segment, ToolCall, ToolSpec, Trust
from proxy.providers import jsonpath, params
from proxy.providers.anthropic_errors import anthropic_error_body
from proxy.providers.anthropic_schema import validate_request
from proxy.providers.anthropic_stream import (
    AnthropicCodec,
    arguments_json,
    input_tokens,
    stop_reason,
    tool_use_block,
)
from proxy.providers.base import WireAPI
from proxy.providers.markup import split_marked

API = "anthropic.messages"
VENDOR = "anthropic"
_ROLE_TRUST = {"user": Trust.USER, "assistant": Trust.USER}  # assistant: client-supplied history
Texts = list[tuple[jsonpath.Path, str, Trust, Provenance]]


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a Messages request body and normalise it."""
    validate_request(body)
    names = _tool_use_names(body["messages"])
    texts: Texts = []
    _system_texts(body.get("system"), texts)
    for i, message in enumerate(body["messages"]):
        _message_texts(message, ("messages", i), names, texts)
    segments: list[Segment] = []
    for path, text, trust, prov in texts:
        role = "system" if path[0] == "system" else body["messages"][path[1]]["role"]
        for part, piece in enumerate(split_marked(text)):
            if piece.marked:
                seg_trust, seg_prov = Trust.UNTRUSTED, Provenance("marked", piece.source, prov.tool_call_id)
            else:
                seg_trust, seg_prov = trust, prov
            segments.append(Segment(len(segments), role, piece.text, seg_trust, seg_prov, Location(path, part)))
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
    return jsonpath.rewritten(
        conv, lambda t: t.get("name"), _write_tools,
        lambda body, c: _insert_added(body, [s for s in c.segments if s.location is None]),
    )


def _insert_added(body: dict[str, Any], added: list[Segment]) -> None:
    """Put segments a guard added where Anthropic can carry them.

    Operator text (system/developer role: a segregation notice, a canary) goes last in `system`,
    as its own block when `system` is a list, so the client's blocks and any prompt-cache
    breakpoint on them stay as sent; anything else (e.g. untrusted text moved out of the system
    prompt) opens the first user turn, as text blocks in order, so the turns still alternate.
    """
    operator = [s.text for s in added if s.role in ("system", "developer")]
    others = [{"type": "text", "text": s.text} for s in added if s.role not in ("system", "developer") and s.text]
    if operator:
        notice = "\n\n".join(operator)
        system = body.get("system")
        if isinstance(system, list):
            body["system"] = [*system, {"type": "text", "text": notice}]
        else:
            body["system"] = (system + "\n\n" if system else "") + notice
    if others:
        first = next((m for m in body["messages"] if m.get("role") == "user"), None)
        if first is None:
            body["messages"].insert(0, {"role": "user", "content": others})
        else:
            content = first["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            first["content"] = [*others, *blocks]


def is_unchanged(conv: Conversation) -> bool:
    return render(conv) is conv.raw


def _system_texts(system: Any, texts: Texts) -> None:
    prov = Provenance("system")
    if isinstance(system, str):
        texts.append((("system",), system, Trust.TRUSTED, prov))
        return
    for j, block in enumerate(system or ()):
        if block.get("type") == "text":
            texts.append((("system", j, "text"), block["text"], Trust.TRUSTED, prov))


def _message_texts(message: dict[str, Any], at: jsonpath.Path, names: dict[str, str], texts: Texts) -> None:
    role = message["role"]
    trust, prov = _ROLE_TRUST[role], Provenance(role)
    content = message["content"]
    if isinstance(content, str):
        texts.append(((*at, "content"), content, trust, prov))
        return
    for j, block in enumerate(content):
        where = (*at, "content", j)
        kind = block["type"]
        if kind == "text":
            texts.append(((*where, "text"), block["text"], trust, prov))
        elif kind == "tool_result":
            call_id = block["tool_use_id"]
            result = Provenance("tool_result", names.get(call_id), call_id)
            _inner_texts(block.get("content"), (*where, "content"), result, texts)
        elif kind == "document":
            _document_texts(block, where, texts)
        elif kind == "search_result":
            found = Provenance("search_result", block.get("title") or block.get("source"))
            _inner_texts(block.get("content"), (*where, "content"), found, texts)


def _document_texts(block: dict[str, Any], where: jsonpath.Path, texts: Texts) -> None:
    source = block["source"]
    prov = Provenance("document", block.get("title") or source.get("url") or source.get("file_id"))
    if source.get("type") == "text":
        texts.append(((*where, "source", "data"), source["data"], Trust.UNTRUSTED, prov))
    elif source.get("type") == "content":
        _inner_texts(source.get("content"), (*where, "source", "content"), prov, texts)
    # The `context` a client attaches travels with the document: it is as untrusted as the text.
    if isinstance(block.get("context"), str):
        texts.append(((*where, "context"), block["context"], Trust.UNTRUSTED, prov))


def _inner_texts(content: Any, at: jsonpath.Path, prov: Provenance, texts: Texts) -> None:
    """Text of a tool result / document / search result: a string or an array of text blocks."""
    if isinstance(content, str):
        texts.append((at, content, Trust.UNTRUSTED, prov))
        return
    for k, inner in enumerate(content if isinstance(content, list) else ()):
        if isinstance(inner, dict) and inner.get("type") == "text" and isinstance(inner.get("text"), str):
            texts.append(((*at, k, "text"), inner["text"], Trust.UNTRUSTED, prov))


def _tool_use_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_use id -> tool name, from the assistant turns that made the calls."""
    names: dict[str, str] = {}
    for message in messages:
        content = message["content"]
        for block in content if isinstance(content, list) else ():
            if block.get("type") in ("tool_use", "server_tool_use") and block.get("id") and block.get("name"):
                names[block["id"]] = block["name"]
    return names


def _tool_spec(entry: dict[str, Any]) -> ToolSpec:
    return ToolSpec(
        name=entry.get("name", ""),
        description=entry.get("description") or "",
        parameters=entry.get("input_schema") or {},
        raw=entry,
    )


def _write_tools(body: dict[str, Any], tools: tuple[ToolSpec, ...]) -> None:
    """Replace `tools` and keep `tool_choice` valid for what is left."""
    names = {t.name for t in tools}
    if tools:
        body["tools"] = [t.raw for t in tools]
    else:
        body.pop("tools", None)
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tools:
        body.pop("tool_choice")
    elif choice.get("type") == "tool" and choice.get("name") not in names:
        # Keep the client's other choice settings (disable_parallel_tool_use) on the fallback.
        body["tool_choice"] = {k: v for k, v in choice.items() if k != "name"} | {"type": "auto"}


# --- Responses ------------------------------------------------------------------------------------


def parse_output(response: dict[str, Any]) -> Output:
    """Normalise a non-streamed `message` response."""
    content = response.get("content") or []
    usage = response.get("usage") or {}
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = tuple(
        ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=arguments_json(b.get("input")), index=n)
        for n, b in enumerate(b for b in content if b.get("type") == "tool_use")
    )
    return Output(
        text=text,
        tool_calls=calls,
        finish_reason=response.get("stop_reason"),
        response_id=response.get("id"),
        model=response.get("model"),
        input_tokens=input_tokens(usage),
        output_tokens=usage.get("output_tokens"),
    )


def render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    """The response with its text and tool_use blocks replaced by `output`'s.

    Other blocks (thinking, server tools' results) keep their places; all text collapses into
    the first text block's place, since a rewrite cannot say which block each piece came from.
    """
    response = copy.deepcopy(response)
    original = response.get("content") or []
    by_id = {b.get("id"): b for b in original if b.get("type") == "tool_use"}
    content: list[dict[str, Any]] = []
    text_placed = False
    for block in original:
        kind = block.get("type")
        if kind == "text":
            if not text_placed and output.text:
                content.append({**block, "text": output.text})
            text_placed = True
        elif kind != "tool_use":
            content.append(block)
    if not text_placed and output.text:
        content.insert(0, {"type": "text", "text": output.text})
    content.extend(by_id.get(c.id) or tool_use_block(c) for c in output.tool_calls)
    response["content"] = content
    response["stop_reason"] = stop_reason(output, response.get("stop_reason"))
    return response


def upstream_auth(key: str) -> dict[str, str]:
    return {"x-api-key": key}  # Anthropic's API reads the key from x-api-key, not Authorization


ANTHROPIC = WireAPI(
    name=API,
    vendor=VENDOR,
    route="/v1/messages",
    upstream_path="/messages",
    parse=parse,
    render=render,
    parse_output=parse_output,
    render_output=render_output,
    stream_codec=AnthropicCodec,
    error_body=anthropic_error_body,
    request_params=params.anthropic_messages,
    message_count=params.message_count,
    upstream_auth=upstream_auth,
    stopped_reason="refusal",
)

