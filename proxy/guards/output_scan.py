"""Incremental detectors for leaks in model output: canary tokens, system-prompt overlap, beacons. Pure.

Each detector is fed the output as it streams and reports complete hits (with character spans in
the whole output) plus whether text at the tail could still become a hit, so the stream guard can
hold it back. Work per delta is bounded: scans restart from the last position that can matter,
never from the start of the output.

- Canary: an exact token planted in the system prompt; any appearance means the prompt leaked.
- System prompt: `min_words` consecutive words (lower-cased) that also occur consecutively in
  the trusted text; a run of overlapping matches is one hit, extended while it continues.
- Beacons: markdown images (and <img>) whose URL carries data (a query string or a long token in
  the path) fetch themselves when rendered, sending data out; markdown links with long query
  values are the click-to-exfiltrate form. Hosts in `allowed_hosts` are exempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

_WORD = re.compile(r"\w+")
_NOT_WORD = re.compile(r"\W")
# Every ASCII character that is not a word character (\w) becomes a space.
_ASCII_NOT_WORD = str.maketrans({chr(c): " " for c in range(128) if not _WORD.fullmatch(chr(c))})
_ONES = re.compile(rb"\x01+")  # a stretch of words that are all in the trusted text
_MAX_BEACON_CHARS = 2600  # alt text + URL + title: longer constructs are not tracked
_IMAGE_OR_LINK = re.compile(
    r"(!?)\[([^\]\n]{0,200})\]\(\s*<?(https?://[^\s)>]{1,2048})>?(?:\s+\"[^\"\n]{0,200}\")?\s*\)"
    r"|<img\b[^>]{0,300}?\bsrc\s*=\s*[\"']?(https?://[^\s\"'>]{1,2048})[^>]{0,300}>",
    re.IGNORECASE,
)
# The tail of a construct that is not finished yet: more text could make it a beacon.
_PARTIAL = re.compile(
    r"(?:!?\[[^\]\n]{0,200}(?:\](?:\(\s*<?[^\s)>]{0,2048}(?:>?\s+\"[^\"\n]{0,200})?)?)?"
    r"|<(?:i(?:m(?:g(?:\s[^>]{0,700})?)?)?)?|!)\Z",
    re.IGNORECASE,
)
_OPENER = re.compile(r"[!\[<]")
_DATA_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-%.]{24,}")


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # canary | system_prompt | image | link
    start: int
    end: int
    detail: str = ""


def words(text: str) -> list[str]:
    """The text's \\w+ words, lower-cased."""
    if text.isascii():  # \w is [A-Za-z0-9_] here: C string methods split and lower it at once
        return text.lower().translate(_ASCII_NOT_WORD).split()
    return [w.lower() for w in _WORD.findall(text)]


class CanaryScan:
    def __init__(self, token: str) -> None:
        self.token = token
        self._pos = 0

    def scan(self, text: str) -> tuple[list[Hit], bool]:
        hits = []
        while (at := text.find(self.token, self._pos)) >= 0:
            hits.append(Hit("canary", at, at + len(self.token)))
            self._pos = at + len(self.token)
        self._pos = max(self._pos, len(text) - len(self.token) + 1)
        return hits, self._prefix_at_end(text)

    def _prefix_at_end(self, text: str) -> bool:
        """Does the text end with the start of the token (so the next delta may complete it)?"""
        tail = text[-(len(self.token) - 1) :] if len(self.token) > 1 else ""
        at = tail.find(self.token[0])
        while at >= 0:
            if self.token.startswith(tail[at:]):
                return True
            at = tail.find(self.token[0], at + 1)
        return False


