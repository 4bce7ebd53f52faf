"""Sentence spans of a text, so a finding can point at the sentence it came from.

Boundaries are sentence punctuation followed by space, and line breaks (documents, e-mails and
serialised tool output put one statement per line). Found with RE2: linear in the text length.
"""

from __future__ import annotations

from bisect import bisect_right

import re2

_BOUNDARY = re2.compile(r"[.!?\x{3002}\x{ff01}\x{ff1f}]+[\s]+|\s*\n\s*")
EXCERPT_CHARS = 240


class Sentences:
    """Lazily computed sentence starts of one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def _all(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _BOUNDARY.finditer(self.text)]
        return self._starts

    def around(self, start: int, end: int) -> tuple[int, int]:
        """The span of the sentence(s) holding text[start:end]."""
        starts = self._all()
        first = starts[bisect_right(starts, start) - 1]
        i = bisect_right(starts, max(end - 1, start))
        last = starts[i] if i < len(starts) else len(self.text)
        while last > first and self.text[last - 1].isspace():
            last -= 1
        return first, max(last, end)

    def excerpt(self, start: int, end: int) -> str:
        """The sentence around a match, clipped to EXCERPT_CHARS centred on the match."""
        first, last = self.around(start, end)
        if last - first > EXCERPT_CHARS:
            mid = (start + end) // 2
            first = max(first, mid - EXCERPT_CHARS // 2)
            last = min(last, first + EXCERPT_CHARS)
        return " ".join(self.text[first:last].split())
