"""What a Responses request offers and asks for, beyond its input: tools, `text.format`, `prompt`.

Tool definitions are text the model reads and follows, so they are labelled like chat's (the
client's, provenance `tool_definition`): a function's `description`, every string of its
`parameters` and `output_schema`, a custom tool's `description` and grammar `definition`, a remote
MCP server's `server_description`, `tool_search`'s description and parameters, `web_search`'s
`user_location`. Hosted tools' other settings (vector store ids, containers, MCP `headers` and
`authorization`) configure the provider and never reach the model as text. A tool type this module
does not know, a `namespace` (functions the key's scope could not tell apart) and
`programmatic_tool_calling` (calls made inside a program, out of the proxy's sight) are unknown
shapes: refused unless the operator passes them unread.

`text.format` json_schema: its description and schema strings are the client's text. `prompt`: its
variables are the caller's words (or files) spliced into the operator's stored prompt; the stored
prompt itself lives at the provider, written by the operator in the project whose key the proxy
holds, so it is recorded as trusted content no guard read (the ledger lists it), not as taint.
"""

from __future__ import annotations

from typing import Any

from proxy.model import Provenance, ToolSpec, Trust
from proxy.providers.labels import Labeller, Path
from proxy.providers.openai_responses_items import SCHEMA_SKIP, TOOL_STRUCTURE, ItemReader, refuse, word

HOSTED_TOOLS = frozenset({
    "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11", "file_search",
    "code_interpreter", "computer_use_preview", "computer", "image_generation", "local_shell", "shell", "apply_patch",
    "mcp", "tool_search",
})
_NAMED = frozenset({"function", "custom"})
_DATED = ("_preview_2025_03_11", "_2025_08_26", "_preview")


def tool_name(entry: dict[str, Any]) -> str:
    """The name a key's policy knows a tool by: its own name, a hosted tool's type, `mcp:<label>`."""
    kind = entry.get("type")
    if not isinstance(kind, str):
        return str(entry.get("name"))
    if kind == "mcp":
        return f"mcp:{entry.get('server_label')}"
    if kind in ("computer", "computer_use_preview"):
        return "computer"  # both make the `computer_call`s the client runs
    if kind in HOSTED_TOOLS:
        for suffix in _DATED:
            kind = kind.removesuffix(suffix)
        return kind
    return str(entry.get("name") or kind)


def tools(body: dict[str, Any], labels: Labeller) -> tuple[ToolSpec, ...]:
    """The tools offered, each one's model-visible text labelled; unknown types go to `labels.unknown`."""
    raw = body.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise refuse("tools must be an array", ("tools",))
    specs = []
    for k, entry in enumerate(raw):
        kind = word(entry.get("type")) if isinstance(entry, dict) else None
        at: Path = ("tools", k)
        if not isinstance(entry, dict):
            raise refuse(f"tools[{k}] must be an object", at)
        if kind in _NAMED and (not isinstance(entry.get("name"), str) or not entry["name"]):
            raise refuse(f"tools[{k}].name is required", (*at, "name"))
        if kind in _NAMED or kind in HOSTED_TOOLS:
            _definition(entry, at, str(kind), labels)
        else:
            labels.unknown(at, f"tool type {kind!r} is not one guardproxy can inspect and scope", entry)
        entry = dict(entry)
        specs.append(ToolSpec(name=tool_name(entry), description=str(entry.get("description") or ""),
                              parameters=entry.get("parameters") or {}, raw=entry))
    return tuple(specs)


def _definition(entry: dict[str, Any], at: Path, kind: str, labels: Labeller) -> None:
    prov = Provenance("tool_definition", tool_name(entry))

    def text(key: str) -> None:
        if isinstance(entry.get(key), str) and entry[key]:
            labels.text((*at, key), entry[key], Trust.USER, prov, "tools")

    for key in ("description", "server_description"):
        text(key)
    for key in ("parameters", "output_schema", "user_location"):
        if isinstance(entry.get(key), dict | list):
            labels.leaves(entry[key], (*at, key), Trust.USER, prov, "tools", skip=TOOL_STRUCTURE)
    fmt = entry.get("format")
    if kind == "custom" and isinstance(fmt, dict) and isinstance(fmt.get("definition"), str):
        # A grammar constrains what the model writes; its literals are text it reads.
        labels.text((*at, "format", "definition"), fmt["definition"], Trust.USER, prov, "tools")


def text_format(body: dict[str, Any], labels: Labeller) -> None:
    """A json_schema output format: its description and schema strings are the client's text."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    prov = Provenance("response_format", fmt.get("name") if isinstance(fmt.get("name"), str) else None)
    labels.leaves(fmt, ("text", "format"), Trust.USER, prov, "response_format",
                  skip=SCHEMA_SKIP, root_skip=frozenset({"name", "strict"}))


def prompt(reader: ItemReader, value: Any) -> None:
    """A stored prompt's variables are labelled; the prompt itself is recorded, unread and trusted."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise refuse("prompt must be an object", ("prompt",))
    pid = value.get("id")
    reader.labels.opaque("stored_prompt", Trust.TRUSTED,
                         Provenance("stored_prompt", pid if isinstance(pid, str) else None), ("prompt", "id"))
    variables = value.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise refuse("prompt.variables must be an object", ("prompt", "variables"))
    for key, var in (variables or {}).items():
        at: Path = ("prompt", "variables", key)
        if isinstance(var, str):
            reader.text(at, var, "user", Trust.USER, Provenance("user"))
        else:
            reader.part(at, var, "user", Trust.USER, Provenance("user"))
