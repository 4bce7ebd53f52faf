"""Value references in instructions: `$TOOL.FIELD` stands for a field of TOOL's latest result.

This lets a scenario say "call send_email with to=$read_inbox.from": the simulator copies the
value out of the retrieved content, as a real model would when it acts on what it read. An
instruction whose reference cannot be resolved yet (the tool has not answered) waits. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

PREFIX = "$"
_DECODER = json.JSONDecoder()


def latest_results(turns: Any) -> dict[str, str]:
    """tool name -> text of its latest result, from turns that carry `tool`."""
    out: dict[str, str] = {}
    for turn in turns:
        if getattr(turn, "tool", None):
            out[turn.tool] = turn.text
    return out


def resolve(arguments: Mapping[str, Any], results: Mapping[str, str]) -> dict[str, Any] | None:
    """Arguments with every `$tool.field` replaced, or None while one cannot be resolved."""
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, str) and value.startswith(PREFIX) and "." in value:
            tool, _, field = value[len(PREFIX):].partition(".")
            found = field_value(results.get(tool), field)
            if found is None:
                return None
            out[key] = found
        else:
            out[key] = value
    return out


def field_value(text: str | None, field: str) -> str | None:
    """The first value of `field` in a JSON result (any depth), else a `Field: value` line."""
    if text is None:
        return None
    data = _embedded_json(text)
    if isinstance(data, dict | list):
        return next(_json_values(data, field.casefold()), None)
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().casefold() == field.casefold():
            return value.strip()
    return None


def _embedded_json(text: str) -> Any:
    """The text as JSON, or the first JSON value inside it (results may arrive wrapped in markers)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        return None
    try:
        return _DECODER.raw_decode(text, min(starts))[0]
    except ValueError:
        return None


def _json_values(data: Any, field: str) -> Iterator[str]:
    queue = [data]
    while queue:
        item = queue.pop(0)
        if isinstance(item, dict):
            for k, v in item.items():
                if str(k).casefold() == field and isinstance(v, str | int | float):
                    yield str(v)
                queue.append(v)
        elif isinstance(item, list):
            queue.extend(item)
