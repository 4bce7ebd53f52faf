"""Leetspeak read back as letters: "1gn0r3 4ll pr3v10u5 1n57ruc710n5" -> "ignore all previous instructions".

A token is leetspeak when it mixes letters with the digits and symbols that stand for them and
either reads as a known word once undone or is mostly letters ("pr0mpt"); "mp3", "b2b", "x86"
and "2024" are not. Heavy leetspeak writes whole short words in digits ("70" is "to", "83" is "be"): such a
run is read as a word only beside a leetspeak token and only when it spells a known word, so
numbers in ordinary text stay numbers. "1", "|" and "!" read "i" or "l"; the reading that makes a
known word wins (tried for at most MAX_AMBIGUOUS of them, so a token costs a bounded number of
lookups). One pass over the tokens: linear in the text.
"""

from __future__ import annotations

import re
from itertools import product

from proxy.rules.offsets import OffsetMap
from proxy.rules.vocabulary import WORDS

LEET_CHARS = "01345789@$!|+"
_TABLE = str.maketrans(LEET_CHARS, "oieastbgasilt")
# Tokens holding at least one leet character. Python's re for the lookbehind: a run of letters
# with none is given up after one look along it, and only from its start, so this stays linear;
# ordinary words never reach Python code.
_TOKEN = re.compile(r"(?<![a-z0-9@$!|+])[a-z]*[0-9@$!|+][a-z0-9@$!|+]*")
_BESIDE = 3  # characters (space, punctuation) that may separate two tokens of one leetspeak phrase
_AMBIGUOUS = "1|!"
MAX_AMBIGUOUS = 4
MAX_TOKEN = 24  # longer runs of letters and digits are identifiers, hashes or keys: left alone


def _default(token: str) -> str:
    """Every character translated; "1" reads "l" next to another "l" or "1" ("a11" is "all")."""
    out = []
    for i, c in enumerate(token):
        if c == "1" and ((i > 0 and token[i - 1] in "l1") or (i + 1 < len(token) and token[i + 1] in "l1")):
            out.append("l")
        else:
            out.append(c.translate(_TABLE))
    return "".join(out)


def _known(token: str) -> str | None:
    """The reading of `token` that is a known word, trying "i" / "l" for each ambiguous character."""
    plain = token.translate(_TABLE)
    if plain in WORDS:
        return plain
    spots = [i for i, c in enumerate(token) if c in _AMBIGUOUS][:MAX_AMBIGUOUS]
    if not spots:
        return None
    chars = list(plain)
    for letters in product("il", repeat=len(spots)):
        for i, letter in zip(spots, letters, strict=True):
            chars[i] = letter
        candidate = "".join(chars)
        if candidate in WORDS:
            return candidate
    return None


def _mixed(token: str) -> bool:
    return any(c.isalpha() for c in token) and any(c in LEET_CHARS for c in token)


def _reading(token: str) -> str | None:
    """How a token that mixes letters and leet characters reads, or None when it is not leetspeak."""
    if len(token) > MAX_TOKEN:
        return None
    known = _known(token)
    if known is not None:
        return known
    letters = sum(c.isalpha() for c in token)
    leet = sum(c in LEET_CHARS for c in token)
    if any(c.isdigit() and c not in LEET_CHARS for c in token):
        return None  # "b2b", "x86", "sha256": a digit that stands for no letter
    if leet == 1 and token[-1] in LEET_CHARS:
        return None  # "mp3", "gpt4": a name with a number after it
    if len(token) >= 3 and letters >= 2 and letters * 3 >= len(token):
        return _default(token)
    return None


def _beside(
    text: str, tokens: list[tuple[int, int, str]], readings: list[str | None], j: int, edge: int
) -> bool:
    """Token j is leetspeak and only a few non-letters apart from `edge` (a token's start or end)."""
    if j < 0 or j >= len(tokens) or readings[j] is None or not _mixed(tokens[j][2]):
        return False
    gap = text[tokens[j][1] : edge] if tokens[j][1] <= edge else text[edge : tokens[j][0]]
    return len(gap) <= _BESIDE and not any(c.isalnum() for c in gap)


def undo(text: str) -> tuple[str, OffsetMap] | None:
    """`text` with its leetspeak tokens (and the digit words beside them) spelled in letters."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    readings: list[str | None] = [_reading(t) if _mixed(t) else None for _, _, t in tokens]
    for i, (start, end, token) in enumerate(tokens):
        if readings[i] is not None or len(token) > 4 or not all(c in LEET_CHARS for c in token):
            continue
        if _beside(text, tokens, readings, i - 1, start) or _beside(text, tokens, readings, i + 1, end):
            readings[i] = _known(token)
    omap = OffsetMap()
    chars: list[str] | None = None
    for (start, _, token), reading in zip(tokens, readings, strict=True):
        if reading is None or reading == token:
            continue
        chars = chars if chars is not None else list(text)
        for i, (old, new) in enumerate(zip(token, reading, strict=True)):
            if old != new:
                chars[start + i] = new
                omap.add(start + i, start + i + 1, start + i, start + i + 1, "leet")
    return ("".join(chars), omap) if chars is not None else None
