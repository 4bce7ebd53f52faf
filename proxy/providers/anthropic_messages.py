"""Anthropic Messages <-> Conversation, losslessly, under a closed contract.

`parse` labels every piece of text the model reads with its trust and provenance: `system` trusted,
user text the user's own, assistant text (and earlier tool inputs) client-supplied history;
`tool_result` / `mcp_tool_result` blocks untrusted (provenance: the tool's name, found through the
matching call id), whatever they hold, nested `document` / `search_result` / image blocks included;
`document` and `search_result` blocks and server tools' results untrusted (provenance: title, else
URL); `<untrusted>` spans untrusted wherever they appear; tool descriptions and input schemas as
the client's text. Images, PDFs, files and encrypted results are opaque content (untrusted where
retrieved). A block type it does not know, `mcp_servers` (remote tools outside the key's scope)
and unknown parameters with structure are unread shapes: refused unless the operator passes them.
`render` writes segment text and tools back into a copy of the body the client sent; with no
rewrite it gives back that very body, minus the retrieval markup.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.model import Conversation, Provenance, Segment, ToolCall, ToolSpec, Trust
from proxy.providers import jsonpath, params
from proxy.providers.anthropic_errors import anthropic_error_body
from proxy.providers.anthropic_response import parse_output, render_output
from proxy.providers.anthropic_schema import validate_request
from proxy.providers.anthropic_stream import AnthropicCodec
from proxy.providers.base import WireAPI
from proxy.providers.labels import Labeller, Path, top_level

API = "anthropic.messages"
VENDOR = "anthropic"
_ROLE_TRUST = {"user": Trust.USER, "assistant": Trust.USER}  # assistant: client-supplied history
_ROLE_PROVENANCE = {role: Provenance(role) for role in _ROLE_TRUST}  # frozen: shared by every message
_CALLS = ("tool_use", "server_tool_use", "mcp_tool_use")
# Server tools' results (web search, web fetch, code execution ...): retrieved content.
_SERVER_RESULTS = frozenset({
    "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
})
_OPAQUE_SOURCES = {"base64": "document", "url": "document", "file": "file"}
_SCHEMA_SKIP = frozenset({"type", "format", "$ref", "additionalProperties", "required", "pattern"})
KNOWN_PARAMS = frozenset({
    "model", "messages", "system", "max_tokens", "stream", "tools", "tool_choice", "temperature",
    "top_p", "top_k", "stop_sequences", "metadata", "thinking", "service_tier", "container",
    "context_management", "output_format",
})


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a Messages request body and label everything the model reads."""
    validate_request(body)
    names = _tool_use_names(body["messages"])
    labels = Labeller()
    _system(body.get("system"), labels)
    for i, message in enumerate(body["messages"]):
        _message(message, ("messages", i), names, labels)
    for i, tool in enumerate(body.get("tools") or ()):
        _tool_texts(tool, ("tools", i), labels)
    _output_format(body.get("output_format"), labels)
    if body.get("mcp_servers") is not None:
        # The model would call tools guardproxy never sees offered, on Anthropic's side.
        labels.unknown(("mcp_servers",), "remote MCP servers give the model tools outside the key's "
                       "tool scope; connect MCP servers through guardproxy instead", body["mcp_servers"])
    top_level(body, KNOWN_PARAMS | {"mcp_servers"}, labels)
    return labels.conversation(API, VENDOR, body, tuple(_tool_spec(t) for t in body.get("tools") or ()),
                               _history_calls(body["messages"]))


