"""Responses API input items -> labelled text, through the shared Labeller.

Every input item type the model can read has a reader here. Trust: system / developer messages are
the operator's; user messages and the client's own history (assistant messages, reasoning
summaries, past calls) are the user's; everything retrieved is untrusted with its provenance:
`function_call_output`, `custom_tool_call_output`, `computer_call_output`, `local_shell_call_output`,
`shell_call_output`, `apply_patch_call_output`, results of built-in tools (`file_search_call`
results, `mcp_call` output, `mcp_list_tools` descriptions, `code_interpreter_call` logs,
`tool_search_output` tool definitions), and content the proxy cannot read (images, files, audio,
screenshots, `web_search_call`, `item_reference`, compaction items).

Content the proxy cannot read is recorded twice, on purpose: as an `Opaque` entry (the coverage
ledger lists it as not inspected) and as an empty untrusted segment under `CONTEXT_ROOT` (it taints
the conversation, carries its provenance into tool-scope reasons, and is remembered for the next
turn). An item type, content part or shape no reader knows goes to `Labeller.unknown`: refused
unless the operator passes unknown shapes, then passed unread and listed in the ledger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from proxy.errors import InvalidRequest
from proxy.model import Provenance, Trust
from proxy.providers.labels import CONTEXT_ROOT, STRUCTURAL, Labeller, Path

ROLE_TRUST = {"system": Trust.TRUSTED, "developer": Trust.TRUSTED, "user": Trust.USER, "assistant": Trust.USER}
# Keys that are structure in a tool definition or JSON schema, not prose the model reads.
SCHEMA_SKIP = frozenset({"type", "format", "$ref", "additionalProperties", "required", "pattern"})
TOOL_STRUCTURE = STRUCTURAL | SCHEMA_SKIP
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_OPAQUE_PARTS = {"input_image": "image", "input_file": "file", "input_audio": "audio"}
# The model's own earlier calls, sent back as history: their arguments are the client's history.
_PAST_CALLS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call",
                         "apply_patch_call", "image_generation_call", "mcp_approval_request", "tool_search_call"})
_CALL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output", "computer_call_output",
                           "local_shell_call_output", "shell_call_output", "apply_patch_call_output"})


def field(path: Path) -> str:
    """A path as OpenAI names a parameter: `input[3].content[0].type`."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def refuse(message: str, path: Path) -> InvalidRequest:
    """A malformed field (not an unknown shape): refused whatever the operator's setting."""
    return InvalidRequest(message, param=field(path), code="uninspectable_content")


def word(value: Any) -> str | None:
    """A type / role field as a string, or None: a list or object there is refused, not a crash."""
    return value if isinstance(value, str) else None


def _array(value: Any) -> list[Any]:
    """A list field, or nothing: a hostile scalar where a list belongs is not read (and not a 500)."""
    return value if isinstance(value, list) else []


class ItemReader:
    """One pass over a request's items, reporting every text and non-text part to a Labeller."""

    def __init__(self, labels: Labeller) -> None:
        self.labels = labels
        self.call_names: dict[str, str] = {}

    def text(self, path: Path, text: str, role: str, trust: Trust, prov: Provenance) -> None:
        self.labels.text(path, text, trust, prov, role)

    def opaque(self, path: Path, role: str, prov: Provenance) -> None:
        """Content the proxy cannot read: listed as not inspected, and it taints with its provenance."""
        self.labels.opaque(prov.kind, Trust.UNTRUSTED, prov, path)
        self.labels.text((CONTEXT_ROOT, *path), "", Trust.UNTRUSTED, prov, role)

    def content(self, path: Path, content: Any, role: str, trust: Trust, prov: Provenance) -> None:
        """A message / tool output `content`: a string or a list of parts."""
        if content is None:
            return
        if isinstance(content, str):
            self.text(path, content, role, trust, prov)
            return
        if not isinstance(content, list):
            raise refuse(f"{field(path)} must be a string or an array of content parts", path)
        for j, part in enumerate(content):
            self.part((*path, j), part, role, trust, prov)

    def part(self, at: Path, part: Any, role: str, trust: Trust, prov: Provenance) -> None:
        kind = word(part.get("type")) if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            self.text((*at, "text"), part["text"], role, trust, prov)
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            self.text((*at, "refusal"), part["refusal"], role, trust, prov)
        elif kind in _OPAQUE_PARTS:
            self.opaque(at, role, Provenance(_OPAQUE_PARTS[str(kind)], _source(part), prov.tool_call_id))
        else:
            self.labels.unknown(at, f"content part type {kind!r} is not one guardproxy can inspect (it reads "
                                f"{', '.join(sorted(_TEXT_PARTS | set(_OPAQUE_PARTS) | {'refusal'}))})", part)

    def item(self, i: int, item: Any) -> None:
        at: Path = ("input", i)
        if not isinstance(item, dict):
            raise refuse(f"input[{i}] must be an object", at)
        kind = word(item.get("type", "message" if "role" in item else None))
        reader = ITEMS.get(str(kind))
        if reader is None:
            self.labels.unknown(at, f"input item type {kind!r} is not one guardproxy can inspect", item)
            return
        reader(self, at, item)


def _source(part: dict[str, Any]) -> str | None:
    for key in ("image_url", "file_url", "file_id", "filename"):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value if not value.startswith("data:") else "inline data"
    return "inline data" if part.get("file_data") or part.get("input_audio") else None


