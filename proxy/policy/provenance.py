"""Argument provenance: can a tool call's security-relevant values be traced to trusted text?

Once a conversation carries untrusted content, a side-effecting call is let through only if each
of its sensitive argument values is vouched for: its canonical tokens (`proxy.policy.canon`) occur
whole in operator (`trusted`) or user text, or equal a field of a tool result the policy declares
authoritative for that (tool, argument) (a directory, the user's contacts). A recipient that
appears only inside a retrieved document is an attacker's choice. Every element of a list or
nested object is checked, however many there are. Pure functions over the data model; no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxy.model import Conversation, Segment, ToolCall, ToolSpec, Trust
from proxy.policy import canon
from proxy.policy.canon import Token, Tokens
from proxy.policy.records import fields
from proxy.policy.spec import SENDER_FIELDS, Policy, ToolRule

# Client text that still cannot vouch: the model's own history, and tool definitions (an MCP
# server's description is the attacker's when the server is).
_NO_VOUCH = frozenset({"assistant", "tool_definition"})


@dataclass(frozen=True, slots=True)
class Untraced:
    arg: str
    value: str
    seen_in: tuple[str, ...]  # provenance of untrusted segments that contain it ("" when nowhere)


def untraced_arguments(call: ToolCall, rule: ToolRule, conv: Conversation, policy: Policy) -> list[Untraced]:
    """Every sensitive (arg, value) of `call` that no trusted, user or authoritative text vouches for."""
    return Tracer.of(conv, policy).untraced(call, rule)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so a repeated key is checked under every value."""


def parse_arguments(text: str) -> Any:
    return json.loads(text or "{}", object_pairs_hook=_Pairs)


def sensitive_values(call: ToolCall, rule: ToolRule, spec: ToolSpec | None = None) -> list[tuple[str, str]]:
    """(arg, string value) pairs to check: every element of nested lists and objects, and the keys
    of nested objects that are not plain identifiers (a recipient can ride in a key)."""
    try:
        args = parse_arguments(call.arguments)
    except (json.JSONDecodeError, RecursionError):
        # Unparseable arguments cannot be vouched for: treat the whole text as one value.
        return [("*", call.arguments)]
    if not isinstance(args, _Pairs):
        return [("*", call.arguments)]
    names = checked_names([k for k, _ in args], rule, spec)
    return [(k, s) for k, v in args if k in names for s in _strings(v) if s.strip()]


def checked_names(names: list[str], rule: ToolRule, spec: ToolSpec | None) -> set[str]:
    """Argument names compared exactly as declared: a name that differs from a sensitive one only
    in case or punctuation (`To`, `t_o`), that is not ASCII, or that the tool's schema does not
    declare, is checked as if it were sensitive."""
    if rule.sensitive_args is None:
        return set(names)
    sensitive = set(rule.sensitive_args)
    folded = {_fold(s) for s in sensitive}
    declared = _declared(spec)
    return {n for n in names if n in sensitive or _fold(n) in folded or not n.isascii()
            or (declared is not None and n not in declared)}


def _fold(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _declared(spec: ToolSpec | None) -> set[str] | None:
    props = spec.parameters.get("properties") if spec is not None else None
    return set(props) if isinstance(props, dict) and props else None


def _strings(value: Any) -> list[str]:
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
        elif isinstance(item, _Pairs):
            for k, v in reversed(item):
                if not k.isidentifier():
                    out.append(k)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


@dataclass
class Tracer:
    """One conversation's vouching texts, indexed once and shared by every call in a response."""

    conv: Conversation
    policy: Policy
    _trusted: Tokens | None = None
    _untrusted: dict[int, Tokens] = field(default_factory=dict)
    _fields: dict[int, list[tuple[str, tuple[Token, ...]]]] = field(default_factory=dict)
    budget: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def of(cls, conv: Conversation, policy: Policy) -> Tracer:
        tracer = cls(conv, policy)
        # Comparisons allowed for multi-token values: linear in the conversation's size.
        tracer.budget[0] = 8 * conv.char_count() + 10_000
        return tracer

    def untraced(self, call: ToolCall, rule: ToolRule) -> list[Untraced]:
        spec = next((t for t in self.conv.tools if t.name == call.name), None)
        out = []
        for arg, value in sensitive_values(call, rule, spec):
            tokens = canon.canonical(value)
            if not self.vouched(call.name, arg, tokens):
                out.append(Untraced(arg, value, self.seen_in(tokens)))
        return out

    def vouched(self, tool: str, arg: str, tokens: tuple[Token, ...]) -> bool:
        if not tokens:  # nothing comparable (only punctuation): cannot be traced
            return False
        if self.trusted().contains(tokens, self.budget):
            return True
        return any(self._authoritative(seg, tool, arg, tokens) for seg in self._results())

    def trusted(self) -> Tokens:
        if self._trusted is None:
            texts = [s.text for s in self.conv.segments
                     if s.trust in (Trust.TRUSTED, Trust.USER) and s.provenance.kind not in _NO_VOUCH]
            # A line break of sentinels keeps a token run from spanning two segments.
            self._trusted = Tokens.of("\n\x00\n".join(texts))
        return self._trusted

    def seen_in(self, tokens: tuple[Token, ...]) -> tuple[str, ...]:
        return tuple(f"{s.provenance.kind}:{s.provenance.source or '?'}"
                     for s in self.conv.untrusted() if self._tokens(s).contains(tokens, self.budget))

    def _tokens(self, seg: Segment) -> Tokens:
        if seg.index not in self._untrusted:
            self._untrusted[seg.index] = Tokens.of(seg.text)
        return self._untrusted[seg.index]

    def _results(self) -> list[Segment]:
        return [s for s in self.conv.untrusted() if s.provenance.kind == "tool_result" and s.provenance.source]

    def _authoritative(self, seg: Segment, tool: str, arg: str, tokens: tuple[Token, ...]) -> bool:
        """Is the value a field this result's tool is declared authoritative for, for (tool, arg)?"""
        vouching = self.policy.tool(seg.provenance.source or "").trusted_source_for
        wanted = {f.lower() for f in (*vouching.get(f"{tool}.{arg}", ()), *vouching.get(arg, ()))} - SENDER_FIELDS
        if not wanted:
            return False
        if "*" in wanted:
            return self._tokens(seg).contains(tokens, self.budget)
        compound = canon.is_compound(tokens)
        for key, value in self._field_tokens(seg):
            if key in wanted and (value == tokens or (compound and tokens[0] in value)):
                return True
        return False

    def _field_tokens(self, seg: Segment) -> list[tuple[str, tuple[Token, ...]]]:
        if seg.index not in self._fields:
            self._fields[seg.index] = [(k, canon.canonical(v)) for k, v in fields(seg.text)]
        return self._fields[seg.index]