def render(conv: Conversation) -> dict[str, Any]:
    """The body to forward: the client's JSON with rewritten texts/tools, markup removed."""
    return jsonpath.rewritten(
        conv, lambda body: [t.get("name") for t in body.get("tools") or ()], _write_tools,
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


def _system(system: Any, labels: Labeller) -> None:
    prov = Provenance("system")
    if isinstance(system, str):
        labels.text(("system",), system, Trust.TRUSTED, prov, "system")
        return
    for j, block in enumerate(system or ()):
        if block.get("type") == "text":
            labels.text(("system", j, "text"), block["text"], Trust.TRUSTED, prov, "system")
        else:
            labels.unknown(("system", j), f"system block type {block.get('type')!r} is not text", block)


def _message(message: dict[str, Any], at: Path, names: dict[str, str], labels: Labeller) -> None:
    role = message["role"]
    trust, prov = _ROLE_TRUST[role], _ROLE_PROVENANCE[role]
    content = message["content"]
    if isinstance(content, str):
        labels.text((*at, "content"), content, trust, prov, role)
        return
    for j, block in enumerate(content):
        _block(block, (*at, "content", j), trust, prov, role, names, labels)


def _block(block: dict[str, Any], where: Path, trust: Trust, prov: Provenance, role: str,
           names: dict[str, str], labels: Labeller) -> None:
    """One content block, at any depth: inside a tool result everything is untrusted."""
    kind = block["type"]
    if kind == "text":
        labels.text((*where, "text"), block["text"], trust, prov, role)
    elif kind in ("tool_result", "mcp_tool_result"):
        call_id = block["tool_use_id"]
        result = Provenance("tool_result", names.get(call_id), call_id)
        _inner(block.get("content"), (*where, "content"), result, role, names, labels)
    elif kind == "document":
        _document(block, where, role, prov, labels)
    elif kind == "search_result":
        found = Provenance("search_result", block.get("title") or block.get("source"), prov.tool_call_id)
        for key in ("title", "source"):
            if isinstance(block.get(key), str):
                labels.text((*where, key), block[key], Trust.UNTRUSTED, found, role)
        _inner(block.get("content"), (*where, "content"), found, role, names, labels)
    elif kind == "image":
        labels.opaque("image", trust, prov, where)
    elif kind in _CALLS:
        # Earlier calls are history the model reads; "assistant" provenance never vouches.
        labels.leaves(block.get("input"), (*where, "input"), trust, prov, role)
    elif kind in _SERVER_RESULTS:
        server = Provenance("tool_result", names.get(block.get("tool_use_id") or ""), block.get("tool_use_id"))
        labels.leaves(block.get("content"), (*where, "content"), Trust.UNTRUSTED, server, role)
    elif kind in ("thinking", "redacted_thinking"):
        # Signed by Anthropic: rewriting it breaks the signature, and it is the model's own.
        labels.opaque(kind, trust, prov, where)
    elif kind == "container_upload":
        labels.opaque("file", trust, prov, where)
    else:
        labels.unknown(where, f"content block type {kind!r} is not one guardproxy can inspect", block)


def _inner(content: Any, at: Path, prov: Provenance, role: str, names: dict[str, str], labels: Labeller) -> None:
    """A tool result's content: a string or blocks of any kind, all of it retrieved."""
    if isinstance(content, str):
        labels.text(at, content, Trust.UNTRUSTED, prov, role)
        return
    for k, inner in enumerate(content if isinstance(content, list) else ()):
        _block(inner, (*at, k), Trust.UNTRUSTED, prov, role, names, labels)


def _document(block: dict[str, Any], where: Path, role: str, outer: Provenance, labels: Labeller) -> None:
    source = block["source"]
    prov = Provenance("document", block.get("title") or source.get("url") or source.get("file_id"),
                      outer.tool_call_id)
    kind = source.get("type")
    if kind == "text":
        labels.text((*where, "source", "data"), source["data"], Trust.UNTRUSTED, prov, role)
    elif kind == "content":
        _inner(source.get("content"), (*where, "source", "content"), prov, role, {}, labels)
    elif kind in _OPAQUE_SOURCES:
        # A PDF or a URL the model reads and we cannot: retrieved, so the conversation is tainted.
        labels.opaque(_OPAQUE_SOURCES[kind], Trust.UNTRUSTED, prov, (*where, "source"))
    else:
        labels.unknown((*where, "source"), f"document source type {kind!r} is not one guardproxy can inspect",
                       source)
    # The title and `context` travel with the document: as untrusted as its text.
    for key in ("title", "context"):
        if isinstance(block.get(key), str):
            labels.text((*where, key), block[key], Trust.UNTRUSTED, prov, role)


def _tool_texts(tool: dict[str, Any], at: Path, labels: Labeller) -> None:
    """A tool's description and input schema are text the model reads and follows."""
    prov = Provenance("tool_definition", tool.get("name"))
    if isinstance(tool.get("description"), str):
        labels.text((*at, "description"), tool["description"], Trust.USER, prov, "tools")
    if tool.get("input_schema") is not None:
        labels.leaves(tool["input_schema"], (*at, "input_schema"), Trust.USER, prov, "tools", skip=_SCHEMA_SKIP)


def _output_format(fmt: Any, labels: Labeller) -> None:
    if isinstance(fmt, dict) and fmt.get("schema") is not None:
        labels.leaves(fmt["schema"], ("output_format", "schema"), Trust.USER, Provenance("response_format"),
                      "response_format", skip=_SCHEMA_SKIP)


def _history_calls(messages: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    """The tool_use blocks of assistant turns: provenance asks which record a result came from."""
    return tuple(
        ToolCall(str(b["id"]), str(b["name"]), json.dumps(b.get("input", {})))
        for m in messages if isinstance(m["content"], list) for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id") and b.get("name")
    )


def _tool_use_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_use id -> tool name, from the assistant turns that made the calls."""
    names: dict[str, str] = {}
    for message in messages:
        content = message["content"]
        for block in content if isinstance(content, list) else ():
            if block.get("type") in _CALLS and block.get("id") and block.get("name"):
                names[block["id"]] = block["name"]
    return names


def _tool_spec(entry: dict[str, Any]) -> ToolSpec:
    return ToolSpec(
        name=entry.get("name", ""),
        description=entry.get("description") or "",
        parameters=entry.get("input_schema") or {},
        raw=entry,
        kind=entry.get("type") or "function",  # a server tool's type, e.g. web_search_20250305
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

