"""Addressing strings inside a request body by path, so rewritten segments can be put back.

Shared by the adapters: a Segment's Location names the string it came from; `text_changes` finds
the strings whose segments no longer join to the original, and `get`/`put` read and write them.
"""

from __future__ import annotations

from typing import Any

from proxy.model import Conversation

Path = tuple[str | int, ...]


def get(body: Any, path: Path) -> Any:
    for key in path:
        body = body[key]
    return body


def put(body: Any, path: Path, value: Any) -> None:
    get(body, path[:-1])[path[-1]] = value


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
