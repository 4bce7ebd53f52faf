"""OpenAI chat completions <-> Conversation, losslessly, under a closed contract.

`parse` labels every piece of text the model reads with its trust and provenance: system/developer
trusted, user/assistant the client's own, `role: tool` (and legacy `function`) untrusted with the
tool's name, `<untrusted>` spans untrusted wherever they appear; tool descriptions and parameter
schemas (`tools` and legacy `functions`), `response_format` schemas and `prediction` as the
client's text. Images, audio and files are opaque content (untrusted inside tool results); a part
type it does not know, or an unknown parameter with structure, is an unread shape (refused unless
the operator passes them). `render` writes segment text and tools back into a copy of the body the
client sent; with no rewrite it gives back that very body, minus the retrieval markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.model import Conversation, Provenance, ToolCall, ToolSpec, Trust
from proxy.providers import jsonpath, params
from proxy.providers.base import WireAPI
from proxy.providers.labels import Labeller, Path, top_level
from proxy.providers.openai_events import OpenAICodec
from proxy.providers.openai_response import parse_output, render_output
from proxy.providers.openai_schema import validate_request

API = "openai.chat"
VENDOR = "openai"
LEGACY = "legacy_function"
_OPAQUE_PARTS = {"image_url": "image", "input_audio": "audio", "file": "file"}
# Schema keywords that are structure, not prose the model reads.
_SCHEMA_SKIP = frozenset({"type", "format", "$ref", "additionalProperties", "required", "pattern"})
KNOWN_PARAMS = frozenset({
    "model", "messages", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
    "functions", "function_call", "response_format", "prediction", "temperature", "top_p", "n",
    "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "seed", "stop", "user", "store", "metadata", "modalities", "audio",
    "reasoning_effort", "service_tier", "verbosity", "web_search_options", "prompt_cache_key",
    "safety_identifier",
})
_ROLE_TRUST = {
    "system": Trust.TRUSTED,
    "developer": Trust.TRUSTED,
    "user": Trust.USER,
    "assistant": Trust.USER,  # client-supplied history: as trustworthy as the client, no more
    "tool": Trust.UNTRUSTED,
    "function": Trust.UNTRUSTED,
}

_ROLE_PROVENANCE = {role: Provenance(role) for role in _ROLE_TRUST}  # frozen: shared by every message


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a chat completions request body and label everything the model reads."""
    validate_request(body)
    labels = Labeller()
    tool_names = _tool_call_names(body["messages"])
    for i, message in enumerate(body["messages"]):
        _message(message, ("messages", i), tool_names, labels)
    tools = [_tool_spec(t) for t in body.get("tools") or ()]
    tools += [_legacy_spec(f) for f in body.get("functions") or ()]
    for i, entry in enumerate(body.get("tools") or ()):
        _tool_texts(entry.get("function") or {}, ("tools", i, "function"), labels)
    for i, entry in enumerate(body.get("functions") or ()):
        _tool_texts(entry, ("functions", i), labels)
    _response_format(body.get("response_format"), labels)
    _prediction(body.get("prediction"), labels)
    top_level(body, KNOWN_PARAMS, labels)
    return labels.conversation(API, VENDOR, body, tuple(tools), _history_calls(body["messages"]))


def render(conv: Conversation) -> dict[str, Any]:
    """The body to forward: the client's JSON with rewritten texts/tools, markup removed."""
    return jsonpath.rewritten(conv, _tool_names, _write_tools, _write_inserts)


def _tool_names(body: dict[str, Any]) -> list[Any]:
    tools = [(t.get("function") or {}).get("name") for t in body.get("tools") or ()]
    return tools + [f.get("name") for f in body.get("functions") or ()]


def _write_inserts(body: dict[str, Any], conv: Conversation) -> None:
    for at, message in reversed(_inserts(conv)):  # back to front, so earlier positions stay valid
        body["messages"].insert(at, message)


def is_unchanged(conv: Conversation) -> bool:
    return render(conv) is conv.raw


def _message(message: dict[str, Any], at: Path, tool_names: dict[str, str], labels: Labeller) -> None:
    role = message["role"]
    trust, prov = _ROLE_TRUST[role], _provenance(message, tool_names)
    content = message.get("content")
    if isinstance(content, str):
        labels.text((*at, "content"), content, trust, prov, role)
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _part(part, (*at, "content", j), trust, prov, role, labels)
    if isinstance(message.get("refusal"), str):
        labels.text((*at, "refusal"), message["refusal"], trust, prov, role)
    # Earlier calls are history the model reads; "assistant" provenance never vouches for arguments.
    for k, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        if isinstance(fn.get("arguments"), str):
            labels.text((*at, "tool_calls", k, "function", "arguments"), fn["arguments"], trust, prov, role)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        labels.text((*at, "function_call", "arguments"), legacy["arguments"], trust, prov, role)
    if message.get("audio") is not None:
        labels.opaque("audio", trust, prov, (*at, "audio"))


