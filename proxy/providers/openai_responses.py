"""OpenAI Responses API requests <-> Conversation, under a closed contract.

Every input item type the model can read has a reader here; any other type is refused with a 400
naming the field. Trust: `instructions` and system / developer messages are the operator's; user
messages and the client's own history (assistant messages, reasoning summaries, past calls) are the
user's; everything retrieved is untrusted with its provenance: `function_call_output`,
`custom_tool_call_output`, results of built-in tools (`file_search_call` results, `mcp_call` output,
`mcp_list_tools` descriptions, `code_interpreter_call` logs, `local_shell_call_output`), and content
the proxy cannot read: images, files, audio, screenshots, `web_search_call` (its pages stay at the
provider), `item_reference`. Such content becomes an empty untrusted segment with its provenance, so
the conversation counts as tainted. `<untrusted>` markup in any text is honoured as in chat.

Segments that do not address a string in the body (that non-text content, earlier turns restored from
the response state) sit under `CONTEXT_ROOT`; `render` never writes them back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from proxy.errors import InvalidRequest
from proxy.model import Conversation, Location, Provenance, Segment, ToolSpec, Trust
from proxy.providers import jsonpath
from proxy.providers.base import RequestParams, WireAPI
from proxy.providers.markup import split_marked
from proxy.providers.openai_responses_output import parse_output, render_output
from proxy.providers.openai_responses_stream import ResponsesCodec

API = "openai.responses"
VENDOR = "openai"
CONTEXT_ROOT = "(context)"  # first path element of segments that are not a string of the body
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "file_search", "code_interpreter",
    "computer_use_preview", "image_generation", "local_shell", "mcp",
})
_ROLE_TRUST = {"system": Trust.TRUSTED, "developer": Trust.TRUSTED, "user": Trust.USER, "assistant": Trust.USER}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_OPAQUE_PARTS = {"input_image": "image", "input_file": "file", "input_audio": "audio"}
_PAST_CALLS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call",
                         "image_generation_call", "mcp_approval_request"})
Path = tuple[str | int, ...]


def _field(path: Path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def _refuse(message: str, path: Path) -> InvalidRequest:
    return InvalidRequest(message, param=_field(path), code="uninspectable_content")


class _Reader:
    """One pass over a request body, collecting segments in reading order."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.call_names: dict[str, str] = {}

    def text(self, path: Path, text: str, role: str, trust: Trust, prov: Provenance) -> None:
        for part, piece in enumerate(split_marked(text)):
            if piece.marked:
                seg_trust, seg_prov = Trust.UNTRUSTED, Provenance("marked", piece.source, prov.tool_call_id)
            else:
                seg_trust, seg_prov = trust, prov
            self.segments.append(Segment(len(self.segments), role, piece.text, seg_trust, seg_prov,
                                         Location(path, part)))

    def opaque(self, path: Path, role: str, prov: Provenance) -> None:
        """Content the proxy cannot read: it taints the conversation and keeps its provenance."""
        where = Location((CONTEXT_ROOT, *path))
        self.segments.append(Segment(len(self.segments), role, "", Trust.UNTRUSTED, prov, where))

    def content(self, path: Path, content: Any, role: str, trust: Trust, prov: Provenance) -> None:
        """A message / tool output `content`: a string or a list of parts."""
        if content is None:
            return
        if isinstance(content, str):
            self.text(path, content, role, trust, prov)
            return
        if not isinstance(content, list):
            raise _refuse(f"{_field(path)} must be a string or an array of content parts", path)
        for j, part in enumerate(content):
            at = (*path, j)
            kind = _word(part.get("type")) if isinstance(part, dict) else None
            if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
                self.text((*at, "text"), part["text"], role, trust, prov)
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                self.text((*at, "refusal"), part["refusal"], role, trust, prov)
            elif kind in _OPAQUE_PARTS:
                source = _source(part)
                self.opaque(at, role, Provenance(_OPAQUE_PARTS[str(kind)], source, prov.tool_call_id))
            else:
                raise _refuse(f"unsupported content part type {kind!r} at {_field(at)}; supported: "
                              f"{', '.join(sorted(_TEXT_PARTS | set(_OPAQUE_PARTS) | {'refusal'}))}",
                              (*at, "type"))

    def item(self, i: int, item: Any) -> None:
        at: Path = ("input", i)
        if not isinstance(item, dict):
            raise _refuse(f"input[{i}] must be an object", at)
        kind = _word(item.get("type", "message" if "role" in item else None))
        reader = _ITEMS.get(str(kind))
        if reader is None:
            raise _refuse(f"unsupported input item type {kind!r} at input[{i}]; guardproxy refuses shapes it "
                          f"cannot inspect (supported: {', '.join(sorted(_ITEMS))})", (*at, "type"))
        reader(self, at, item)


