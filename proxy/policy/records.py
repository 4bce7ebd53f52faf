"""Fields of a tool result: (key, value) pairs read from the formats tools actually return.

JSON, YAML (mappings, and lists of `- email: ...` items), Python reprs of dicts and lists,
`Key: value` lines and pipe tables with a header row. Keys are compared lower-cased; a nested
value is reachable by its own key and by its dotted path (`participants.email`); every element
of a list counts under the list's key. Bounded and linear: each parser walks its input once,
shared YAML aliases are visited once, and a result yields at most `MAX_FIELDS` pairs (a vouch
that would need more is not made, which is the safe side).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

MAX_FIELDS = 100_000
_KEY_LINE = re.compile(r"(?:[-*]\s+)?([A-Za-z][\w .\-]{0,40}?)\s*:\s+(\S.*)")  # on a stripped line
_TABLE_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?")


def fields(text: str) -> Iterator[tuple[str, str]]:
    """(key, scalar value) pairs of a result, from the first format that reads it as a structure."""
    data = structured(text)
    if data is not None:
        yield from _limited(_walk(data))
        return
    yield from _limited(_lines(text))


def structured(text: str) -> Any:
    """The result as a JSON / Python-literal / YAML structure, or None when it is prose."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[0] in "[{":
        for parse in (json.loads, ast.literal_eval):
            try:
                data = parse(stripped)
            except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
                continue
            if isinstance(data, dict | list):
                return data
    if ":" not in stripped:
        return None
    try:
        data = yaml.safe_load(stripped)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    # A one-line "Invoice: 2211 from ..." is a mapping too, but prose with a colon in it is a
    # string or a mapping whose values are prose: only mappings and lists count as records.
    return data if isinstance(data, dict | list) else None


def _walk(data: Any) -> Iterator[tuple[str, str]]:
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict | list):
            if id(item) in seen:  # a YAML alias: one object reachable twice
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            for k, v in item.items():
                key = str(k).strip().lower()
                stack.append((f"{path}.{key}" if path else key, v))
        elif isinstance(item, list):
            stack.extend((path, v) for v in reversed(item))
        elif path and isinstance(item, str | int | float) and not isinstance(item, bool):
            value = str(item)
            yield path.rsplit(".", 1)[-1], value
            if "." in path:
                yield path, value


def _lines(text: str) -> Iterator[tuple[str, str]]:
    """`Key: value` lines anywhere, and rows of pipe tables under their header's column names."""
    header: list[str] | None = None
    previous = ""
    for line in text.splitlines():
        if "|" in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if _TABLE_RULE.fullmatch(line.strip()):
                header = [c.strip().lower() for c in previous.strip().strip("|").split("|")]
            elif header is not None and len(cells) == len(header):
                yield from ((k, v) for k, v in zip(header, cells, strict=True) if k and v)
            previous = line
            continue
        header = None
        previous = line
        m = _KEY_LINE.fullmatch(line.strip())
        if m:
            yield m.group(1).strip().lower(), m.group(2)


def _limited(pairs: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for n, pair in enumerate(pairs):
        if n >= MAX_FIELDS:
            return
        yield pair
