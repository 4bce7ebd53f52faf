"""Finds the sentence a match sits in, so a finding can point at it.

Boundaries are sentence punctuation followed by space, and line breaks (documents, e-mails and
serialised tool output put one statement per line). Only a bounded stretch either side of the
match is searched, so the cost does not grow with the document, and the boundary pattern has no
quantifiers, so it cannot backtrack.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"[.!?\u3002\uff01\uff1f]\s|\n")
REACH = 400  # how far either side of a match a sentence boundary is looked for
EXCERPT_CHARS = 240


class Sentences:
    """Sentence lookups over one text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def around(self, start: int, end: int) -> tuple[int, int]:
        """The span of the sentence(s) holding text[start:end] (clipped to REACH either side)."""
        lo = max(0, start - REACH)
        first = lo
        for m in _BOUNDARY.finditer(self.text, lo, start):
            first = m.end()
        if first == lo and lo > 0:
            first = start  # no boundary within reach: start at the match itself
        after = _BOUNDARY.search(self.text, max(end - 1, start), min(len(self.text), end + REACH))
        last = after.start() + 1 if after else min(len(self.text), end + REACH)
        while first < start and self.text[first].isspace():
            first += 1
        return first, max(last, end)

    def excerpt(self, start: int, end: int) -> str:
        """The sentence around a match, clipped to EXCERPT_CHARS centred on the match."""
        first, last = self.around(start, end)
        if last - first > EXCERPT_CHARS:
            mid = (start + end) // 2
            first = max(first, mid - EXCERPT_CHARS // 2)
            last = min(last, first + EXCERPT_CHARS)
        return " ".join(self.text[first:last].split())
