"""Hashed words and word pairs of a normalised text, with where each one starts.

The learned layer reads the same normalised view the rules match (look-alikes folded, invisible
characters dropped, leetspeak and letter spacing undone), with whitespace runs collapsed and
digits folded to "0". Character n-grams are left out on purpose: measured leave one source out,
they taught the model the corpus's scripts and carriers (every non-English corpus text is an
attack) rather than what a text asks for, and cost recall on unseen sources and false positives on
everyday non-English text. Every feature is a bucket in a table of 2**BITS weights, found by a
polynomial hash of its characters: any substring's hash comes from two prefix sums (the
multiplier is odd, so it has an inverse modulo 2**64), which makes the whole extraction a few
vectorised numpy passes, linear in the text, with no per-character Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

BITS = 18
_M = 0x100000001B3  # odd: invertible modulo 2**64
_M_INV = pow(_M, -1, 1 << 64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - BITS)
# One salt per feature kind so a word and a pair never share a bucket by construction.
_SALT = {"word": 0x1B873593, "pair": 0x6C8E9CF5}

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Features:
    """Bucket per feature, its start in the collapsed text, and that text's map to the view."""

    buckets: I64
    starts: I64  # position in the collapsed text
    length: int  # characters in the collapsed text
    positions: I64  # collapsed index -> index in the normalised view
    sizes: I64  # characters each feature spans in the collapsed text


def _powers(base: int, n: int) -> U64:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


MAX_LEN = 1 << 18  # longest text featurised at once (the scorer truncates to this)
_POW_CACHE = MAX_LEN
_POW = _powers(_M, _POW_CACHE + 1)
_POW_INV = _powers(_M_INV, _POW_CACHE + 1)


_EMPTY = np.zeros(0, dtype=np.int64)
_ZERO = np.zeros(1, dtype=np.int64)
_SALTS = np.array([_SALT["word"], _SALT["pair"]], dtype=np.uint64)


def _pows(n: int) -> tuple[U64, U64]:
    if n <= _POW_CACHE + 1:
        return _POW[:n], _POW_INV[:n]
    return _powers(_M, n), _powers(_M_INV, n)


def collapse(view_text: str) -> tuple[U64, I64]:
    """Code points of `view_text` with whitespace runs made one space and digits made "0"."""
    if view_text.isascii():
        raw = np.frombuffer(view_text.encode("ascii"), dtype=np.uint8).astype(np.uint64)
    else:
        raw = np.frombuffer(view_text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    space = raw <= 32
    raw[space] = 32
    raw[(raw >= 48) & (raw <= 57)] = 48
    keep = ~space
    keep[1:] |= keep[:-1]
    keep[0] = True
    positions = np.flatnonzero(keep)
    return raw[keep], positions


def extract(view_text: str) -> Features:
    """Every feature of `view_text`: its words and adjacent word pairs.

    All kinds go through one hash and one bucket computation (few numpy calls: short segments
    are the common case, and there the per-call overhead is the cost).
    """
    if not view_text:
        return Features(_EMPTY, _EMPTY, 0, _EMPTY, _EMPTY)
    codes, positions = collapse(view_text)
    n = len(codes)
    pw, pw_inv = _pows(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum((codes + np.uint64(1)) * pw_inv[:n], dtype=np.uint64, out=prefix[1:])
    space = np.flatnonzero(codes == 32)
    # word starts: 0 and after each space; ends: each space and n (a double space cannot occur)
    w_start = np.concatenate((_ZERO, space + 1))
    w_end = np.concatenate((space, [n]))
    nonempty = w_end > w_start
    w_start, w_end = w_start[nonempty], w_end[nonempty]
    starts = np.concatenate((w_start, w_start[:-1]))
    ends = np.concatenate((w_end, w_end[1:]))
    salts = np.repeat(_SALTS, [len(w_start), max(len(w_start) - 1, 0)])
    hashes = pw[ends - 1] * (prefix[ends] - prefix[starts])
    buckets = ((hashes ^ salts) * _MIX >> _SHIFT).astype(np.int64)
    return Features(buckets, starts, n, positions, ends - starts)


_MASK = (1 << 64) - 1
_SHIFT_INT = 64 - BITS
_MIX_INT = int(_MIX)
_WORD_SALT, _PAIR_SALT = _SALT["word"], _SALT["pair"]
# Every code point up to a space is whitespace to `collapse`, and every ASCII digit is "0".
_FOLD = str.maketrans({**{c: " " for c in range(33)}, **{ord(d): "0" for d in "0123456789"}})


# Per word: its hash, its word feature's bucket, and the two factors that append it to a pair
# (M**(len+1) and 33 * M**len, 33 being a space's code + 1). Words recur, so each is worked out
# once, not once per text; bounded, a flood of new words starts it afresh.
_WORDS: dict[str, tuple[int, int, int, int]] = {}
_WORDS_MAX = 1 << 16


def _word(word: str) -> tuple[int, int, int, int]:
    found = _WORDS.get(word)
    if found is None:
        h = 0
        for ch in word:
            h = (h * _M + ord(ch) + 1) & _MASK
        size = len(word)
        found = (h, (((h ^ _WORD_SALT) * _MIX_INT) & _MASK) >> _SHIFT_INT,
                 pow(_M, size + 1, 1 << 64), (33 * pow(_M, size, 1 << 64)) & _MASK)
        if len(_WORDS) >= _WORDS_MAX:
            _WORDS.clear()
        _WORDS[word] = found
    return found


def small_buckets(view_text: str) -> tuple[list[int], int, int]:
    """`extract` of a short text in plain Python: the same buckets in the same order, the collapsed
    length, and the view index just past the last collapsed character.

    A short text (a user's new message) is the common case on the hot path, and there numpy's fixed
    cost per call (about 50 us over the dozen calls of `extract`) outweighs the work. The hash is the
    same polynomial, by Horner's rule: h(s..e) = sum (c_j + 1) * M**(e-1-j) mod 2**64, so a pair's hash
    is its first word's shifted past the space and the second word."""
    if not view_text:
        return [], 0, 0
    folded = view_text.translate(_FOLD)
    # collapse: the first character always stays; a space stays only after a non-space
    parts = [w for w in folded.split(" ") if w]  # split(" "): other Unicode spaces are letters here
    lead = folded[0] == " "
    if not parts:
        return [], 1, 1
    trailing = folded[-1] == " "
    collapsed_len = sum(map(len, parts)) + len(parts) - 1 + lead + trailing
    last = len(folded.rstrip(" ")) + 1 if trailing else len(folded)
    words = [_word(w) for w in parts]
    mask, salt, mix, shift = _MASK, _PAIR_SALT, _MIX_INT, _SHIFT_INT
    buckets = [w[1] for w in words]
    buckets += [((((h1 * p2 + q2 + h2) & mask) ^ salt) * mix & mask) >> shift
                for (h1, _, _, _), (h2, _, p2, q2) in pairwise(words)]
    return buckets, collapsed_len, last


def windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) windows over a collapsed text: the whole text when it fits in one."""
    if length <= size:
        return [(0, max(length, 1))]
    out = [(s, s + size) for s in range(0, length - size + 1, stride)]
    if out[-1][1] < length:
        out.append((length - size, length))
    return out
