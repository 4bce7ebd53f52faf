"""The retrieval markup convention: `<untrusted source="...">...</untrusted>` inside any message.

Applications wrap retrieved text in it; the adapter splits the text into segments (the wrapped
part untrusted, with its source as provenance) and the markup never reaches the model. Parsing is
a linear scan with str.find, never a backtracking regex, so hostile input cannot stall it. An
unclosed tag makes the rest of the text untrusted: when in doubt, trust less.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

OPEN = "<untrusted"
CLOSE = "</untrusted>"


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    marked: bool
    source: str | None = None


def split_marked(text: str) -> list[Piece]:
    """Split `text` into plain and marked pieces, markup removed. No markup: one plain piece."""
    if OPEN not in text:
        return [Piece(text, marked=False)]
    pieces: list[Piece] = []
    pos = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            break
        tag_end = text.find(">", start + len(OPEN))
        # "<untrustedness" is prose, not a tag: the name must end at whitespace or '>'.
        if tag_end < 0 or text[start + len(OPEN)] not in " \t\r\n>":
            _append(pieces, Piece(text[pos : start + len(OPEN)], marked=False))
            pos = start + len(OPEN)
            continue
        _append(pieces, Piece(text[pos:start], marked=False))
        source = _attribute(text[start + len(OPEN) : tag_end], "source")
        body_start = tag_end + 1
        close = text.find(CLOSE, body_start)
        body_end = len(text) if close < 0 else close
        pieces.append(Piece(text[body_start:body_end], marked=True, source=source))
        pos = len(text) if close < 0 else close + len(CLOSE)
    _append(pieces, Piece(text[pos:], marked=False))
    return [p for p in pieces if p.text or p.marked]


def _append(pieces: list[Piece], piece: Piece) -> None:
    if pieces and not pieces[-1].marked and not piece.marked:
        pieces[-1] = Piece(pieces[-1].text + piece.text, marked=False)
    else:
        pieces.append(piece)


def _attribute(attrs: str, name: str) -> str | None:
    key = f"{name}="
    at = attrs.find(key)
    if at < 0:
        return None
    rest = attrs[at + len(key) :]
    if rest[:1] in ('"', "'"):
        end = rest.find(rest[0], 1)
        value = rest[1:end] if end > 0 else rest[1:]
    else:
        value = rest.split()[0] if rest.split() else ""
    return html.unescape(value) or None
