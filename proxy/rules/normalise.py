"""Folds text into the form rules are written against, remembering how to map spans back.

The primary view: NFKC, diacritics stripped from Latin letters, look-alikes inside mixed-script
words folded to ASCII with the confusables table (whole words in another script stay as they
are), zero-width / bidi / variation / tag characters removed (tag characters spell hidden ASCII
and are decoded), lower-cased. An optional second view also undoes leetspeak
and letter spacing ("1gn0r3", "i g n o r e"); it is built only when the text has such tokens,
because it damages ordinary text (numbers, e-mail addresses). Folding happens only in the text
we match on; findings report spans in the original. Token searches use RE2: linear in the input.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import confusable_homoglyphs
import re2

from proxy.rules import evasion, leet
from proxy.rules.hints import SEPARATORS, hints
from proxy.rules.offsets import OffsetMap

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_TAG_BLOCK = range(0xE0000, 0xE0080)
# Invisible in most renderers yet read by a model: strip before matching.
_INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
    "\u206a\u206b\u206c\u206d\u206e\u206f\u3164\ufeff\uffa0"
)
_SPACED = re2.compile(r"\b(?:[a-z][" + SEPARATORS + r"]{1,3}){3,}[a-z]\b")
_GAP = re.compile("[" + SEPARATORS + "]+")


def _unescape_breaks(text: str) -> str:
    """Literal line-break escapes (JSON / YAML tool results) read as the breaks they stand for.

    "...reduce\\n\\nIgnore your..." has no word boundary before "Ignore" and no sentence
    break for the rules' gaps to stop at. Each two-character escape becomes a space and the
    control character it names: the same length, so spans need no map.
    """
    if "\\" not in text:
        return text
    return text.replace("\\n", " \n").replace("\\r", " \r").replace("\\t", "  ")


@dataclass(frozen=True, slots=True)
class View:
    """One text a rule set is matched against, and the chain of maps back to the original."""

    text: str
    maps: tuple[OffsetMap, ...]
    extra: tuple[str, ...] = ()  # decodings that apply to the whole view (e.g. "leet")
    # `text` with every look-alike spelled as the ASCII letter it imitates, position for
    # position; "" when the text has none. Read from the original characters: a capital Greek
    # Tau imitates "T", while the "τ" it lower-cases to imitates nothing.
    skeleton: str = ""

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        for m in reversed(self.maps):
            start, end = m.to_old(start, end)
        return start, end

    def decoding(self, start: int, end: int) -> tuple[str, ...]:
        """The rewrites that touched this span, outermost first; ("plain",) if none."""
        tags: list[str] = []
        for m in reversed(self.maps):
            found = m.tags_in(start, end)
            tags.extend(sorted(found - set(tags)))
            start, end = m.to_old(start, end)
        for tag in self.extra:
            if tag not in tags:
                tags.insert(0, tag)
        return tuple(tags) or ("plain",)


@lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    path = Path(confusable_homoglyphs.__file__).parent / "confusables.json"
    table: dict[str, list[dict[str, str]]] = json.loads(path.read_text(encoding="utf-8"))
    folded: dict[str, str] = {}
    for char, entries in table.items():
        if char.isascii():
            continue
        targets = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii()]
        letters = [t for t in targets if t.isalpha()] or [t for t in targets if t.isdigit()]
        if letters:
            folded[char] = letters[0].lower()
    return folded


@lru_cache(maxsize=65536)
def _fold(ch: str) -> tuple[str, str | None]:
    """One non-ASCII character -> (replacement, why); why is None when it stays as is."""
    cp = ord(ch)
    if cp in _TAG_BLOCK:
        return (chr(cp - 0xE0000).lower() if 0x20 <= cp - 0xE0000 < 0x7F else ""), "unicode_tags"
    if ch in _INVISIBLE or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0x180B <= cp <= 0x180F:
        return "", "invisible"
    if unicodedata.category(ch) == "Cf":  # format characters (U+1D173 musical beams...): unseen
        return "", "invisible"
    if 0x064B <= cp <= 0x065F or cp == 0x0670:
        return "", "diacritics"  # Arabic harakat: optional vowel marks, routinely omitted
    out, why = unicodedata.normalize("NFKC", ch), None
    if out != ch:
        why = "nfkc"
    bare = "".join(c for c in unicodedata.normalize("NFKD", out) if not unicodedata.combining(c))
    if bare and bare.isascii() and bare != out:
        out, why = bare, why or "diacritics"
    if why is None and out.lower() != ch:
        why = "case"
    return out.lower(), why


@lru_cache(maxsize=65536)
def _lookalike(ch: str) -> str | None:
    """The ASCII letter a non-ASCII character imitates, if the confusables table has one.

    Asked of the character as received, then of its NFKC form (a mathematical bold capital Eta
    is a capital Eta, which imitates "H"), never of a lower-cased form: lower-casing Greek and
    Cyrillic capitals gives letters that imitate something else (capital Nu imitates "N", small nu "v").
    """
    if ch.isascii():
        return None
    table = _confusables()
    found = table.get(ch)
    if found is None:
        nfkc = unicodedata.normalize("NFKC", ch)
        found = table.get(nfkc) if len(nfkc) == 1 and not nfkc.isascii() else None
    return found


@lru_cache(maxsize=1)
def _skeleton_table() -> dict[int, str]:
    """str.translate table: each look-alike character -> its ASCII letter (for runs NFKC keeps)."""
    return {ord(c): letter for c, letter in _confusables().items() if len(c) == 1}


# Characters the per-character fold may change even in NFKC text: Latin letters with accents,
# combining marks, Arabic vowel marks, invisible/format characters, variation selectors, tags.
_FOLDABLE = re.compile(
    "[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f\u064b-\u065f\u0670\ufe00-\ufe0f\u180b-\u180f"
    + "".join(sorted(_INVISIBLE))
    + "\U000e0000-\U000e01ef\U0001d173-\U0001d17a]"
)


def _untouched(run: str) -> bool:
    """True when folding `run` could only change case, and not its length."""
    return (
        unicodedata.is_normalized("NFKC", run)
        and not unicodedata.combining(run[0])
        and _FOLDABLE.search(run) is None
        and len(run.lower()) == len(run)
    )


def _mixed_script(text: str, start: int, end: int) -> bool:
    """A non-ASCII run glued to ASCII letters is a look-alike spoof (Cyrillic "o" inside "ignore"), not a word."""
    before = start > 0 and text[start - 1].isascii() and text[start - 1].isalpha()
    after = end < len(text) and text[end].isascii() and text[end].isalpha()
    return before or after


def fold_pattern(pattern: str) -> str:
    """A rule pattern in the form the text is matched in: NFKC, Latin accents stripped.

    Only letters and marks are folded: a fullwidth question mark must not become the operator "?".
    Case is kept (it is regex syntax: \\W is not \\w); matching is case-insensitive anyway.
    """
    if pattern.isascii():
        return pattern
    out = []
    for ch in pattern:
        if ch.isascii() or unicodedata.category(ch)[0] not in "LM":
            out.append(ch)
            continue
        folded = unicodedata.normalize("NFKC", ch)
        bare = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
        out.append(bare if bare and bare.isascii() and bare.isalpha() else folded)
    return "".join(out)


def normalise(text: str) -> View:
    """The primary view of `text`."""
    if text.isascii():
        # lower() keeps ASCII length, and so does unescaping: spans are identical
        return View(_unescape_breaks(text.lower()), ())
    omap = OffsetMap()
    parts: list[str] = []
    skeleton: list[str] = []  # parts, with look-alikes spelled in ASCII (same lengths)
    looks = False
    npos = opos = 0
    for run in _NON_ASCII.finditer(text):
        chunk = text[opos : run.start()].lower()
        parts.append(chunk)
        skeleton.append(chunk)
        npos += len(chunk)
        opos = run.start()
        fold_lookalikes = _mixed_script(text, run.start(), run.end())
        if not fold_lookalikes and _untouched(run.group()):
            lowered = run.group().lower()  # most non-Latin text: nothing to fold, keep it in step
            spelled = run.group().translate(_skeleton_table()).lower()
            looks = looks or spelled != lowered
            parts.append(lowered)
            skeleton.append(spelled)
            npos, opos = npos + len(lowered), run.end()
            continue
        for ch in run.group():
            rep, why = _fold(ch)
            look = _lookalike(ch)
            if look is not None and len(rep) != 1:
                if rep.isalpha():
                    look = None  # a ligature or digraph NFKC spells out ("ﬁ" -> "fi") reads as those letters
                else:  # NFKC gives a space and a mark (Greek ypogegrammeni): the look-alike is what shows
                    rep, why = look, "confusables"
            if fold_lookalikes and look is not None:
                rep, why = look, "confusables"
            if unicodedata.category(ch)[0] == "M" and parts and parts[-1][-1:].isascii():
                rep, why = "", "diacritics"  # a combining accent on a Latin letter
            skeleton.append(look if look is not None and rep else rep if why is not None else ch)
            looks = looks or (look is not None and bool(rep))
            if why is None:
                parts.append(ch)
                npos, opos = npos + 1, opos + 1
                continue
            if why != "case" or len(rep) != 1:
                omap.add(npos, npos + len(rep), opos, opos + 1, why)
            parts.append(rep)
            npos, opos = npos + len(rep), opos + 1
    tail = text[opos:].lower()
    parts.append(tail)
    skeleton.append(tail)
    spelled = _unescape_breaks("".join(skeleton)) if looks else ""
    return View(_unescape_breaks("".join(parts)), (omap,) if omap.ns else (), (), spelled)


def deobfuscate(view: View, found: frozenset[str] | None = None) -> View | None:
    """A second view with evasions undone, or None when the text shows none.

    Look-alike words, leetspeak, markup inside words, letter spacing and typos in key words, in
    that order (each step reads the previous one's text). `found` is `hints(view.text)` when
    the caller already has it.
    """
    found = hints(view.text) if found is None else found
    text = view.text
    maps: list[OffsetMap] = []

    def step(result: tuple[str, OffsetMap] | None) -> None:
        nonlocal text
        if result is not None:
            text = result[0]
            maps.append(result[1])

    if view.skeleton:
        step(evasion.fold_lookalike_words(text, view.skeleton))
        if maps:  # the words it spelled in ASCII may hold leetspeak, spacing or typos
            found = found | hints(text)
    if "leet" in found:
        step(leet.undo(text))
    if "markup" in found:
        step(evasion.strip_markup(text))
    if "spacing" in found:
        step(_join_spaced(text))
    if "typo" in found:
        step(evasion.fix_typos(text))
    if not maps:
        return None
    return View(text, (*view.maps, *maps), view.extra)


def decipher(view: View, found: frozenset[str]) -> View | None:
    """The view deciphered (ROT-n, reversed) when a ciphered key word shows, else None."""
    if "cipher" not in found:
        return None
    result = evasion.decipher(view.text)
    if result is None:
        return None
    plain, how = result
    whole = OffsetMap()
    if how == "reversed":  # no position maps in order: the whole text stands for any span
        whole.add(0, len(plain), 0, len(view.text), how)
        return View(plain, (*view.maps, whole), view.extra)
    return View(plain, view.maps, (*view.extra, how))


def _joined(run: str) -> str:
    """Letters of a spaced run. The gap seen most often is the one put between letters; a gap
    unlike it that holds a space, or is longer, is a word break ("i.g.n.o.r.e a.l.l",
    "i g n o r e   a l l", "t.i.t.l.e: a.n.n.u.a.l")."""
    gaps = _GAP.findall(run)
    if not gaps:
        return run
    common = Counter(gaps).most_common(1)[0][0]
    words = {g for g in gaps if g != common and (" " in g or len(g) > len(common))}
    if not words:
        return "".join(c for c in run if c.isalpha())
    spacer = "" if common.isspace() else common.strip()
    return _GAP.sub(lambda m: _word_break(m.group(), spacer) if m.group() in words else "", run)


def _word_break(gap: str, spacer: str) -> str:
    """A gap between words, less the separator put between letters: "e: a" keeps its colon."""
    kept = gap.replace(spacer, "").strip() if spacer else gap.strip()
    return f"{kept} " if kept else " "


def _join_spaced(text: str) -> tuple[str, OffsetMap] | None:
    space_map = OffsetMap()
    parts: list[str] = []
    opos = npos = 0
    for m in _SPACED.finditer(text):
        parts.append(text[opos : m.start()])
        npos += m.start() - opos
        joined = _joined(m.group())
        space_map.add(npos, npos + len(joined), m.start(), m.end(), "spacing")
        parts.append(joined)
        npos += len(joined)
        opos = m.end()
    if not space_map.ns:
        return None
    parts.append(text[opos:])
    return "".join(parts), space_map
