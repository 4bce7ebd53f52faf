"""Canonical tokens: the one way argument values and source texts are compared.

A value is vouched for only when its canonical token sequence occurs whole in a vouching text,
never as a substring: `alice@corp.com` is one token and `alice@corp.com.au` another, and "June 13"
is one date token, so it vouches for neither `13` nor `june`. Canonicalisation per kind:

- e-mail address: NFC, lower case (`Alice@Corp.example` = `alice@corp.example`).
- URL: scheme and host lower case, default port, fragment and an empty path dropped; http and
  https are one (`https://Example.com/` = `http://example.com`); path and query kept exactly.
- IBAN: letters upper case, spaces removed, accepted only with a valid mod-97 check, so the
  grouped form "DE44 5001 0517 5407 3249 31" is one token.
- number: thousands separators and trailing decimal zeros dropped (`1,200.00` = `1200`).
- date: a month name with its day ("June 13", "13 June 2026") is one token.
- word: NFC and `str.lower` (never `casefold`, which maps `ß` to `ss`); NFKC is not applied, so a
  full-width or other look-alike value never equals the plain one.

Texts are cut into whitespace chunks first and every pattern is anchored inside one chunk, so
tokenising is linear in the text's length whatever it holds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

Token = str  # "<kind>:<canonical form>"
COMPOUND = ("email:", "url:", "iban:")  # kinds that are whole identities even inside a longer field

_CHUNK = re.compile(r"\S+")
_STRIP_LEFT = "([{<\"'`*_"
_STRIP_RIGHT = ".,;:!?)]}>\"'`*_"
_DOMAIN = re.compile(r"[^\W_](?:[\w\-]*[^\W_])?(?:\.[^\W_](?:[\w\-]*[^\W_])?)+")
_URL = re.compile(r"(?:https?|ftp)://\S+", re.IGNORECASE)
_SPLIT = re.compile(r"[^\w.\-/+'\u2019,]+")  # inside a chunk, words are cut at anything else ("id=13")
_EDGE = ".-/+'\u2019,"
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?:am|pm)?", re.IGNORECASE)
_IBAN_HEAD = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]*")
_GROUP = re.compile(r"[A-Z0-9]{1,4}")
_MONTHS = frozenset((
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
))
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


@dataclass(frozen=True, slots=True)
class Tokens:
    """A text's canonical tokens in order, with an index for whole-sequence lookups."""

    seq: tuple[Token, ...]
    positions: dict[Token, list[int]]

    @classmethod
    def of(cls, text: str) -> Tokens:
        seq = tuple(tokenize(text))
        positions: dict[Token, list[int]] = {}
        for i, tok in enumerate(seq):
            positions.setdefault(tok, []).append(i)
        return cls(seq, positions)

    def contains(self, needle: tuple[Token, ...], budget: list[int]) -> bool:
        """Does `needle` occur as a contiguous run? Anchored on its rarest token; `budget` (a
        one-item counter shared by a whole check) caps the comparisons so hostile input stays
        linear: when it runs out the answer is False, the safe side."""
        if not needle:
            return False
        if len(needle) == 1:
            return needle[0] in self.positions
        anchor = min(range(len(needle)), key=lambda j: len(self.positions.get(needle[j], ())))
        for p in self.positions.get(needle[anchor], ()):
            budget[0] -= len(needle)
            if budget[0] < 0:
                return False
            start = p - anchor
            if start >= 0 and self.seq[start:start + len(needle)] == needle:
                return True
        return False


def tokenize(text: str) -> Iterator[Token]:
    """Canonical tokens of `text`, in order (see the module docstring for the kinds)."""
    text = unicodedata.normalize("NFC", text)
    chunks = [c.group() for c in _CHUNK.finditer(text)]
    i = 0
    while i < len(chunks):
        merged = _merge(chunks, i)
        if merged is not None:
            tok, i = merged
            yield tok
            continue
        yield from _chunk_tokens(chunks[i])
        i += 1


def canonical(value: str) -> tuple[Token, ...]:
    return tuple(tokenize(value))


