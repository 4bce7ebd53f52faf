"""Addressing strings inside a request body by path, so rewritten segments can be put back.

Shared by the adapters: a Segment's Location names the string it came from; `text_changes` finds
the strings whose segments no longer join to the original, and `get`/`put` read and write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.model import Conversation, ToolSpec

Path = tuple[str | int, ...]


def get(body: Any, path: Path) -> Any:
    for key in path:
        body = body[key]
    return body


def put(body: Any, path: Path, value: Any) -> None:
    get(body, path[:-1])[path[-1]] = value


def copy_tree(value: Any) -> Any:
    """A deep copy of a parsed JSON value (dicts, lists, immutable leaves): the same result as
    `copy.deepcopy` without its memo and dispatch, which cost more than the rewrite itself."""
    if isinstance(value, dict):
        return {k: copy_tree(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) if isinstance(v, dict | list) else v for v in value]
    return value


def text_changes(conv: Conversation) -> list[tuple[Path, str]]:
    """(path, new string) for every string whose segments no longer join to the original."""
    parts: dict[Path, list[tuple[int, str]]] = {}
    for s in conv.segments:  # grouped by path wherever they sit: a guard may have reordered them
        if s.location is not None and not s.location.scan_only:
            parts.setdefault(s.location.path, []).append((s.location.part, s.text))
    changes = []
    for path, pieces in parts.items():
        text = "".join(t for _, t in sorted(pieces))
        if get(conv.raw, path) != text:
            changes.append((path, text))
    return changes


def rewritten(
    conv: Conversation,
    tool_names: Callable[[dict[str, Any]], list[Any]],
    write_tools: Callable[[dict[str, Any], tuple[ToolSpec, ...]], None],
    write_added: Callable[[dict[str, Any], Conversation], None],
) -> dict[str, Any]:
    """The body to forward, for any wire format: the very `conv.raw` object when nothing changed
    (so the upstream gets the client's bytes), else a copy with texts, tools and added segments
    written back by the format's own writers.

    The copy is made where it is written, never a whole-tree copy: the top-level object, its lists
    and their objects (a message, a tool) are the body's own, so a writer may set keys and insert
    items down to a message's own keys (`body["messages"][i]["content"] = ...`); deeper, it must
    replace a value, never change it in place. A rewritten string's containers are copied along
    its path. Everything else is shared with `conv.raw`, which nothing changes."""
    body = conv.raw
    changes = text_changes(conv)
    tools_changed = [t.name for t in conv.tools] != tool_names(body)
    added = any(s.location is None for s in conv.segments)
    if not changes and not tools_changed and not added:
        return body
    body, owned = _writable(body)
    for path, text in changes:
        _put_owned(body, path, text, owned)
    if tools_changed:
        write_tools(body, conv.tools)
    if added:
        write_added(body, conv)
    return body


def _writable(raw: dict[str, Any]) -> tuple[dict[str, Any], set[int]]:
    """A copy of `raw` down to the objects in its top-level lists; the ids of the copies made."""
    body = raw.copy()
    owned = {id(body)}
    for key, value in raw.items():
        if isinstance(value, list):
            value = [item.copy() if isinstance(item, dict) else item for item in value]
            owned.update(id(item) for item in value if isinstance(item, dict))
        elif isinstance(value, dict):
            value = value.copy()
        else:
            continue
        body[key] = value
        owned.add(id(value))
    return body, owned


def _put_owned(body: Any, path: Path, value: Any, owned: set[int]) -> None:
    """put(), copying each container on the way that is still shared with the client's body."""
    node = body
    for key in path[:-1]:
        child = node[key]
        if id(child) not in owned:
            child = child.copy()
            node[key] = child
            owned.add(id(child))
        node = child
    node[path[-1]] = value
