"""OpenAI Responses API requests <-> Conversation, under the same closed contract as chat.

`parse` reports every text the model reads to the shared Labeller: `instructions` (trusted), the
input items (openai_responses_items: trust and provenance per item type), the tools offered and
`text.format` / `prompt` (openai_responses_tools). A shape no reader knows (an item type, content
part, tool type, or a top-level parameter with structure) goes to `Labeller.unknown`: the app
refuses it with a 400 naming the field, or passes it unread and lists it in the coverage ledger when
the operator sets `unknown_shapes: pass_uninspected`, exactly as for chat. Top-level parameters that
only configure the provider (`reasoning`, `include`, `metadata`, `store`...) are known and unread.

Segments that do not address a string in the body (non-text content, earlier turns restored from
the response state) sit under `CONTEXT_ROOT`; `render` never writes them back.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import InvalidRequest
from proxy.model import Conversation, Location, Provenance, Segment, ToolCall, ToolSpec, Trust, Uninspected
from proxy.providers import jsonpath
from proxy.providers.base import RequestParams, WireAPI
from proxy.providers.labels import CONTEXT_ROOT, Labeller, in_context, top_level
from proxy.providers.openai_responses_items import ItemReader, refuse
from proxy.providers.openai_responses_output import CALL_ITEMS, call_of, parse_output, render_output
from proxy.providers.openai_responses_stream import ResponsesCodec
from proxy.providers.openai_responses_tools import HOSTED_TOOLS, prompt, text_format, tool_name
from proxy.providers.openai_responses_tools import tools as offered_tools

__all__ = ["API", "CONTEXT_ROOT", "HOSTED_TOOLS", "RESPONSES", "VENDOR", "parse", "read_items", "render", "tool_name"]

API = "openai.responses"
VENDOR = "openai"
# Parameters that configure the provider and carry no text the model reads (input, instructions,
# tools, text and prompt are read above); anything else with structure is an unknown shape.
KNOWN_PARAMS = frozenset({
    "model", "input", "instructions", "tools", "text", "prompt", "stream", "stream_options", "tool_choice",
    "parallel_tool_calls", "max_tool_calls", "previous_response_id", "conversation", "store", "background",
    "background_options", "include", "metadata", "reasoning", "max_output_tokens", "temperature", "top_p",
    "top_logprobs", "truncation", "service_tier", "user", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options", "context_management", "image", "moderation",
    "access_programs",
})


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a Responses request and label every text the model will read."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model is required and must be a string", param="model", code="missing_model")
    if not isinstance(body.get("stream", False), bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    labels = Labeller()
    reader = ItemReader(labels)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        reader.text(("instructions",), instructions, "system", Trust.TRUSTED, Provenance("system"))
    elif instructions is not None:
        raise refuse("instructions must be a string", ("instructions",))
    prompt(reader, body.get("prompt"))
    raw = body.get("input")
    if isinstance(raw, str):
        reader.text(("input",), raw, "user", Trust.USER, Provenance("user"))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            reader.item(i, item)
    elif raw is not None:
        raise refuse("input must be a string or an array of input items", ("input",))
    offered = offered_tools(body, labels)
    text_format(body, labels)
    top_level(body, KNOWN_PARAMS, labels)
    return labels.conversation(API, VENDOR, body, offered, _history_calls(raw) if isinstance(raw, list) else ())


def _history_calls(items: list[Any]) -> tuple[ToolCall, ...]:
    """The calls earlier turns made, sent back as items: provenance asks which record a result came from."""
    return tuple(call_of(item, n) for n, item in enumerate(items)
                 if isinstance(item, dict) and item.get("type") in CALL_ITEMS
                 and isinstance(item.get("call_id") or item.get("id"), str))


def read_items(items: list[Any]) -> list[Segment]:
    """Segments of output items (a reply the proxy will remember): what no reader knows, and any
    non-text content, is an empty untrusted segment, so the next turn counts as tainted."""
    labels = Labeller()
    reader = ItemReader(labels)
    for i, item in enumerate(items):
        try:
            reader.item(i, item)
        except InvalidRequest:
            labels.unknown(("output", i), "malformed output item", item)
    conv = labels.conversation(API, VENDOR, {"model": ""}, ())
    return [*conv.segments, *(unread_segment(u) for u in conv.uninspected if u.chars)]


def unread_segment(entry: Uninspected) -> Segment:
    """An unread shape as an empty untrusted segment: remembered as taint for the next turn."""
    path: tuple[str | int, ...] = (CONTEXT_ROOT, *entry.path.split("."))
    return Segment(0, "tool", "", Trust.UNTRUSTED, Provenance("uninspected", entry.path), Location(path))


def render(conv: Conversation) -> dict[str, Any]:
    """The body to forward: the client's JSON with rewritten texts / tools, context segments left out."""
    body_only = conv.with_segments([s for s in conv.segments if not in_context(s)])
    body = jsonpath.rewritten(body_only, _tool_names, _write_tools, _write_inserts)
    tools = [t.raw for t in conv.tools]
    if tools and body.get("tools") != tools:  # same names, changed settings (an MCP server's approval)
        body = jsonpath.copy_tree(body) if body is conv.raw else body
        body["tools"] = tools
    return body


