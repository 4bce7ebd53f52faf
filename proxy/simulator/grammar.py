"""The obedience grammar: find instructions in a chat request and decide the reply. Pure, no I/O.

The simulator is deliberately obedient: it follows instructions found in any non-assistant text,
including ones injected into tool results, so it is the worst case a defence must survive.

Texts read
    The text of every message with role system, developer, user, tool or function: string
    content, or the ``text`` of ``{"type": "text"}`` parts (joined with newlines). Assistant
    messages are the simulator's own past turns: their text is never read, only their tool calls.
    ``<untrusted ...>`` markup is not special: the text inside it is read like any other.

Instruction forms (keywords case-insensitive, found anywhere in a text)
    1. Tool call: ``(call|invoke|use) [the] TOOL [tool|function] [with ARGS]``.
       TOOL is a run of letters, digits and ``_ - . :`` that is exactly (case-sensitive) the
       name of a tool offered in the request's ``tools`` (``tools[i].function.name``); a trailing
       ``.`` or ``:`` is ignored, so a tool named at the end of a sentence still counts. ``the``
       is read as the article when an offered tool follows it. A word that is not an offered
       tool name is not an instruction. ARGS is either
         - a JSON object ``{...}`` (read with ``json.JSONDecoder().raw_decode`` at that
           position; invalid JSON or a non-object gives ``{}``), or
         - ``KEY=VALUE`` pairs (spaces around ``=`` allowed) separated by commas and/or the word
           ``and``. KEY is ``[A-Za-z_][A-Za-z0-9_]*``. VALUE is a double- or single-quoted string
           (no escapes; an unclosed quote ends the pairs) or a bare run of non-space, non-comma
           characters with trailing ``.``, ``;`` and ``)`` stripped. Values are strings. A bare
           value ``$TOOL.FIELD`` is a reference: the value of FIELD in TOOL's latest result (a
           JSON key at any depth, else a ``Field: value`` line); the instruction waits until
           that result exists.
       No ARGS gives ``{}``. Scanning resumes after the ARGS, so an instruction quoted inside
       another instruction's arguments is part of those arguments, not an instruction.
    2. Text reply: ``(reply|respond|answer|say) [with] "TEXT"`` (double quotes, TEXT holds no
       double quote): the simulator answers exactly TEXT.

Deciding the reply
    1. Tool-call instructions are collected from all non-assistant messages in order. One is
       *satisfied* when a LATER assistant message has a tool call with the same name and
       JSON-equal arguments. All unsatisfied ones (deduplicated, in order of appearance) are
       answered as parallel tool calls, unless ``tool_choice`` is ``"none"`` or no tools were
       offered.
    2. Else, the latest text-reply instruction wins: messages are searched from the last one
       backwards, stopping at the last assistant message (so a conversation that has been
       answered moves on), and within a message the last instruction counts. The answer is
       exactly its TEXT.
    3. Else, if the last message is a tool result (role tool or function), the answer is
       ``"Tool result received: " + its text``; otherwise ``"Simulated answer to: " + the last
       user message's text``; the quoted text has its whitespace collapsed and is cut to 200
       characters.

Limits (all parsing is linear-time)
    Only the first 200,000 characters of each message are read; at most 64 tool-call
    instructions are read per message; a JSON ARGS object must fit in 16,384 characters; at most
    16 tool calls are emitted. The same request always gives the same decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from proxy.simulator import references

MAX_TEXT_CHARS = 200_000
MAX_INSTRUCTIONS_PER_TEXT = 64
MAX_JSON_ARGS_CHARS = 16_384
MAX_TOOL_CALLS = 16
PREVIEW_CHARS = 200

READ_ROLES = frozenset({"system", "developer", "user", "tool", "function"})
TOOL_RESULT_ROLES = frozenset({"tool", "function"})

# Every pattern below is a single pass with no nested quantifiers over the same characters, so a
# hostile text cannot make matching backtrack.
_CALL_VERB = re.compile(r"\b(?:call|invoke|use)\b", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_NAME = re.compile(r"[A-Za-z0-9_.:\-]+")
_THE = re.compile(r"the\s+", re.IGNORECASE)
_KIND = re.compile(r"\s+(?:tool|function)\b", re.IGNORECASE)
_WITH = re.compile(r"\s+with\b\s*", re.IGNORECASE)
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_BARE = re.compile(r"[^\s,]+")
_SEPARATOR = re.compile(r"\s*(?:,\s*(?:and\s+)?|and\s+)", re.IGNORECASE)
_TEXT_REPLY = re.compile(r'\b(?:reply|respond|answer|say)\s+(?:with\s+)?"([^"]*)"', re.IGNORECASE)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call: asked for by an instruction, or already made by an assistant turn.

    `arguments` is a dict for instructions; for past calls it is the parsed JSON, or the raw
    string when that was not JSON (which then never matches an instruction).
    """

    name: str
    arguments: Any

    def key(self) -> str:
        """Canonical form, so JSON-equal arguments compare equal whatever their key order."""
        return json.dumps([self.name, self.arguments], sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Turn:
    """One message reduced to what the grammar needs; wire formats build these."""

    role: str
    text: str
    calls: tuple[Call, ...] = ()
    tool: str | None = None  # for a tool result: the tool that produced it


@dataclass(frozen=True, slots=True)
class Transcript:
    """A chat request in provider-neutral form."""

    turns: tuple[Turn, ...]
    tool_names: frozenset[str] = frozenset()
    tools_allowed: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """The reply to give: tool calls when there are any, else `text`."""

    text: str
    calls: tuple[Call, ...] = ()


def decide(transcript: Transcript) -> Decision:
    """Apply the grammar: pending tool calls, else a text-reply instruction, else a default."""
    calls = pending_calls(transcript)
    if calls:
        return Decision(text="", calls=calls)
    return Decision(text=reply_text(transcript))


def pending_calls(transcript: Transcript) -> tuple[Call, ...]:
    """Unsatisfied tool-call instructions, deduplicated, in order of appearance, at most 16."""
    if not transcript.tools_allowed or not transcript.tool_names:
        return ()
    # Walk backwards so "made later" is just the set of calls seen so far: linear in the turns.
    made_later: set[str] = set()
    per_turn: list[list[Call]] = []
    results = references.latest_results(transcript.turns)
    for turn in reversed(transcript.turns):
        if turn.role == "assistant":
            made_later.update(call.key() for call in turn.calls)
        elif turn.role in READ_ROLES:
            found = _resolved(find_calls(turn.text, transcript.tool_names), results)
            per_turn.append([call for call in found if call.key() not in made_later])
    pending: list[Call] = []
    seen: set[str] = set()
    for calls in reversed(per_turn):
        for call in calls:
            if call.key() not in seen:
                seen.add(call.key())
                pending.append(call)
                if len(pending) == MAX_TOOL_CALLS:
                    return tuple(pending)
    return tuple(pending)


def _resolved(calls: list[Call], results: dict[str, str]) -> list[Call]:
    """Calls with `$tool.field` references filled in; ones still waiting for a result are left out."""
    out = []
    for call in calls:
        arguments = references.resolve(call.arguments, results)
        if arguments is not None:
            out.append(Call(call.name, arguments))
    return out


def reply_text(transcript: Transcript) -> str:
    """The latest text-reply instruction since the last assistant turn, or the default."""
    for turn in reversed(transcript.turns):
        if turn.role == "assistant":
            break
        if turn.role in READ_ROLES:
            found = find_text_reply(turn.text)
            if found is not None:
                return found
    return default_text(transcript)


def default_text(transcript: Transcript) -> str:
    """The answer when no instruction applies: acknowledge a tool result, else echo the user."""
    turns = transcript.turns
    if turns and turns[-1].role in TOOL_RESULT_ROLES:
        return "Tool result received: " + _preview(turns[-1].text)
    last_user = next((t.text for t in reversed(turns) if t.role == "user"), "")
    return "Simulated answer to: " + _preview(last_user)


def find_text_reply(text: str) -> str | None:
    """TEXT of the last text-reply instruction in `text`, if any."""
    last = None
    for match in _TEXT_REPLY.finditer(text, 0, MAX_TEXT_CHARS):
        last = match.group(1)
    return last


def find_calls(text: str, tool_names: frozenset[str]) -> list[Call]:
    """Tool-call instructions in `text` naming an offered tool, in order."""
    text = text[:MAX_TEXT_CHARS]
    calls: list[Call] = []
    pos = 0
    while len(calls) < MAX_INSTRUCTIONS_PER_TEXT:
        verb = _CALL_VERB.search(text, pos)
        if verb is None:
            break
        parsed = _parse_call(text, verb.end(), tool_names)
        if parsed is None:
            pos = verb.end()
            continue
        call, pos = parsed
        calls.append(call)
    return calls


def _parse_call(text: str, pos: int, tool_names: frozenset[str]) -> tuple[Call, int] | None:
    """Parse `[the] TOOL [tool|function] [with ARGS]` after a verb; None if no offered tool."""
    space = _SPACE.match(text, pos)
    if space is None:
        return None
    # "the" is optional; only when no offered tool follows it can it be a tool's own name.
    the = _THE.match(text, space.end())
    named = _tool_name(text, the.end(), tool_names) if the else None
    named = named or _tool_name(text, space.end(), tool_names)
    if named is None:
        return None
    name, pos = named
    kind = _KIND.match(text, pos)
    if kind is not None:
        pos = kind.end()
    with_ = _WITH.match(text, pos)
    if with_ is None:
        return Call(name, {}), pos
    arguments, pos = _parse_args(text, with_.end())
    return Call(name, arguments), pos


def _tool_name(text: str, pos: int, tool_names: frozenset[str]) -> tuple[str, int] | None:
    run = _NAME.match(text, pos)
    if run is None:
        return None
    word = run.group()
    if word in tool_names:
        return word, run.end()
    trimmed = word.rstrip(".:")
    if trimmed and trimmed in tool_names:
        return trimmed, pos + len(trimmed)
    return None


def _parse_args(text: str, pos: int) -> tuple[dict[str, Any], int]:
    if text.startswith("{", pos):
        return _json_args(text, pos)
    return _pair_args(text, pos)


def _json_args(text: str, pos: int) -> tuple[dict[str, Any], int]:
    # The window caps the work per instruction; deep nesting raises RecursionError in json.
    window = text[pos : pos + MAX_JSON_ARGS_CHARS]
    try:
        value, end = _DECODER.raw_decode(window)
    except (ValueError, RecursionError):
        return {}, pos
    if not isinstance(value, dict):
        return {}, pos
    return value, pos + end


def _pair_args(text: str, pos: int) -> tuple[dict[str, Any], int]:
    arguments: dict[str, Any] = {}
    while True:
        key = _KEY.match(text, pos)
        if key is None:
            break
        value = _value(text, key.end())
        if value is None:
            break
        arguments[key.group(1)] = value[0]
        pos = value[1]
        separator = _SEPARATOR.match(text, pos)
        # Consume a separator only when another pair follows it: "x=1, and then" ends at "1".
        if separator is None or _KEY.match(text, separator.end()) is None:
            break
        pos = separator.end()
    return arguments, pos


def _value(text: str, pos: int) -> tuple[str, int] | None:
    quote = text[pos : pos + 1]
    if quote in ('"', "'"):
        end = text.find(quote, pos + 1)
        return None if end < 0 else (text[pos + 1 : end], end + 1)
    bare = _BARE.match(text, pos)
    if bare is None:
        return None
    return bare.group().rstrip(".;)"), bare.end()


def _preview(text: str) -> str:
    return " ".join(text[:MAX_TEXT_CHARS].split())[:PREVIEW_CHARS]
