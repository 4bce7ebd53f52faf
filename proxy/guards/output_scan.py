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
_DATA_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-%.]{24,}")


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # canary | system_prompt | image | link
    start: int
    end: int
    detail: str = ""


def words(text: str) -> list[str]:
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


@lru_cache(maxsize=256)
def shingles(trusted_texts: tuple[str, ...], k: int) -> tuple[frozenset[tuple[str, ...]], ...]:
    """Word n-grams (n = 1..k) of the trusted text; index n holds the n-grams."""
    grams: list[set[tuple[str, ...]]] = [set() for _ in range(k + 1)]
    for text in trusted_texts:
        ws = words(text)
        # Single words only when long enough to be distinctive ("the" starts no leak worth a hold).
        grams[1].update((w,) for w in ws if len(w) >= 4)
        for n in range(2, k + 1):
            grams[n].update(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))
    return tuple(frozenset(g) for g in grams)


class OverlapScan:
    """Word k-shingles of the trusted text; partial runs (from one distinctive word) are held."""

    def __init__(self, trusted_texts: Iterable[str], min_words: int = 8) -> None:
        self.k = max(3, min_words)
        # The same system prompt arrives with every request of an application: index it once.
        self._grams = shingles(tuple(trusted_texts), self.k)
        self._words: list[tuple[str, int, int]] = []  # (word, start, end) of complete words
        self._tail: tuple[str, ...] = ()
        self._pos = 0
        self._run: list[int] | None = None  # [first word, last word] of the current hit

    @property
    def empty(self) -> bool:
        return not self._grams[self.k]

    def scan(self, text: str, final: bool = False) -> tuple[list[Hit], bool]:
        hits: list[Hit] = []
        for m in _WORD.finditer(text, self._pos):
            if m.end() == len(text) and not final:
                break  # the word may go on in the next delta
            word = m.group().lower()
            self._words.append((word, m.start(), m.end()))
            self._tail = (*self._tail[1 - self.k :], word)  # the last k words
            self._pos = m.end()
            hit = self._check_last()
            if hit is not None:
                hits.append(hit)
        if final and self._run is not None:
            hits.append(self._close_run())
        return hits, self._partial()

    def _check_last(self) -> Hit | None:
        i = len(self._words) - 1
        if len(self._tail) == self.k and self._tail in self._grams[self.k]:
            if self._run is not None and i - self.k + 1 <= self._run[1] + 1:
                self._run[1] = i
            else:
                self._run = [i - self.k + 1, i]
            return None
        return self._close_run() if self._run is not None else None

    def _close_run(self) -> Hit:
        assert self._run is not None
        first, last = self._run
        self._run = None
        return Hit("system_prompt", self._words[first][1], self._words[last][2], f"{last - first + 1} words")

    def current_run(self) -> Hit | None:
        """The run still growing (a hit already, reported when it ends)."""
        if self._run is None:
            return None
        first, last = self._run
        return Hit("system_prompt", self._words[first][1], self._words[last][2], f"{last - first + 1} words")

    def _partial(self) -> bool:
        if self._run is not None:
            return True
        tail = self._tail
        return any(tail[-n:] in self._grams[n] for n in range(min(len(tail), self.k - 1), 0, -1))


class BeaconScan:
    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed = {h.lower() for h in allowed_hosts}
        self._pos = 0  # end of the last complete construct
        self._seen = 0  # text length at the last scan
        self._pending: int | None = None  # start of an unfinished construct at the tail

    def scan(self, text: str) -> tuple[list[Hit], bool]:
        # A construct can only complete in new text, and only if it started in the pending tail
        # or in the new text itself (one character back for the '!' of '!['): scan just that.
        start = self._pending if self._pending is not None else max(self._pos, self._seen - 1)
        start = max(start, len(text) - _MAX_BEACON_CHARS, 0)
        hits = []
        for m in _IMAGE_OR_LINK.finditer(text, start):
            self._pos = m.end()
            image = bool(m.group(1)) or m.group(4) is not None
            url = m.group(3) or m.group(4)
            why = self._carries_data(url, image)
            if why:
                hits.append(Hit("image" if image else "link", m.start(), m.end(), why))
        partial = _PARTIAL.search(text, max(start, self._pos))
        self._pending = partial.start() if partial is not None else None
        self._seen = len(text)
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
