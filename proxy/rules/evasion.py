"""Rewrites that undo evasions a reader (human or model) steps over without noticing.

Each is linear in the text, runs only when a hint from the one RE2 pass says it could apply,
and records an OffsetMap so findings still point into the original text:

- look-alikes: a word whose every non-ASCII letter imitates an ASCII one ("ignore" spelled with Cyrillic,
  Greek or Armenian look-alikes, even with no ASCII letter left to reveal the spoof);
- markup inside words: "ig**no**re", "ig<b>no</b>re", "i<span>gn</span>ore";
- typos in the words attacks are built from, one edit away ("ignroe", "instrucions");
- ciphers: ROT-n (every shift) and reversed text, recognised by a shifted key word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from itertools import product

import re2

from proxy.rules.leet import MAX_AMBIGUOUS
from proxy.rules.offsets import OffsetMap
from proxy.rules.vocabulary import WORDS

# Words attack text is built from; long enough that one edit does not reach an everyday word.
KEYWORDS = (
    "ignore", "disregard", "instructions", "instruction", "previous", "prompt", "system", "override",
    "bypass", "reveal", "password", "jailbreak", "restrictions", "guidelines", "forget", "unrestricted",
    "uncensored", "unfiltered", "confidential", "developer", "assistant", "important",
)
# Words whose shifted spelling hints at a cipher; a shift is only undone when it turns the text's
# words into common English ones (see `decipher`).
CIPHER_WORDS = (
    "ignore", "instructions", "previous", "password", "disregard", "prompt", "system", "secret",
    "your", "you", "the", "and", "this", "that", "with", "from", "what", "now", "must", "tell", "write",
)
_COMMON_WORDS = """the you your and this that with from what now must tell write all are not for have will
be to of is it in on me my say print reveal ignore previous instructions prompt system password"""
COMMON = frozenset(_COMMON_WORDS.split())
_WORDS = re.compile(r"[a-z]+")
_ALPHA = "abcdefghijklmnopqrstuvwxyz"


def _shift(word: str, k: int) -> str:
    return "".join(_ALPHA[(_ALPHA.index(c) + k) % 26] for c in word)


def _variants(word: str) -> set[str]:
    """RE2 fragments for every spelling one edit from `word` (substitute, drop, insert, swap)."""
    out = set()
    for i in range(len(word)):
        out.add(word[:i] + "[a-z]?" + word[i + 1 :])
        out.add(word[:i] + "[a-z]" + word[i:])
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    out.add(word + "[a-z]")
    return out


TYPO_PATTERN = r"\b(?:" + "|".join(sorted(v for w in KEYWORDS for v in _variants(w))) + r")\b"
CIPHER_PATTERN = (
    r"\b(?:"
    + "|".join(sorted({_shift(w, k) for w in CIPHER_WORDS for k in range(1, 26)} | {w[::-1] for w in CIPHER_WORDS}))
    + r")\b"
)
# "_" counts too: a model reads "ig_no_re" as "ignore" (snake_case identifiers are joined in this
# view as well, which the learned layer was measured with: keeping them raised its false positives
# on held-out code).
MARKUP_PATTERN = r"[a-zA-Z](?:\*\*?|__?|~~|</?[a-zA-Z][a-zA-Z0-9]{0,8}>)+[a-zA-Z]"

_TYPO = re2.compile(TYPO_PATTERN)
_CIPHER = re2.compile(CIPHER_PATTERN)
_MARK = r"(?:\*\*?|__?|~~|</?[a-z][a-z0-9]{0,8}>)"
# Runs of marks, looked for only where a mark character is ("*", "_", "~", "<": rare in prose; a
# one-character class is what Python's re can skip to quickly). Each mark is bounded: linear.
_MARKS = re.compile(_MARK + "+")
_MARK_CHAR = re.compile(r"[*_~<]")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
# Words of letters in any script (a plain class, no backtracking: linear on any text).
_LETTERS = re.compile(r"[^\W\d_]+")


def _distance_one(a: str, b: str) -> bool:
    """True when `a` is one substitution, deletion, insertion or adjacent swap from `b`."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :] or (a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :])
    return a[i + 1 :] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1 :]


@lru_cache(maxsize=4096)
def _correct(token: str) -> str | None:
    if token in KEYWORDS:
        return None
    for word in KEYWORDS:
        # an inflection ("developers", "prompted") is the word itself, not a typo
        if _distance_one(token, word) and not token.startswith(word):
            return word
    return None