def _part(part: dict[str, Any], at: Path, trust: Trust, prov: Provenance, role: str, labels: Labeller) -> None:
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        labels.text((*at, "text"), part["text"], trust, prov, role)
    elif kind == "refusal" and isinstance(part.get("refusal"), str):
        labels.text((*at, "refusal"), part["refusal"], trust, prov, role)
    elif kind in _OPAQUE_PARTS:
        # An image or file in a tool result is retrieved content: it taints like retrieved text.
        labels.opaque(_OPAQUE_PARTS[kind], trust, prov, at)
    else:
        labels.unknown(at, f"content part type {kind!r} is not one guardproxy can inspect", part)


def _provenance(message: dict[str, Any], tool_names: dict[str, str]) -> Provenance:
    role = message["role"]
    if role == "tool":
        call_id = message.get("tool_call_id")
        return Provenance("tool_result", tool_names.get(call_id or "", message.get("name")), call_id)
    if role == "function":
        return Provenance("tool_result", message.get("name"))
    return _ROLE_PROVENANCE[role]


def _tool_texts(fn: dict[str, Any], at: Path, labels: Labeller) -> None:
    """A tool's description and parameter schema are text the model reads and follows."""
    prov = Provenance("tool_definition", fn.get("name"))
    if isinstance(fn.get("description"), str):
        labels.text((*at, "description"), fn["description"], Trust.USER, prov, "tools")
    if fn.get("parameters") is not None:
        labels.leaves(fn["parameters"], (*at, "parameters"), Trust.USER, prov, "tools", skip=_SCHEMA_SKIP)


def _response_format(fmt: Any, labels: Labeller) -> None:
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    schema = fmt.get("json_schema")
    if isinstance(schema, dict):
        prov = Provenance("response_format", schema.get("name"))
        labels.leaves(schema, ("response_format", "json_schema"), Trust.USER, prov, "response_format",
                      skip=_SCHEMA_SKIP, root_skip=frozenset({"name", "strict"}))


def _prediction(prediction: Any, labels: Labeller) -> None:
    """Predicted output is text the model reads (it steers the answer): scanned as the client's."""
    if not isinstance(prediction, dict):
        return
    content, prov = prediction.get("content"), Provenance("prediction")
    if isinstance(content, str):
        labels.text(("prediction", "content"), content, Trust.USER, prov, "prediction")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _part(part, ("prediction", "content", j), Trust.USER, prov, "prediction", labels)


def _history_calls(messages: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    """The calls assistant turns made: provenance asks which record a tool result came from."""
    return tuple(
        ToolCall(str(call["id"]), str(fn["name"]), str(fn.get("arguments") or ""))
        for m in messages for call in m.get("tool_calls") or ()
        if call.get("id") and (fn := call.get("function") or {}).get("name")
    )


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


def _legacy_spec(entry: dict[str, Any]) -> ToolSpec:
    """A legacy `functions` entry: scoped and judged exactly like a tool."""
    return ToolSpec(
        name=entry.get("name", ""),
        description=entry.get("description") or "",
        parameters=entry.get("parameters") or {},
        raw=entry,
        kind=LEGACY,
    )


def _inserts(conv: Conversation) -> list[tuple[int, dict[str, Any]]]:
    """(message position, message) for added segments: after the previous segment's message."""
    out: list[tuple[int, dict[str, Any]]] = []
    at = 0
    for seg in conv.segments:
        if seg.location is not None and seg.location.path[0] == "messages":
            at = int(seg.location.path[1]) + 1
        else:
            out.append((at, {"role": seg.role, "content": seg.text}))
    return out


def _write_tools(body: dict[str, Any], tools: tuple[ToolSpec, ...]) -> None:
    """Replace `tools` (and legacy `functions`) and keep each choice valid for what is left."""
    current = [t for t in tools if t.kind != LEGACY]
    legacy = [t for t in tools if t.kind == LEGACY]
    _write_list(body, "tools", "tool_choice", current, lambda c: (c.get("function") or {}).get("name"))
    _write_list(body, "functions", "function_call", legacy, lambda c: c.get("name"))
    if not current:
        body.pop("parallel_tool_calls", None)


def _write_list(body: dict[str, Any], key: str, choice_key: str, tools: list[ToolSpec],
                chosen: Callable[[dict[str, Any]], Any]) -> None:
    if key not in body and not tools:
        return
    if tools:
        body[key] = [t.raw for t in tools]
    else:
        body.pop(key, None)
    choice = body.get(choice_key)
    if choice is None:
        return
    if not tools:
        body.pop(choice_key)
    elif isinstance(choice, dict) and chosen(choice) not in {t.name for t in tools}:
        body[choice_key] = "auto"


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