class Shingles:
    """The trusted text indexed for overlap, as far as scans need it: its vocabulary at once (an
    answer that shares no run of k words with it needs nothing more), and its word n-grams for
    each n the first time a scan asks. Shared by every request with the same trusted text; filling
    in an n is idempotent, so concurrent scans may race on it harmlessly."""

    def __init__(self, trusted_texts: tuple[str, ...], k: int) -> None:
        self._texts = [words(text) for text in trusted_texts]
        self.vocab = frozenset().union(*self._texts)  # a word outside it is in no n-gram
        self.has_k = any(len(ws) >= k for ws in self._texts)  # does any k-gram exist at all
        self._grams: dict[int, frozenset[tuple[str, ...]]] = {}

    def grams(self, n: int) -> frozenset[tuple[str, ...]]:
        """The n-grams of the trusted text (for n = 1: its words of 4+ letters)."""
        found = self._grams.get(n)
        if found is None:
            if n == 1:  # single words only when long enough to be distinctive: "the" starts no leak
                found = frozenset((w,) for ws in self._texts for w in ws if len(w) >= 4)
            else:
                found = frozenset(tuple(ws[i : i + n]) for ws in self._texts for i in range(len(ws) - n + 1))
            self._grams[n] = found
        return found


@lru_cache(maxsize=256)
def shingles(trusted_texts: tuple[str, ...], k: int) -> Shingles:
    return Shingles(trusted_texts, k)


class OverlapScan:
    """Word k-shingles of the trusted text; partial runs (from one distinctive word) are held.

    Only the last k words are kept, and only while each is a word of the trusted text: a word
    outside it ends every n-gram it could be part of, so most words of an answer cost one set
    lookup, and memory stays bounded however long the stream.
    """

    def __init__(self, trusted_texts: Iterable[str], min_words: int = 8) -> None:
        self.k = max(3, min_words)
        # The same system prompt arrives with every request of an application: index it once.
        self._index = shingles(tuple(trusted_texts), self.k)
        self._vocab = self._index.vocab
        self._count = 0  # complete words seen
        self._tail: tuple[str, ...] = ()  # the last words (at most k), all in the vocabulary
        self._starts: list[int] = []  # where each word of the tail starts
        self._pos = 0
        self._run: list[int] | None = None  # [first word, last word, start, end] of the current hit
        # A word still growing at the tail is read again with the next delta; once it is longer than
        # any word of the trusted text it can never match, so the rest of it is skipped instead
        # (re-reading an endless "word" on every delta would make the scan quadratic).
        self._longest = max(map(len, self._vocab), default=0)
        self._skipping = False  # inside such a word: its remaining characters are not words

    @property
    def empty(self) -> bool:
        return not self._index.has_k

    def scan(self, text: str, final: bool = False) -> tuple[list[Hit], bool]:
        start = self._pos
        hits: list[Hit] = []
        if self._skipping:
            after = _NOT_WORD.search(text, start)
            if after is None and not final:
                self._pos = len(text)
                return hits, self._partial()
            # The long word has ended (or the text has): one word outside the vocabulary.
            self._skipping, self._count = False, self._count + 1
            self._reset(hits)
            start = after.start() if after is not None else len(text)
        region = text[start:] if start else text
        if region.isascii():  # \w is [A-Za-z0-9_] here: C string methods split and lower it at once
            low = region.lower().translate(_ASCII_NOT_WORD).split()
            written = low  # lower-casing ASCII keeps every length
        else:
            written = _WORD.findall(text, start)
            low = [w.lower() for w in written]
        if low:
            if not final and _WORD.match(text, len(text) - 1) is not None:
                if len(written[-1]) > self._longest:  # outside the vocabulary however it goes on
                    self._pos, self._skipping = len(text), True
                else:
                    self._pos = len(text) - len(written[-1])  # the word may go on: read it again next time
                low.pop()
            else:
                self._pos = len(text)
            if low:
                self._advance(text, start, low, hits)
        else:
            self._pos = len(text)  # no word at all (a run of punctuation): nothing here to read again
        if final and self._run is not None:
            hits.append(self._close_run())
        return hits, self._partial()

    def _advance(self, text: str, start: int, low: list[str], hits: list[Hit]) -> None:
        """Take in complete words (lower-cased, from `start`). A word outside the trusted vocabulary
        ends every n-gram it could be in, so only stretches of vocabulary words that can hold k of
        them (or that end the text: the tail a later delta may continue) are walked word by word,
        with their positions; the rest is bookkeeping."""
        inside = bytes(map(self._vocab.__contains__, low))  # 1: a word of the trusted text
        base, n, k = self._count, len(low), self.k
        self._count += n
        carried = len(self._tail)  # vocabulary words the last delta ended with
        found: list[re.Match[str]] = []  # the words' positions, found only when a stretch needs them
        for stretch in _ONES.finditer(inside):
            first, end = stretch.span()
            if first > 0:  # a word outside the vocabulary came before: it closed any run
                self._reset(hits)
            if end - first + (carried if first == 0 else 0) < k and end < n:
                continue  # too short to hold k words, and not the tail: no n-gram can match
            found = found or list(_WORD.finditer(text, start))
            for j in range(first, end):
                m = found[j]
                self._tail = (*self._tail[1 - k :], low[j])  # the last k words
                self._starts = [*self._starts[1 - k :], m.start()]
                hit = self._check_last(base + j, m.end())
                if hit is not None:
                    hits.append(hit)
        if not inside[-1]:
            self._reset(hits)  # the words end with one outside the vocabulary

    def _reset(self, hits: list[Hit]) -> None:
        self._tail, self._starts = (), []
        if self._run is not None:
            hits.append(self._close_run())

    def _check_last(self, i: int, end: int) -> Hit | None:
        if len(self._tail) == self.k and self._tail in self._index.grams(self.k):
            if self._run is not None and i - self.k + 1 <= self._run[1] + 1:
                self._run[1], self._run[3] = i, end
            else:
                self._run = [i - self.k + 1, i, self._starts[0], end]
            return None
        return self._close_run() if self._run is not None else None

    def _close_run(self) -> Hit:
        hit = self.current_run()
        assert hit is not None
        self._run = None
        return hit

    def current_run(self) -> Hit | None:
        """The run still growing (a hit already, reported when it ends)."""
        if self._run is None:
            return None
        first, last, start, end = self._run
        return Hit("system_prompt", start, end, f"{last - first + 1} words")

    def _partial(self) -> bool:
        if self._run is not None:
            return True
        tail = self._tail
        return any(tail[-n:] in self._index.grams(n) for n in range(min(len(tail), self.k - 1), 0, -1))


