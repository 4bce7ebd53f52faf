"""Tool-call arguments as the checks read them: every value of a repeated key, every element.

The model's JSON is parsed keeping each object's key/value pairs in order, so
`{"to": "boss@corp.example", "to": "evil@x.example"}` is checked under both values whichever one
the client's parser keeps.
"""

from __future__ import annotations

import json
from typing import Any


class Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so a repeated key is checked under every value."""


def parse_arguments(text: str) -> Any:
    return json.loads(text or "{}", object_pairs_hook=Pairs)


def strings(value: Any) -> list[str]:
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
        elif isinstance(item, Pairs):
            for k, v in reversed(item):
                if not k.isidentifier():
                    out.append(k)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


def flat(args: Any) -> list[tuple[str, str]]:
    """Top-level (name, string) pairs, nested values flattened under their name; blanks dropped."""
    if not isinstance(args, Pairs):
        return []
    return [(k, s) for k, v in args for s in strings(v) if s.strip()]