def _word(value: Any) -> str | None:
    """A type / role field as a string, or None: a list or object there is refused, not a crash."""
    return value if isinstance(value, str) else None


def _array(value: Any) -> list[Any]:
    """A list field, or nothing: a hostile scalar where a list belongs is not read (and not a 500)."""
    return value if isinstance(value, list) else []


def _source(part: dict[str, Any]) -> str | None:
    for key in ("image_url", "file_url", "file_id", "filename"):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value if not value.startswith("data:") else "inline data"
    return "inline data" if part.get("file_data") or part.get("input_audio") else None


def _message(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    role = _word(item.get("role"))
    if role not in _ROLE_TRUST:
        raise _refuse(f"{_field(at)}.role must be one of {', '.join(_ROLE_TRUST)}; got {role!r}", (*at, "role"))
    r.content((*at, "content"), item.get("content"), str(role), _ROLE_TRUST[str(role)], Provenance(str(role)))


def _past_call(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    """The model's own earlier call, sent back as history: remembered so outputs are named."""
    name = item.get("name")
    if isinstance(name, str):
        r.call_names[str(item.get("call_id") or item.get("id"))] = name
        if item.get("type") == "mcp_approval_request":
            r.call_names[str(item.get("id"))] = f"mcp:{item.get('server_label')}/{name}"


def _tool_output(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    call_id = item.get("call_id")
    name = r.call_names.get(str(call_id))
    prov = Provenance("tool_result", name, call_id if isinstance(call_id, str) else None)
    output = item.get("output")
    if isinstance(output, dict):  # computer_call_output: a screenshot
        r.opaque((*at, "output"), "tool", dataclasses.replace(prov, kind="image"))
    else:
        r.content((*at, "output"), output, "tool", Trust.UNTRUSTED, prov)


def _reasoning(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    for k, part in enumerate(_array(item.get("summary"))):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            r.text((*at, "summary", k, "text"), part["text"], "assistant", Trust.USER, Provenance("assistant"))


def _hosted_result(kind: str) -> Any:
    """Results of a tool the provider ran: untrusted, whatever text the proxy can see of them."""

    def read(r: _Reader, at: Path, item: dict[str, Any]) -> None:
        label = item.get("server_label")
        source = f"mcp:{label}/{item.get('name')}" if kind == "mcp_call" else kind.removesuffix("_call")
        prov = Provenance("tool_result", source, item.get("id") if isinstance(item.get("id"), str) else None)
        texts = list(_hosted_texts(kind, item, at))
        for path, text in texts:
            r.text(path, text, "tool", Trust.UNTRUSTED, prov)
        if not texts:
            r.opaque(at, "tool", prov)

    return read


def _hosted_texts(kind: str, item: dict[str, Any], at: Path) -> Iterator[tuple[Path, str]]:
    if kind == "file_search_call":
        for k, result in enumerate(_array(item.get("results"))):
            if isinstance(result, dict) and isinstance(result.get("text"), str):
                yield (*at, "results", k, "text"), result["text"]
    elif kind == "mcp_call":
        for key in ("output", "error"):
            if isinstance(item.get(key), str):
                yield (*at, key), item[key]
    elif kind == "mcp_list_tools":
        for k, tool in enumerate(_array(item.get("tools"))):
            if isinstance(tool, dict) and isinstance(tool.get("description"), str):
                yield (*at, "tools", k, "description"), tool["description"]
    elif kind == "code_interpreter_call":
        for k, out in enumerate(_array(item.get("outputs"))):
            if isinstance(out, dict) and isinstance(out.get("logs"), str):
                yield (*at, "outputs", k, "logs"), out["logs"]


def _approval_response(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    if isinstance(item.get("reason"), str):
        r.text((*at, "reason"), item["reason"], "user", Trust.USER, Provenance("user"))


def _reference(r: _Reader, at: Path, item: dict[str, Any]) -> None:
    # An item the provider stored: the proxy cannot see what it says, so it counts as untrusted.
    r.opaque(at, "tool", Provenance("item_reference", str(item.get("id"))))


_ITEMS: dict[str, Any] = {
    "message": _message, "function_call_output": _tool_output, "custom_tool_call_output": _tool_output,
    "computer_call_output": _tool_output, "local_shell_call_output": _tool_output, "reasoning": _reasoning,
    "web_search_call": _hosted_result("web_search_call"), "file_search_call": _hosted_result("file_search_call"),
    "mcp_call": _hosted_result("mcp_call"), "mcp_list_tools": _hosted_result("mcp_list_tools"),
    "code_interpreter_call": _hosted_result("code_interpreter_call"),
    "mcp_approval_response": _approval_response, "item_reference": _reference,
    **dict.fromkeys(_PAST_CALLS, _past_call),
}


def read_items(items: list[Any]) -> list[Segment]:
    """Segments of output items (a reply the proxy will remember): anything unreadable is untrusted."""
    r = _Reader()
    for i, item in enumerate(items):
        try:
            r.item(i, item)
        except InvalidRequest:
            r.opaque(("output", i), "tool", Provenance("unreadable_item", str(item.get("type"))
                                                       if isinstance(item, dict) else None))
    return r.segments


def tool_name(entry: dict[str, Any]) -> str:
    """The name a key's policy knows a tool by: its own name, a hosted tool's type, `mcp:<label>`."""
    kind = entry.get("type")
    if not isinstance(kind, str):
        return str(entry.get("name"))
    if kind == "mcp":
        return f"mcp:{entry.get('server_label')}"
    if kind in HOSTED_TOOLS:
        return str(kind).removesuffix("_preview_2025_03_11").removesuffix("_preview")
    return str(entry.get("name"))


def _tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    raw = body.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _refuse("tools must be an array", ("tools",))
    specs = []
    for k, entry in enumerate(raw):
        kind = _word(entry.get("type")) if isinstance(entry, dict) else None
        if kind in ("function", "custom"):
            if not isinstance(entry.get("name"), str) or not entry["name"]:
                raise _refuse(f"tools[{k}].name is required", ("tools", k, "name"))
        elif kind not in HOSTED_TOOLS:
            raise _refuse(f"unsupported tool type {kind!r} at tools[{k}]", ("tools", k, "type"))
        entry = dict(entry)
        specs.append(ToolSpec(name=tool_name(entry), description=str(entry.get("description") or ""),
                              parameters=entry.get("parameters") or {}, raw=entry))
    return tuple(specs)


def parse(body: dict[str, Any]) -> Conversation:
    """Validate a Responses request and label every text the model will read."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model is required and must be a string", param="model", code="missing_model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    r = _Reader()
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        r.text(("instructions",), instructions, "system", Trust.TRUSTED, Provenance("system"))
    elif instructions is not None:
        raise _refuse("instructions must be a string", ("instructions",))
    _prompt_variables(r, body.get("prompt"))
    raw = body.get("input")
    if isinstance(raw, str):
        r.text(("input",), raw, "user", Trust.USER, Provenance("user"))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            r.item(i, item)
    elif raw is not None:
        raise _refuse("input must be a string or an array of input items", ("input",))
    return Conversation(api=API, vendor=VENDOR, model=body["model"], stream=stream, segments=tuple(r.segments),
                        tools=_tools(body), raw=body)


def _prompt_variables(r: _Reader, prompt: Any) -> None:
    """A stored prompt's variables are the caller's words (or files) spliced into the operator's prompt."""
    if prompt is None:
        return
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    for key, value in (variables or {}).items() if isinstance(variables, dict) else ():
        at: Path = ("prompt", "variables", key)
        if isinstance(value, str):
            r.text(at, value, "user", Trust.USER, Provenance("user"))
        else:
            r.content(("prompt", "variables"), [value] if isinstance(value, dict) else value, "user", Trust.USER,
                      Provenance("user"))


def render(conv: Conversation) -> dict[str, Any]:
    """The body to forward: the client's JSON with rewritten texts / tools, context segments left out."""
    body_only = conv.with_segments([s for s in conv.segments if not _in_context(s)])
    return jsonpath.rewritten(body_only, _tool_names, _write_tools, _write_inserts)


def _tool_names(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    return [tool_name(t) for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def _in_context(seg: Segment) -> bool:
    return seg.location is not None and seg.location.path[:1] == (CONTEXT_ROOT,)


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
    elif isinstance(choice, dict) and tool_name(choice) not in names | {"None"}:
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
