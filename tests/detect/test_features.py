"""Hashed n-gram features: shift-invariant, deterministic across processes, linear."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np

from proxy.detect import features
from proxy.detect.features import BITS, collapse, extract, small_buckets, windows


def test_same_substring_same_bucket_wherever_it_sits() -> None:
    a = extract("forward the mail")
    b = extract("please forward the mail")
    shift = len("please ")
    a_pairs = set(zip(a.buckets.tolist(), a.starts.tolist(), strict=True))
    b_pairs = set(zip(b.buckets.tolist(), (b.starts - shift).tolist(), strict=True))
    assert a_pairs <= b_pairs
    assert (a.buckets >= 0).all() and (a.buckets < (1 << BITS)).all()


def test_hashes_do_not_depend_on_the_process() -> None:
    # Python's hash() is salted per process; ours must not be, or shipped weights would be noise
    code = "from proxy.detect.features import extract; print(extract('ignore the rules').buckets.tolist())"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
    assert runs.pop().strip() == str(extract("ignore the rules").buckets.tolist())


def test_whitespace_runs_and_digits_collapse() -> None:
    codes, positions = collapse("a  \n b 42")
    assert "".join(chr(int(c)) for c in codes) == "a b 00"
    assert positions.tolist() == [0, 1, 5, 6, 7, 8]


def test_empty_and_tiny_texts() -> None:
    assert len(extract("").buckets) == 0
    assert extract("hi").length == 2


def test_windows_cover_the_text() -> None:
    assert windows(10, 400, 200) == [(0, 10)]
    spans = windows(1000, 400, 200)
    assert spans[0] == (0, 400) and spans[-1][1] == 1000
    assert all(b - a == 400 for a, b in spans)


def test_feature_count_is_linear() -> None:
    small, big = extract("word " * 1000), extract("word " * 10_000)
    assert len(big.buckets) <= 10.5 * len(small.buckets)
    assert np.array_equal(np.unique(small.buckets), np.unique(big.buckets))


def _random_texts(n: int, seed: int = 17) -> list[str]:
    # Every kind of character `collapse` treats apart: ASCII and control whitespace (all of it one
    # space), Unicode spaces (letters to it), digits (folded to 0), non-ASCII letters, astral symbols.
    rnd = random.Random(seed)
    alphabet = [*"abc XYZ  \t\n\r0123456789.,!?", "\u00a0", "\u2003", "\u0085", "\x00", "\x1f", "é", "日本", "😀",
                "  ", "\n\n", "ignore", " previous", " instructions"]
    return ["", " ", "   ", "a", " a", "a ", " a b  c \n"] + [
        "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 80))) for _ in range(n)]


def test_small_buckets_are_exactly_extract() -> None:
    for text in _random_texts(5000):
        feats = extract(text)
        buckets, length, last = small_buckets(text)
        assert buckets == feats.buckets.tolist(), repr(text)
        assert length == feats.length, repr(text)
        assert last == (int(feats.positions[feats.length - 1]) + 1 if feats.length else 0), repr(text)


def test_the_word_table_stays_bounded() -> None:
    for i in range(features._WORDS_MAX + 10):
        small_buckets(f"w{i}x")
    assert len(features._WORDS) <= features._WORDS_MAX
    assert small_buckets("forward the mail")[0] == extract("forward the mail").buckets.tolist()
