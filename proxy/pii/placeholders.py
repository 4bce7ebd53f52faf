"""Typed, numbered placeholders for PII values, and their restoration in text and in streams.

A `Vault` gives the same placeholder to the same value within one request or one evidence
bundle (`<EMAIL_ADDRESS_1>` stays that address everywhere), so a reader can still follow who is
who. A `StreamRestorer` puts the real values back into streamed deltas, holding back only the tail
that could still be the start of a placeholder split across two chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.pii.analyzer import PiiHit

MAX_PLACEHOLDER = 48  # longest "<ENTITY_TYPE_123>" we ever mint, with room to spare


@dataclass(frozen=True, slots=True)
class Style:
    """How a placeholder looks: `<EMAIL_ADDRESS_1>` for the model, `[EMAIL_ADDRESS_1]` on disk."""

    open: str
    close: str

    def make(self, kind: str, n: int) -> str:
        return f"{self.open}{kind}_{n}{self.close}"

    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.open) + r"[A-Z][A-Z0-9_]*_\d+" + re.escape(self.close))


MODEL_STYLE = Style("<", ">")
EVIDENCE_STYLE = Style("[", "]")


@dataclass
class Vault:
    """value -> placeholder, consistent for one request (or one bundle)."""

    style: Style = MODEL_STYLE
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        found = self.by_value.get(key)
        if found is None:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            found = self.style.make(kind, self.counts[kind])
            self.by_value[key] = found
            self.by_placeholder[found] = value
        return found

    def replace(self, text: str, hits: Iterable[PiiHit]) -> str:
        """`text` with every hit's span swapped for its placeholder (hits must not overlap)."""
        out: list[str] = []
        pos = 0
        for hit in sorted(hits, key=lambda h: h.start):
            out.append(text[pos : hit.start])
            out.append(self.placeholder(hit.entity, text[hit.start : hit.end]))
            pos = hit.end
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """Placeholders this vault minted, back to their values; anything else is left alone."""
        if not self.by_placeholder or self.style.open not in text:
            return text
        return self.style.pattern().sub(lambda m: self.by_placeholder.get(m.group(0), m.group(0)), text)

    def values(self) -> set[str]:
        return set(self.by_placeholder.values())

    def kinds(self) -> dict[str, str]:
        """placeholder -> entity type, for the record (never the values)."""
        return {p: kind for (kind, _), p in self.by_value.items()}


class StreamRestorer:
    """Restores placeholders across arbitrarily split deltas, one instance per output channel."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._held = ""
        self._partial = re.compile(
            re.escape(vault.style.open) + f"[A-Z0-9_]{{0,{MAX_PLACEHOLDER}}}$"
        )

    def feed(self, delta: str) -> str:
        text = self._held + delta
        self._held = ""
        m = self._partial.search(text)
        if m is not None:
            # The tail may be the first half of a placeholder: keep it until the next delta.
            self._held, text = text[m.start() :], text[: m.start()]
        return self.vault.restore(text)

    def pending(self) -> bool:
        return bool(self._held)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.vault.restore(text)


class TextRestorer:
    """A stream's text rewriter: placeholders back to values, in one channel of plain text.

    The stream machinery hands it text after the output guards released it and before the wire
    format's codec encodes it, so no wire format is parsed here.
    """

    def __init__(self, vault: Vault) -> None:
        self._stream = StreamRestorer(vault)

    def feed(self, text: str) -> str:
        return self._stream.feed(text)

    def flush(self) -> str:
        return self._stream.flush()

    def whole(self, text: str) -> str:
        return self._stream.vault.restore(text)