def _tool_names(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    return [tool_name(t) for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def _write_inserts(body: dict[str, Any], conv: Conversation) -> None:
    """Added segments (a guard's notice) become messages: operator ones lead, others follow their
    neighbour's item, as in chat."""
    if isinstance(body.get("input"), str):
        body["input"] = [{"type": "message", "role": "user", "content": body["input"]}]
    items: list[Any] = body.setdefault("input", [])
    inserts: list[tuple[int, dict[str, Any]]] = []
    at = 0
    for seg in conv.segments:
        if seg.location is None:
            inserts.append((at, {"type": "message", "role": seg.role, "content": seg.text}))
        elif seg.location.path[0] == "input" and len(seg.location.path) > 1:
            at = int(seg.location.path[1]) + 1
    for position, message in reversed(inserts):
        items.insert(position, message)


def _write_tools(body: dict[str, Any], tools: tuple[ToolSpec, ...]) -> None:
    names = {t.name for t in tools}
    if tools:
        body["tools"] = [t.raw for t in tools]
    else:
        body.pop("tools", None)
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tools and choice != "none":
        body.pop("tool_choice")
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        listed = choice.get("tools")
        listed = listed if isinstance(listed, list) else []
        kept = [t for t in listed if isinstance(t, dict) and tool_name(t) in names]
        body["tool_choice"] = {**choice, "tools": kept} if kept else "auto"
    elif isinstance(choice, dict) and tool_name(choice) not in names:
        body["tool_choice"] = "auto"


def request_params(raw: dict[str, Any]) -> RequestParams:
    fmt = raw.get("text", {}).get("format") if isinstance(raw.get("text"), dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    tokens, temperature, top_p = raw.get("max_output_tokens"), raw.get("temperature"), raw.get("top_p")

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return RequestParams(
        max_tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        temperature=number(temperature), top_p=number(top_p),
        output_type=("text" if kind == "text" else "json") if kind in ("text", "json_object", "json_schema") else None,
        api_type="responses",
    )


def message_count(raw: dict[str, Any]) -> int:
    items = raw.get("input")
    return len(items) if isinstance(items, list) else 1


RESPONSES = WireAPI(
    name=API,
    vendor=VENDOR,
    route="/v1/responses",
    upstream_path="/responses",
    parse=parse,
    render=render,
    parse_output=parse_output,
    render_output=render_output,
    stream_codec=ResponsesCodec,
    error_body=lambda error, request_id: error.body(request_id),
    request_params=request_params,
    message_count=message_count,
    stopped_reason="content_filter",
)