def fix_typos(text: str) -> tuple[str, OffsetMap] | None:
    """Key words one edit away replaced by the word itself; None when there are none."""
    omap = OffsetMap()
    parts: list[str] = []
    opos = npos = 0
    for m in _TYPO.finditer(text):
        word = _correct(m.group())
        if word is None:
            continue
        parts.append(text[opos : m.start()])
        npos += m.start() - opos
        omap.add(npos, npos + len(word), m.start(), m.end(), "typo")
        parts.append(word)
        npos += len(word)
        opos = m.end()
    if not omap.ns:
        return None
    parts.append(text[opos:])
    return "".join(parts), omap


def _mark_runs(text: str) -> Iterator[re.Match[str]]:
    pos = 0
    while (found := _MARK_CHAR.search(text, pos)) is not None:
        run = _MARKS.match(text, found.start())
        if run is None:
            pos = found.start() + 1
            continue
        yield run
        pos = run.end()


def strip_markup(text: str) -> tuple[str, OffsetMap] | None:
    """Emphasis and tags inside a word removed, with those closing it ("ig**no**re", "fr**om**")."""
    omap = OffsetMap()
    parts: list[str] = []
    opos = npos = 0
    inner_end = -1  # end of the last mark found inside a word
    for m in _mark_runs(text):
        start, end = m.span()
        if start == 0 or text[start - 1] not in _LOWER:
            continue
        inside = end < len(text) and text[end] in _LOWER
        closing = not inside and inner_end >= 0 and all(c in _LOWER for c in text[inner_end:start])
        if not (inside or closing):
            continue
        if inside:
            inner_end = end
        parts.append(text[opos:start])
        npos += start - opos
        omap.add(npos, npos, start, end, "markup")
        opos = end
    if not omap.ns:
        return None
    parts.append(text[opos:])
    return "".join(parts), omap


def fold_lookalike_words(text: str, skeleton: str) -> tuple[str, OffsetMap] | None:
    """Words made only of ASCII letters and look-alikes, spelled in ASCII.

    `skeleton` is `text` with every look-alike spelled as the letter it imitates (position for
    position). Look-alikes of capital I imitate "l" in the confusables data; where that does not
    make a known word, "i" is tried (for at most MAX_AMBIGUOUS of them).
    """
    omap = OffsetMap()
    chars: list[str] | None = None
    for m in _LETTERS.finditer(text):
        word = m.group()
        if word.isascii():
            continue
        spelled = skeleton[m.start() : m.end()]
        if not (spelled.isascii() and spelled.isalnum()):  # digits: look-alikes of digits, leetspeak next
            continue
        spelled = _resolve_il(word, spelled)
        chars = chars if chars is not None else list(text)
        for i, c in enumerate(spelled):
            if c != word[i]:
                chars[m.start() + i] = c
                omap.add(m.start() + i, m.start() + i + 1, m.start() + i, m.start() + i + 1, "confusables")
    return ("".join(chars), omap) if chars is not None else None


def _resolve_il(word: str, spelled: str) -> str:
    if spelled in WORDS:
        return spelled
    spots = [i for i, c in enumerate(spelled) if c == "l" and not word[i].isascii()][:MAX_AMBIGUOUS]
    chars = list(spelled)
    for letters in product("li", repeat=len(spots)):
        for i, letter in zip(spots, letters, strict=True):
            chars[i] = letter
        if "".join(chars) in WORDS:
            return "".join(chars)
    return spelled


def _english(text: str) -> int:
    return sum(w in COMMON for w in _WORDS.findall(text[:CIPHER_SAMPLE]))


CIPHER_SAMPLE = 2000  # characters read to judge a shift: bounded whatever the text's size


def decipher(text: str) -> tuple[str, str] | None:
    """(plain text, "rot<n>" or "reversed") when undoing a cipher makes the text read as English.

    The candidate shifts are those of the ciphered words found (at most a few); one counts as
    right when the deciphered sample holds at least three common words and twice the original's.
    """
    candidates: dict[str, str] = {}
    for n, m in enumerate(_CIPHER.finditer(text[:CIPHER_SAMPLE])):
        if n >= 16:
            break
        token = m.group()
        for word in CIPHER_WORDS:
            if token == word[::-1]:
                candidates.setdefault("reversed", "")
            elif len(token) == len(word):
                k = (_ALPHA.index(token[0]) - _ALPHA.index(word[0])) % 26
                if k and _shift(word, k) == token:
                    candidates.setdefault(f"rot{k}", "")
    before = _english(text)
    for how in candidates:
        if how == "reversed":
            plain = text[::-1]
        else:
            k = int(how[3:])
            plain = text.translate(str.maketrans(_ALPHA, _ALPHA[-k:] + _ALPHA[:-k]))
        after = _english(plain)
        if after >= 3 and after >= 2 * before:
            return plain, how
    return None
