"""Argument provenance: can a tool call's security-relevant values be traced to trusted text?

Once a conversation carries untrusted content, a side-effecting call is let through only if each
of its sensitive argument values appears in operator (`trusted`) or user text, or in a result
field of a tool the policy declares authoritative for that argument (a directory, the user's
contacts). A recipient that appears only inside a retrieved document is an attacker's choice.
Pure functions over the data model; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxy.model import Conversation, Segment, ToolCall, Trust
from proxy.policy.spec import Policy, ToolRule

MAX_VALUES = 64  # values inspected per call; a call with more is judged on the first ones


@dataclass(frozen=True, slots=True)
class Untraced:
    arg: str
    value: str
    seen_in: tuple[str, ...]  # provenance of untrusted segments that contain it ("" when nowhere)


def untraced_arguments(call: ToolCall, rule: ToolRule, conv: Conversation, policy: Policy) -> list[Untraced]:
    """Every sensitive (arg, value) of `call` that no trusted, user or authoritative text vouches for."""
    out = []
    for arg, value in sensitive_values(call, rule):
        if not _traced(arg, value, conv, policy):
            out.append(Untraced(arg, value, _untrusted_sources(value, conv)))
    return out


def sensitive_values(call: ToolCall, rule: ToolRule) -> list[tuple[str, str]]:
    """(arg, string value) pairs to check; nested lists and objects are flattened."""
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        # Unparseable arguments cannot be vouched for: treat the whole text as one value.
        return [("*", call.arguments)]
    if not isinstance(args, dict):
        return [("*", json.dumps(args))]
    names = rule.sensitive_args if rule.sensitive_args is not None else tuple(args)
    pairs = [(n, v) for n in names if n in args for v in _strings(args[n])]
    return [(n, v) for n, v in pairs if v.strip()][:MAX_VALUES]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _traced(arg: str, value: str, conv: Conversation, policy: Policy) -> bool:
    needle = _norm(value)
    for seg in conv.segments:
        if seg.trust in (Trust.TRUSTED, Trust.USER) and seg.provenance.kind != "assistant":
            if needle in _norm(seg.text):
                return True
        elif seg.trust is Trust.UNTRUSTED and _authoritative(seg, arg, needle, policy):
            return True
    return False


def _authoritative(seg: Segment, arg: str, needle: str, policy: Policy) -> bool:
    """Is `needle` in a field this segment's tool is declared authoritative for?"""
    if seg.provenance.kind != "tool_result" or not seg.provenance.source:
        return False
    fields = policy.tool(seg.provenance.source).trusted_source_for.get(arg)
    if not fields:
        return False
    if "*" in fields:
        return needle in _norm(seg.text)
    return any(needle in _norm(v) for v in field_values(seg.text, set(fields)))


def field_values(text: str, fields: set[str]) -> Iterator[str]:
    """Values of the named fields in a tool result: JSON keys anywhere, else `Field: value` lines."""
    wanted = {f.casefold() for f in fields}
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if isinstance(data, dict | list):
        yield from _json_fields(data, wanted)
        return
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().casefold() in wanted:
            yield value.strip()


def _json_fields(data: Any, wanted: set[str]) -> Iterator[str]:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if str(k).casefold() in wanted:
                    yield from _strings(v)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


def _untrusted_sources(value: str, conv: Conversation) -> tuple[str, ...]:
    needle = _norm(value)
    return tuple(
        f"{s.provenance.kind}:{s.provenance.source or '?'}"
        for s in conv.untrusted()
        if needle in _norm(s.text)
    )
