"""Maps character spans in a rewritten (normalised) text back to the text it was made from.

Only the places that changed are stored: between them the two texts run in step, so an ASCII
text costs nothing and a long text with a few look-alike characters costs a few entries.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field


@dataclass(slots=True)
class OffsetMap:
    """Changed pieces as parallel lists: new [ns, ne) was made from old [os, oe) by `tag`."""

    ns: list[int] = field(default_factory=list)
    ne: list[int] = field(default_factory=list)
    os: list[int] = field(default_factory=list)
    oe: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def add(self, new_start: int, new_end: int, old_start: int, old_end: int, tag: str) -> None:
        self.ns.append(new_start)
        self.ne.append(new_end)
        self.os.append(old_start)
        self.oe.append(old_end)
        self.tags.append(tag)

    def _old_start(self, pos: int) -> int:
        i = bisect_right(self.ns, pos) - 1  # last piece starting at or before pos
        if i < 0:
            return pos
        if pos < self.ne[i]:
            return self.os[i]
        return self.oe[i] + (pos - self.ne[i])

    def _old_end(self, pos: int) -> int:
        i = bisect_left(self.ns, pos) - 1  # last piece starting before pos
        if i < 0:
            return pos
        if pos <= self.ne[i]:
            return self.oe[i]
        return self.oe[i] + (pos - self.ne[i])

    def to_old(self, start: int, end: int) -> tuple[int, int]:
        """The span in the old text that produced new[start:end]."""
        if not self.ns:
            return start, end
        return self._old_start(start), max(self._old_end(end), self._old_start(start))

    def tags_in(self, start: int, end: int) -> set[str]:
        """Which rewrites touched new[start:end] (deletions strictly inside count)."""
        found: set[str] = set()
        i = bisect_left(self.ne, start)
        while i < len(self.ns) and self.ns[i] < end:
            if self.ns[i] != self.ne[i] or self.ns[i] > start:
                found.add(self.tags[i])
            i += 1
        return found
