"""One RE2 pass that says which costly transforms a text could possibly need.

Most texts hold no encoded runs, no leetspeak and no letter spacing; asking one RE2 set is much
cheaper than running each finder (or a stdlib regex per finder) over every segment.
"""

from __future__ import annotations

from typing import Any

import re2

from proxy.rules.evasion import CIPHER_PATTERN, MARKUP_PATTERN, TYPO_PATTERN

# Letters kept apart by spaces, dots, middle dots, bullets, dashes, slashes...: "i.g.n.o.r.e"
SEPARATORS = " ._*\\-\u00b7\u2022\u2027\u2219\u30fb|/+~,:"

# name -> a fixed-width pattern that any text needing that transform must contain.
HINT_PATTERNS = (
    ("base64", r"[A-Za-z0-9+/_\-]{16}"),
    ("hex", r"\\x[0-9a-fA-F]{2}|[0-9a-fA-F]{20}|(?:[0-9a-fA-F]{2}[ :]){4}[0-9a-fA-F]{2}"),
    ("binary", r"[01]{8}\s?[01]{8}"),
    ("url", r"%[0-9a-fA-F]{2}"),
    ("morse", r"[.\-]{1,6} [.\-]{1,6} [.\-]{1,6} [.\-]{1,6}"),
    ("leet", r"[a-zA-Z][01345789@$!|+]{1,3}[a-zA-Z]|\b[01345789][a-zA-Z]{2}"),
    ("spacing", r"\b[a-zA-Z](?:[" + SEPARATORS + r"]{1,3}[a-zA-Z]){3}\b"),
    ("markup", MARKUP_PATTERN),
    ("typo", TYPO_PATTERN),
    ("cipher", CIPHER_PATTERN),
)


def _compile() -> Any:
    hint_set = re2.Set.SearchSet(re2.Options())
    for _, pattern in HINT_PATTERNS:
        hint_set.Add(pattern)
    hint_set.Compile()
    return hint_set


_SET = _compile()
ALL = frozenset(name for name, _ in HINT_PATTERNS)


def hints(text: str) -> frozenset[str]:
    """The subset of ALL whose precondition `text` meets."""
    return frozenset(HINT_PATTERNS[i][0] for i in _SET.Match(text) or ())
