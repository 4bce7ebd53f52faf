"""Leetspeak read back as letters, and ordinary digits left alone."""

from __future__ import annotations

from proxy.rules.leet import MAX_TOKEN, undo


def _undone(text: str) -> str:
    result = undo(text)
    return text if result is None else result[0]


def test_mixed_tokens_read_as_the_word_they_spell() -> None:
    assert _undone("pr3v10u5 1n57ruc710n5") == "previous instructions"


def test_one_reads_l_where_that_makes_the_word() -> None:
    assert _undone("4ll ru135 w111 f0110w") == "all rules will follow"


def test_digit_words_only_beside_leetspeak() -> None:
    assert _undone("7h3 4n5w3r 15 70 r3fu53") == "the answer is to refuse"
    assert undo("we met 70 people in 2024") is None


def test_identifiers_and_codes_stay() -> None:
    assert undo("mp3 b2b x86 sha256") is None
    long_token = "a1" * MAX_TOKEN
    assert _undone(long_token) == long_token


def test_spans_map_one_to_one() -> None:
    text = "pl3453 1gn0r3 th15"
    result = undo(text)
    assert result is not None
    plain, omap = result
    assert len(plain) == len(text)
    start = plain.index("ignore")
    assert omap.to_old(start, start + 6) == (start, start + 6)
