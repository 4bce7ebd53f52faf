"""The retrieval markup convention: `<untrusted source="...">...</untrusted>` inside any message.

Applications wrap retrieved text in it; the adapter splits the text into segments (the wrapped
part untrusted, with its source as provenance) and the markup never reaches the model. Parsing is
a linear scan with str.find, never a backtracking regex, so hostile input cannot stall it.

Retrieved text is the attacker's: it may itself hold `</untrusted>` to end the span early and
make what follows read as the user's own words (which then vouch for tool arguments). So a span
cannot be closed from inside:
- an open tag with a `nonce` attribute (`<untrusted nonce="r4nd0m">`) ends only at the matching
  `</untrusted nonce="r4nd0m">`, which the content cannot guess;
- without one, the span runs to the *last* `</untrusted>` of the text: text between two spans is
  untrusted too (when in doubt, trust less), and tags inside are removed;
- an unclosed tag makes the rest of the text untrusted.
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
    last_close = text.rfind(CLOSE)
    while True:
        tag = _next_open(text, pos)
        if tag is None:
            break
        start, tag_end = tag
        _append(pieces, Piece(text[pos:start], marked=False))
        attrs = text[start + len(OPEN) : tag_end]
        source, nonce = _attribute(attrs, "source"), _attribute(attrs, "nonce")
        body_start = tag_end + 1
        if nonce:
            close_tag = f'</untrusted nonce="{nonce}">'
            close = text.find(close_tag, body_start)
            end = len(text) if close < 0 else close
            pieces.append(Piece(text[body_start:end], marked=True, source=source))
            pos = len(text) if close < 0 else close + len(close_tag)
            continue
        end = last_close if last_close >= body_start else len(text)
        pieces.extend(_region(text, body_start, end, source))
        pos = len(text) if end == len(text) else end + len(CLOSE)
    _append(pieces, Piece(text[pos:], marked=False))
    return [p for p in pieces if p.text or p.marked]


def _next_open(text: str, pos: int) -> tuple[int, int] | None:
    """(start, index of '>') of the next real open tag at or after `pos`."""
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            return None
        tag_end = text.find(">", start + len(OPEN))
        if tag_end < 0:
            return None
        # "<untrustedness" is prose, not a tag: the name must end at whitespace or '>'.
        if text[start + len(OPEN)] in " \t\r\n>":
            return start, tag_end
        pos = start + len(OPEN)


def _region(text: str, start: int, end: int, source: str | None) -> list[Piece]:
    """One untrusted region: every piece marked, tags inside removed, each part with the source
    of the tag before it (a forged tag can only name a source, never end the region)."""
    out: list[Piece] = []
    pos = start
    tag = _next_open(text, pos)  # found once per tag, never re-scanned: linear in the region
    close = text.find(CLOSE, pos, end)
    while True:
        if tag is not None and tag[1] >= end:
            tag = None
        cut = min(i for i in (close, tag[0] if tag else -1, end) if i >= 0)
        if text[pos:cut] or not out:
            out.append(Piece(text[pos:cut], marked=True, source=source))
        if cut == end:
            return out
        if tag is not None and cut == tag[0]:
            source = _attribute(text[tag[0] + len(OPEN) : tag[1]], "source")
            pos = tag[1] + 1
            tag = _next_open(text, pos)
        else:
            pos = cut + len(CLOSE)
        if close < pos:
            close = text.find(CLOSE, pos, end)


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
