"""Where the PII analyzer looks: windows around pre-filter triggers that Presidio sees as it
would see the whole text.

A window widens to whitespace and then past any neighbouring token with a digit, without
letters, or that is a phone extension marker: the phone matcher reads such a run as a whole (what
precedes a number changes what it matches), so a window may only begin and end at a token of
words. Pure functions over text, no Presidio here.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

# Characters each side of a trigger that a match may still reach before the window widens. Most
# triggers cover their whole match already; an IBAN trigger only sees its first 4 characters.
# Phone windows need no margin: widening to word tokens already takes in a `+`, brackets and
# extensions ("ext 12"), all of which the phone matcher may read as part of a number.
MARGINS: dict[str, tuple[int, int]] = {"IBAN_CODE": (4, 48), "PHONE_NUMBER": (0, 0)}  # (before, after)
DEFAULT_MARGIN = (4, 4)


def windows(
    text: str, triggers: dict[str, list[tuple[int, int]]]
) -> list[tuple[int, int, set[str]]]:
    """Merged (start, end, entities) windows around every trigger."""
    spans = sorted((s, e, entity) for entity, found in triggers.items() for s, e in found)
    if not spans:
        return []
    tokens = _Tokens(text)
    merged: list[tuple[int, int, set[str]]] = []
    for s, e, entity in spans:
        before, after = MARGINS.get(entity, DEFAULT_MARGIN)
        lo, hi = tokens.widen(s - before, e + after)
        if merged and lo <= merged[-1][1]:
            prev = merged[-1]
            merged[-1] = (prev[0], max(prev[1], hi), prev[2] | {entity})
        else:
            merged.append((lo, hi, {entity}))
    return merged


class _Tokens:
    """The text's whitespace-separated tokens, found once per text; widening is a bisect away.

    How far a token's window extends over numberish neighbours is computed once for all tokens
    (two linear passes), not walked per trigger: a text of thousands of addresses or numbers
    gives thousands of triggers over one long numberish run, and walking it for each was
    quadratic.
    """

    def __init__(self, text: str) -> None:
        self.spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        self.starts = [s for s, _ in self.spans]
        self.length = len(text)
        numberish = [_numberish(text[s:e]) for s, e in self.spans]
        n = len(self.spans)
        # reach_left[i]: the first token of the numberish run just before token i (i if none).
        self.reach_left = list(range(n))
        for i in range(1, n):
            if numberish[i - 1]:
                self.reach_left[i] = self.reach_left[i - 1]
        self.reach_right = list(range(n))
        for i in range(n - 2, -1, -1):
            if numberish[i + 1]:
                self.reach_right[i] = self.reach_right[i + 1]

    def widen(self, lo: int, hi: int) -> tuple[int, int]:
        """Out to whole tokens, then past any neighbouring token with a digit, without letters,
        or that is an extension marker: the phone matcher's results depend on where the
        digit-and-punctuation run around a number starts, so a window may only begin or end at a
        token of words."""
        lo, hi = max(lo, 0), min(hi, self.length)
        first = bisect_right(self.starts, lo) - 1  # the token holding lo, or the one before it
        if first < 0 or self.spans[first][1] <= lo:
            first += 1
        last = max(bisect_left(self.starts, hi) - 1, first)  # the last token starting before hi
        return self.spans[self.reach_left[first]][0], self.spans[self.reach_right[last]][1]


_TOKEN = re.compile(r"\S+")


# Extension markers the phone matcher reads as part of a number ("555-0132 ext 12", "x 7").
_EXTENSION = re.compile(
    "[,;]*(?:e?xt(?:ensi[o\u00f3]?n|n)?|\uff45?\uff58\uff54\uff4e?|\u0434\u043e\u0431|anexo"
    "|[x\uff58#\uff03~\uff5e]|int|\uff49\uff4e\uff54)[:.\uff0e]?[,-]*",
    re.IGNORECASE,
)


def _numberish(token: str) -> bool:
    return bool(token) and (
        any(ch.isdigit() for ch in token) or not any(ch.isalpha() for ch in token)
        or _EXTENSION.fullmatch(token) is not None
    )


def digit_count(text: str, start: int, end: int) -> int:
    return sum(ch.isdigit() for ch in text[start:end])


def plus_before(text: str, start: int) -> bool:
    """A `+` country-code prefix just before a digit run (`+1 415...`, `+(44)...`)."""
    return "+" in text[max(start - 2, 0) : start]
