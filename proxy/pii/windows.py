"""Where the PII analyzer looks: windows around pre-filter triggers that Presidio sees as it
would see the whole text.

A window widens to whitespace and then past any neighbouring token with a digit, without
letters, or that is a phone extension marker: the phone matcher reads such a run as a whole (what
precedes a number changes what it matches), so a window may only begin and end at a token of
words. Pure functions over text, no Presidio here.
"""

from __future__ import annotations

import re

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
    merged: list[tuple[int, int, set[str]]] = []
    for s, e, entity in spans:
        before, after = MARGINS.get(entity, DEFAULT_MARGIN)
        lo, hi = _widen(text, s - before, e + after)
        if merged and lo <= merged[-1][1]:
            prev = merged[-1]
            merged[-1] = (prev[0], max(prev[1], hi), prev[2] | {entity})
        else:
            merged.append((lo, hi, {entity}))
    return merged


def _widen(text: str, lo: int, hi: int) -> tuple[int, int]:
    """Clamp, move both edges out to whitespace, then past any neighbouring token with a digit
    or no letters: the phone matcher's results depend on where the digit-and-punctuation run
    around a number starts, so a window may only begin or end at a token of words."""
    lo, hi = max(lo, 0), min(hi, len(text))
    while lo > 0 and not text[lo - 1].isspace():
        lo -= 1
    while hi < len(text) and not text[hi].isspace():
        hi += 1
    while lo > 0:
        start = end = lo
        while start > 0 and text[start - 1].isspace():
            start -= 1
        end = start
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        if not _numberish(text[start:end]):
            break
        lo = start
    while hi < len(text):
        start = hi
        while start < len(text) and text[start].isspace():
            start += 1
        end = start
        while end < len(text) and not text[end].isspace():
            end += 1
        if not _numberish(text[start:end]):
            break
        hi = end
    return lo, hi


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