def _message(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    role = word(item.get("role"))
    if role not in ROLE_TRUST:
        raise refuse(f"{field(at)}.role must be one of {', '.join(ROLE_TRUST)}; got {role!r}", (*at, "role"))
    r.content((*at, "content"), item.get("content"), str(role), ROLE_TRUST[str(role)], Provenance(str(role)))


def _past_call(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    """The model's own earlier call, sent back as history: remembered so outputs are named; its
    arguments are history the model reads (the client's, vouching for nothing)."""
    name, kind = item.get("name"), item.get("type")
    if isinstance(name, str):
        r.call_names[str(item.get("call_id") or item.get("id"))] = name
        if kind == "mcp_approval_request":
            r.call_names[str(item.get("id"))] = f"mcp:{item.get('server_label')}/{name}"
    elif isinstance(kind, str) and isinstance(item.get("call_id"), str):
        r.call_names[item["call_id"]] = kind.removesuffix("_call")  # shell, apply_patch, computer...
    prov = Provenance("assistant")
    for key in ("arguments", "input", "action", "operation"):  # a shell command, a patch: what was run
        value = item.get(key)
        if isinstance(value, str) and value:
            r.text((*at, key), value, "assistant", Trust.USER, prov)
        elif isinstance(value, dict | list):
            r.labels.leaves(value, (*at, key), Trust.USER, prov, "assistant")


def _tool_output(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    # local_shell_call_output names its call by `id`, the others by `call_id`
    call_id = item.get("id") if item.get("type") == "local_shell_call_output" else item.get("call_id")
    name = r.call_names.get(str(call_id))
    prov = Provenance("tool_result", name, call_id if isinstance(call_id, str) else None)
    output = item.get("output")
    if isinstance(output, dict) and output.get("type") == "computer_screenshot":
        r.opaque((*at, "output"), "tool", dataclasses.replace(prov, kind="image"))
    elif item.get("type") == "shell_call_output" and isinstance(output, list):
        for k, chunk in enumerate(output):  # [{stdout, stderr, outcome}]: what the command printed
            if not isinstance(chunk, dict):
                r.labels.unknown((*at, "output", k), "shell output chunk is not an object", chunk)
                continue
            for key in ("stdout", "stderr"):
                if isinstance(chunk.get(key), str) and chunk[key]:
                    r.text((*at, "output", k, key), chunk[key], "tool", Trust.UNTRUSTED, prov)
    elif isinstance(output, dict):
        r.labels.unknown((*at, "output"), f"{item.get('type')} output object is not one guardproxy can inspect",
                         output)
    else:
        r.content((*at, "output"), output, "tool", Trust.UNTRUSTED, prov)


def _reasoning(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    for key in ("summary", "content"):
        for k, part in enumerate(_array(item.get(key))):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                r.text((*at, key, k, "text"), part["text"], "assistant", Trust.USER, Provenance("assistant"))
    if isinstance(item.get("encrypted_content"), str):
        # The model's own earlier reasoning, encrypted by the provider: no guard can read it.
        r.labels.opaque("encrypted", Trust.USER, Provenance("assistant"), (*at, "encrypted_content"))


def hosted_result(kind: str) -> Callable[[ItemReader, Path, dict[str, Any]], None]:
    """Results of a tool the provider ran: untrusted, whatever text the proxy can see of them."""

    def read(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
        label = item.get("server_label")
        source = f"mcp:{label}/{item.get('name')}" if kind == "mcp_call" else kind.removesuffix("_call")
        prov = Provenance("tool_result", source, item.get("id") if isinstance(item.get("id"), str) else None)
        texts = list(_hosted_texts(kind, item, at))
        for path, text in texts:
            r.text(path, text, "tool", Trust.UNTRUSTED, prov)
        tools = _array(item.get("tools"))
        if kind in ("mcp_list_tools", "tool_search_output") and tools:
            # Tool definitions a server listed or a search loaded: the model reads every string in them.
            for k, tool in enumerate(tools):
                r.labels.leaves(tool, (*at, "tools", k), Trust.UNTRUSTED, prov, "tool", skip=TOOL_STRUCTURE)
        elif not texts:
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
    elif kind == "code_interpreter_call":
        for k, out in enumerate(_array(item.get("outputs"))):
            if isinstance(out, dict) and isinstance(out.get("logs"), str):
                yield (*at, "outputs", k, "logs"), out["logs"]


def _approval_response(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    if isinstance(item.get("reason"), str):
        r.text((*at, "reason"), item["reason"], "user", Trust.USER, Provenance("user"))


def _reference(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    # An item the provider stored: the proxy cannot see what it says, so it counts as untrusted.
    r.opaque(at, "tool", Provenance("item_reference", str(item.get("id"))))


def _compaction(r: ItemReader, at: Path, item: dict[str, Any]) -> None:
    # The provider's encrypted summary of earlier turns: unreadable history, so untrusted.
    r.opaque(at, "tool", Provenance("compaction", str(item.get("id")) if item.get("id") else None))


ITEMS: dict[str, Callable[[ItemReader, Path, dict[str, Any]], None]] = {
    "message": _message, "reasoning": _reasoning,
    **dict.fromkeys(_CALL_OUTPUTS, _tool_output),
    **{kind: hosted_result(kind) for kind in ("web_search_call", "file_search_call", "mcp_call", "mcp_list_tools",
                                               "code_interpreter_call", "tool_search_output")},
    "mcp_approval_response": _approval_response, "item_reference": _reference, "compaction": _compaction,
    "compaction_trigger": lambda r, at, item: None,  # a marker asking the provider to compact: no content
    **dict.fromkeys(_PAST_CALLS, _past_call),
}
