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
import re
from dataclasses import dataclass, field

from proxy.model import Conversation, Segment, ToolCall, ToolSpec, Trust
from proxy.policy import canon, senders
from proxy.policy.arguments import Pairs, flat, parse_arguments, strings
from proxy.policy.canon import Token, Tokens
from proxy.policy.records import fields
from proxy.policy.sinks import egress_values, planted_tokens
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


def sensitive_values(call: ToolCall, rule: ToolRule, spec: ToolSpec | None = None) -> list[tuple[str, str]]:
    """(arg, string value) pairs to check: every element of nested lists and objects, and the keys
    of nested objects that are not plain identifiers (a recipient can ride in a key)."""
    try:
        args = parse_arguments(call.arguments)
    except (json.JSONDecodeError, RecursionError):
        # Unparseable arguments cannot be vouched for: treat the whole text as one value.
        return [("*", call.arguments)]
    if not isinstance(args, Pairs):
        return [("*", call.arguments)]
    names = checked_names([k for k, _ in args], rule, spec)
    return [(k, s) for k, v in args if k in names for s in strings(v) if s.strip()]


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


# Arguments that name one record (not a query, a month or a page size, whose results are collections
# that third parties write into).
_RECORD_ARG = re.compile(r"(?:id|url|uri|href|link|path|file|filename|document|page|record|invoice|bill)"
                         r"|\w+_(?:id|url|uri|path|file)")


_NO_FIELD: tuple[set[tuple[Token, ...]], set[Token]] = (set(), set())


def _identifying(tokens: tuple[Token, ...]) -> bool:
    """Does a value name one record: an address, URL, IBAN, number, or a word with digits or path
    punctuation (`bill-2026-11.pdf`, `inv_2211`)? Plain words ("inbox", "general") name none."""
    return any(t.startswith((*canon.COMPOUND, "num:")) or
               (t.startswith("word:") and any(c.isdigit() or c in "._/-" for c in t[5:])) for t in tokens)


