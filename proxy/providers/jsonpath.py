"""Addressing strings inside a request body by path, so rewritten segments can be put back.

Shared by the adapters: a Segment's Location names the string it came from; `text_changes` finds
the strings whose segments no longer join to the original, and `get`/`put` read and write them.
"""

from __future__ import annotations

from itertools import groupby
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
    located = [s for s in conv.segments if s.location is not None]
    changes = []
    for path, group in groupby(located, key=lambda s: s.location.path):  # type: ignore[union-attr]
        text = "".join(s.text for s in sorted(group, key=lambda s: s.location.part))  # type: ignore[union-attr]
        if get(conv.raw, path) != text:
            changes.append((path, text))
    return changes