class BeaconScan:
    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed = {h.lower() for h in allowed_hosts}
        self._pos = 0  # end of the last complete construct
        self._seen = 0  # text length at the last scan
        self._pending: int | None = None  # start of an unfinished construct at the tail

    def scan(self, text: str) -> tuple[list[Hit], bool]:
        # A construct can only complete in new text, and only if it started in the new text itself
        # (one character back for the '!' of '![') or in the pending tail, within the longest
        # construct tracked. New text is always read whole, however large the delta.
        start = max(self._pos, self._seen - 1, 0)
        if self._pending is not None:
            start = min(start, max(self._pending, len(text) - _MAX_BEACON_CHARS))
        self._seen = len(text)
        # Every construct, finished or not, starts with '!', '[' or '<': prose without them is done.
        first = _OPENER.search(text, start)
        if first is None:
            self._pending = None
            return [], False
        hits = []
        for m in _IMAGE_OR_LINK.finditer(text, first.start()):
            self._pos = m.end()
            image = bool(m.group(1)) or m.group(4) is not None
            url = m.group(3) or m.group(4)
            why = self._carries_data(url, image)
            if why:
                hits.append(Hit("image" if image else "link", m.start(), m.end(), why))
        partial = _PARTIAL.search(text, max(first.start(), self._pos))
        self._pending = partial.start() if partial is not None else None
        return hits, partial is not None

    def _carries_data(self, url: str, image: bool) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in self.allowed or any(host.endswith("." + h) for h in self.allowed):
            return ""
        query = parse_qsl(parts.query, keep_blank_values=True)
        if image and (query or parts.query):
            return f"image URL to {host} carries a query string"
        if image and _DATA_TOKEN.search(parts.path):
            return f"image URL to {host} carries a data-like path"
        long_values = [k for k, v in query if len(v) >= 24]
        if long_values or (not image and _DATA_TOKEN.search(parts.query)):
            return f"link to {host} carries data in its query ({', '.join(long_values) or 'query'})"
        return ""
