"""Replies to the sender of a message the user pointed at: when may a sender field vouch?

A sender field vouches for nothing on its own: whoever sent a message wrote it, the attacker
included (the loader refuses it in `trusted_source_for`). It may fill one kind of argument in one
situation: the user's own text asks for the sender ("tell the sender of the lunch email", "thank the
first poster", "reply to ..."), the argument is one the policy declares a reply goes to
(`reply_args` of the sink tool, e.g. send_email.to, never cc or bcc), and the value is the sender
field of the one record the user pointed at:

- records are the objects of a JSON tool result (a list of objects, or one object) with a sender
  key of their own at their top level; text inside a field (a body saying `from: x`, a JSON string
  in a body) is never a record, and a record with a key written twice is not one either;
- the record is designated by the user's text only: the one record whose subject or title shares a
  word with the user's text, else an ordinal ("the first poster", or "the latest email" when every
  record has one ISO date) when all records come from one result, else the only record there is.
  Bodies never take part, so injected text cannot move the designation; a second matching record
  makes it ambiguous, and ambiguity vouches for nothing.

Pure functions over the data model; linear in the results' size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from proxy.model import Segment
from proxy.policy import canon
from proxy.policy.canon import Token
from proxy.policy.spec import SENDER_FIELDS

# The user asks for the sender of something (not merely mentions mail).
_ASKS_SENDER = re.compile(r"\b(?:sender|author|poster|who\s+(?:posted|sent|wrote)|reply|respond|write\s+back)\b",
                          re.IGNORECASE)
# "the first poster", "the first email": an ordinal naming a record, not "first, read my inbox".
_FIRST = re.compile(r"\bfirst\s+(?:person|poster|post|message|e-?mail|mail|one|sender|author)\b", re.IGNORECASE)
_LATEST = re.compile(r"\b(?:latest|newest|most\s+recent)\s+(?:e-?mail|mail|message|post|one)\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]00:?00)?)?")  # UTC or no zone: comparable as text
_DATES = frozenset({"date", "received", "received_at", "sent", "sent_at", "timestamp", "time", "created_at"})
_WORD = re.compile(r"[a-z]{4,}")
# Words every request uses: they name no message.
_GENERIC = frozenset({"call", "read", "send", "email", "mail", "message", "inbox", "channel", "with", "then",
                      "that", "this", "from", "sender", "author", "reply", "please", "tell", "thank", "thanks"})
# Fields that name a message (what a user calls it by); bodies are the sender's free text.
_TITLES = frozenset({"subject", "title", "topic", "name"})


@dataclass(frozen=True, slots=True)
class Record:
    result: int  # which tool result it came from
    position: int  # its place in that result
    sender: tuple[Token, ...]
    titles: frozenset[str]  # words of its subject / title fields
    date: str | None = None  # an ISO date field, for "the latest email"


# "don't reply", "do not answer the sender", "without replying": a request NOT to write back.
_NEGATED = re.compile(r"\b(?:not|never|don'?t|doesn'?t|without|no\s+need\s+to)\b[^.!?:;\n]{0,40}$", re.IGNORECASE)


def asks_for_sender(user_texts: Iterable[str]) -> bool:
    """Does the user's text ask for a message's sender (and not say not to write back)?"""
    return any(_NEGATED.search(t[max(0, m.start() - 60):m.start()]) is None
               for t in user_texts for m in _ASKS_SENDER.finditer(t))


def records(results: list[Segment]) -> list[Record]:
    """The records of every structured result, in order, each with its own sender."""
    out = []
    for n, seg in enumerate(results):
        data = _json(seg.text)
        items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            senders = [v for k, v in item.items() if str(k).lower() in SENDER_FIELDS and isinstance(v, str)]
            if len(senders) != 1:  # no sender, or two different claims: not a record we can read
                continue
            titles = " ".join(v for k, v in item.items() if str(k).lower() in _TITLES and isinstance(v, str))
            dates = [v for k, v in item.items() if str(k).lower() in _DATES and isinstance(v, str)
                     and _ISO_DATE.fullmatch(v.strip())]
            out.append(Record(n, position, canon.canonical(senders[0]), frozenset(_WORD.findall(titles.lower())),
                              dates[0].strip().replace(" ", "T") if len(dates) == 1 else None))
    return out


def designated(found: list[Record], user_texts: list[str]) -> Record | None:
    """The one record the user's text points at, or None when it points at none or several."""
    if not found:
        return None
    text = "\n".join(user_texts)
    words = set(_WORD.findall(text.lower())) - _GENERIC
    matching = [r for r in found if r.titles & words]
    if matching:
        return matching[0] if len(matching) == 1 else None
    one_result = len({r.result for r in found}) == 1
    if one_result and _FIRST.search(text) and found[0].position == 0:
        return found[0]
    if one_result and _LATEST.search(text) and all(r.date for r in found):
        newest = max(str(r.date) for r in found)
        latest = [r for r in found if r.date == newest]
        return latest[0] if len(latest) == 1 else None
    return found[0] if len(found) == 1 else None


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        return None


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose key comes twice is refused: a parser keeps one of them, a reader may see the other."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out