@dataclass
class Tracer:
    """One conversation's vouching texts, indexed once and shared by every call in a response."""

    conv: Conversation
    policy: Policy
    _trusted: Tokens | None = None
    _untrusted: dict[int, Tokens] = field(default_factory=dict)
    _fields: dict[int, list[tuple[str, tuple[Token, ...]]]] = field(default_factory=dict)
    _designations: list[tuple[Segment, str]] | None = None
    _indexes: dict[int, dict[str, tuple[set[tuple[Token, ...]], set[Token]]]] = field(default_factory=dict)
    _compounds: dict[int, dict[str, set[Token]]] = field(default_factory=dict)
    _sender: tuple[Token, ...] | None = None  # the sender of the record the user pointed at, () if none
    budget: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def of(cls, conv: Conversation, policy: Policy) -> Tracer:
        tracer = cls(conv, policy)
        # Comparisons allowed for multi-token values: linear in the conversation's size.
        tracer.budget[0] = 8 * conv.char_count() + 10_000
        return tracer

    def untraced(self, call: ToolCall, rule: ToolRule, *, side_effect: bool = True) -> list[Untraced]:
        """Unvouched values: sensitive arguments and links planted in text arguments of a
        side-effecting call, and egress arguments (URLs, hosts) of any call."""
        spec = next((t for t in self.conv.tools if t.name == call.name), None)
        try:
            args = flat(parse_arguments(call.arguments))
        except (json.JSONDecodeError, RecursionError):
            args = [("*", call.arguments)]
        # A source the user designated fills sensitive arguments only: where data goes out (egress)
        # and what a message says (free text) stay with the user's and operator's own text.
        checks = [(a, v, canon.canonical(v), False) for a, v in egress_values(args, rule)]
        if side_effect:
            checks = [(a, v, canon.canonical(v), True) for a, v in sensitive_values(call, rule, spec)] + checks
            checks += [(a, shown, (tok,), False) for a, tok, shown in planted_tokens(args, rule)]
        out, seen = [], set()
        for arg, value, tokens, designated in checks:
            if (arg, tokens) in seen:
                continue
            seen.add((arg, tokens))
            if self.vouched_by(call.name, arg, tokens, designated=designated) is None:
                out.append(Untraced(arg, value, self.seen_in(tokens)))
        return out

    def vouched(self, tool: str, arg: str, tokens: tuple[Token, ...]) -> bool:
        return self.vouched_by(tool, arg, tokens) is not None

    def vouched_by(self, tool: str, arg: str, tokens: tuple[Token, ...], *, designated: bool = True) -> str | None:
        """What vouches for the value ("user or operator text", a source tool's field, a source
        the user designated), or None."""
        if not tokens:  # nothing comparable (only punctuation): cannot be traced
            return None
        if self.trusted().contains(tokens, self.budget):
            return "user or operator text"
        for seg in self._results():
            if self._authoritative(seg, tool, arg, tokens):
                return f"authoritative result of {seg.provenance.source}"
        for seg, named in self._designated() if designated else ():
            if self._designated_value(seg, arg, tokens):
                return f"source the user designated: {named}"
        if designated and arg in self.policy.tool(tool).reply_args and tokens == self._reply_sender():
            return "sender of the message the user asked to answer"
        return None

    def _reply_sender(self) -> tuple[Token, ...]:
        """The sender field of the one record the user's text points at, when it asks for the sender
        (see proxy.policy.senders); () when it does not, or points at none or several."""
        if self._sender is None:
            users = [s.text for s in self.conv.segments if s.trust is Trust.USER and s.provenance.kind == "user"]
            record = (senders.designated(senders.records(self._results()), users)
                      if senders.asks_for_sender(users) else None)
            self._sender = record.sender if record is not None else ()
        return self._sender

    def _designated(self) -> list[tuple[Segment, str]]:
        """Results of calls that named a record the user named (a URL, file, record id): what the
        user asked to read may fill that task's arguments, with `_designated_value`'s limits."""
        if self._designations is None:
            calls = {c.id: c for c in self.conv.calls}
            self._designations = []
            for seg in self._results():
                call = calls.get(seg.provenance.tool_call_id or "")
                named = self._user_named(call) if call is not None else None
                if named is not None:
                    self._designations.append((seg, f"{seg.provenance.source}({named})"))
        return self._designations

    def _user_named(self, call: ToolCall) -> str | None:
        """The identifying argument values of `call` when the user's or operator's text holds every
        one of them; None when it names no record (no identifying value) or one it did not name."""
        try:
            args = parse_arguments(call.arguments)
        except (json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(args, Pairs):
            return None
        named = [v for k, value in args if _RECORD_ARG.fullmatch(k.lower()) for v in strings(value)
                 if _identifying(canon.canonical(v))]
        if not named or not all(self.trusted().contains(canon.canonical(v), self.budget) for v in named):
            return None
        return ", ".join(v[:80] for v in named)

    def _designated_value(self, seg: Segment, arg: str, tokens: tuple[Token, ...]) -> bool:
        """An address, URL or IBAN that is the only one of its kind in the source and a field's whole
        value, or the one value of a field named like the argument. A second, competing value (an injected line) leaves
        both unvouched: the attacker can add text to the record but not remove the real value."""
        index = self._field_index(seg)
        if canon.is_compound(tokens):
            kind = tokens[0].split(":", 1)[0]
            if self._kinds(seg).get(kind) != {tokens[0]}:
                return False
            # ... and it stands as a field of the record (`contact: ...`), not inside prose.
            return any(tokens in whole for whole, _ in index.values())
        return index.get(arg.lower(), _NO_FIELD)[0] == {tokens}

    def _kinds(self, seg: Segment) -> dict[str, set[Token]]:
        """kind -> the distinct address / URL / IBAN tokens of a segment."""
        if seg.index not in self._compounds:
            kinds: dict[str, set[Token]] = {}
            for tok in self._tokens(seg).positions:
                if tok.startswith(canon.COMPOUND):
                    kinds.setdefault(tok.split(":", 1)[0], set()).add(tok)
            self._compounds[seg.index] = kinds
        return self._compounds[seg.index]

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
        index = self._field_index(seg)
        for key in wanted:
            whole, inner = index.get(key, _NO_FIELD)
            if tokens in whole or (compound and tokens[0] in inner):
                return True
        return False

    def _field_index(self, seg: Segment) -> dict[str, tuple[set[tuple[Token, ...]], set[Token]]]:
        """key -> (whole canonical values, address/URL/IBAN tokens inside them): one lookup per key."""
        if seg.index not in self._indexes:
            index: dict[str, tuple[set[tuple[Token, ...]], set[Token]]] = {}
            for key, value in self._field_tokens(seg):
                whole, inner = index.setdefault(key, (set(), set()))
                whole.add(value)
                inner.update(t for t in value if t.startswith(canon.COMPOUND))
            self._indexes[seg.index] = index
        return self._indexes[seg.index]

    def _field_tokens(self, seg: Segment) -> list[tuple[str, tuple[Token, ...]]]:
        if seg.index not in self._fields:
            self._fields[seg.index] = [(k, canon.canonical(v)) for k, v in fields(seg.text)]
        return self._fields[seg.index]
