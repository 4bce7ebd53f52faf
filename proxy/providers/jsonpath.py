"""Addressing strings inside a request body by path, so rewritten segments can be put back.

Shared by the adapters: a Segment's Location names the string it came from; `text_changes` finds
the strings whose segments no longer join to the original, and `get`/`put` read and write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

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
        if s.location is not None:
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
    written back by the format's own writers."""
    body = conv.raw
    changes = text_changes(conv)
    tools_changed = [t.name for t in conv.tools] != tool_names(body)
    added = any(s.location is None for s in conv.segments)
    if not changes and not tools_changed and not added:
        return body
    body = cast(dict[str, Any], copy_tree(body))
    for path, text in changes:
        put(body, path, text)
    if tools_changed:
        write_tools(body, conv.tools)
    if added:
        write_added(body, conv)
    return body