def _merge(chunks: list[str], i: int) -> tuple[Token, int] | None:
    """A token spanning several chunks: a grouped IBAN, or a month name with its day (and year)."""
    head = chunks[i].strip(_STRIP_RIGHT)
    if _IBAN_HEAD.fullmatch(head) and len(head) <= 8:
        groups = [head]
        j = i + 1
        while j < len(chunks) and len(groups) < 9 and _GROUP.fullmatch(chunks[j].rstrip(_STRIP_RIGHT)):
            groups.append(chunks[j].rstrip(_STRIP_RIGHT))
            j += 1
        for end in range(len(groups), 1, -1):  # longest valid IBAN first
            joined = "".join(groups[:end])
            if iban_valid(joined):
                return f"iban:{joined}", i + end
    word = head.strip(_STRIP_LEFT).lower()
    nxt = chunks[i + 1].strip(_STRIP_LEFT + _STRIP_RIGHT).lower() if i + 1 < len(chunks) else ""
    if word in _MONTHS and _day(nxt):
        parts, j = [word, nxt.removesuffix("th").removesuffix("st").removesuffix("nd").removesuffix("rd")], i + 2
    elif _day(word) and nxt in _MONTHS:
        parts, j = [nxt, word.removesuffix("th").removesuffix("st").removesuffix("nd").removesuffix("rd")], i + 2
    else:
        return None
    year = chunks[j].strip(_STRIP_LEFT + _STRIP_RIGHT) if j < len(chunks) else ""
    if len(year) == 4 and year.isdigit():
        parts.append(year)
        j += 1
    return "date:" + " ".join(parts), j


def _day(word: str) -> bool:
    digits = word[:-2] if word[-2:] in ("th", "st", "nd", "rd") else word
    return digits.isdigit() and 1 <= int(digits) <= 31 and len(digits) <= 2


def _chunk_tokens(chunk: str) -> Iterator[Token]:
    chunk = chunk.strip(_STRIP_LEFT).rstrip(_STRIP_RIGHT)
    if not chunk:
        return
    url = _URL.search(chunk)
    if url is not None:
        yield from _chunk_tokens(chunk[:url.start()])
        yield "url:" + canonical_url(url.group().rstrip(_STRIP_RIGHT))
        return
    if _TIME.fullmatch(chunk):
        yield "time:" + chunk.lower()
        return
    pos = 0
    for start, end in _emails(chunk):
        yield from _pieces(chunk[pos:start])
        yield "email:" + chunk[start:end].lower()
        pos = end
    yield from _pieces(chunk[pos:])


def _emails(chunk: str) -> Iterator[tuple[int, int]]:
    """Spans of e-mail addresses, found from each `@` outwards: every character is looked at a
    bounded number of times (a pattern scanned from every start would be quadratic on long runs)."""
    floor = 0
    at = chunk.find("@")
    while at >= 0:
        start = at
        while start > floor and (chunk[start - 1].isalnum() or chunk[start - 1] in "._%+-"):
            start -= 1
        domain = _DOMAIN.match(chunk, at + 1)
        if start < at and domain is not None:
            yield start, domain.end()
            floor = domain.end()
        else:
            floor = at + 1
        at = chunk.find("@", max(floor, at + 1))


def _pieces(text: str) -> Iterator[Token]:
    for piece in _SPLIT.split(text):
        piece = piece.strip(_EDGE)
        if not piece:
            continue
        if _NUMBER.fullmatch(piece):
            yield "num:" + canonical_number(piece)
            continue
        for part in piece.split(","):
            part = part.strip(_EDGE)
            if not part:
                continue
            if _NUMBER.fullmatch(part):
                yield "num:" + canonical_number(part)
            elif _IBAN_HEAD.fullmatch(part.upper()) and iban_valid(part.upper()):
                yield "iban:" + part.upper()
            else:
                yield "word:" + part.lower()


def canonical_number(text: str) -> str:
    digits = text.replace(",", "")
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return digits.lstrip("0") or "0"


def canonical_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a malformed port or host: compared as written, lower-cased scheme only
        return url
    scheme = parts.scheme.lower()
    scheme = "http" if scheme == "https" else scheme
    host = (parts.hostname or "").rstrip(".")
    netloc = host if port in (None, _DEFAULT_PORTS.get(parts.scheme.lower())) else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = f"{parts.username or ''}:{parts.password or ''}@{netloc}"
    path = "" if parts.path == "/" else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def iban_valid(text: str) -> bool:
    """ISO 13616 mod-97 check on an upper-case IBAN without spaces."""
    if not 15 <= len(text) <= 34 or not text.isascii() or not text.isalnum() or not text[:2].isalpha() \
            or not text[2:4].isdigit():
        return False
    moved = text[4:] + text[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def is_compound(tokens: tuple[Token, ...]) -> bool:
    return len(tokens) == 1 and tokens[0].startswith(COMPOUND)
