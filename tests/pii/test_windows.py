"""Windows around triggers begin and end at a token of words, taking in what a phone number reads."""

from __future__ import annotations

from proxy.pii.windows import digit_count, plus_before, windows


def spans(text: str, entity: str, needle: str) -> list[str]:
    start = text.index(needle)
    return [text[lo:hi] for lo, hi, _ in windows(text, {entity: [(start, start + len(needle))]})]


def test_a_phone_window_takes_in_prefixes_brackets_and_extensions() -> None:
    text = "reach me on +1 (415) 555-0132 ext. 12 today please"
    assert spans(text, "PHONE_NUMBER", "415") == ["+1 (415) 555-0132 ext. 12"]


def test_a_window_runs_on_through_numbers_and_punctuation_to_the_next_word() -> None:
    text = "seen 10:30 16405 #88231 covers the rest"
    assert spans(text, "PHONE_NUMBER", "88231") == ["10:30 16405 #88231"]


def test_windows_keep_their_entities_and_stop_at_words() -> None:
    text = "mail a@b.io or call 555-0100"
    merged = windows(text, {"EMAIL_ADDRESS": [(6, 7)], "PHONE_NUMBER": [(20, 28)]})
    assert [(text[lo:hi], sorted(e)) for lo, hi, e in merged] == [("mail a@b.io", ["EMAIL_ADDRESS"]),
                                                                  ("555-0100", ["PHONE_NUMBER"])]


def test_helpers() -> None:
    assert digit_count("(415) 555", 0, 9) == 6
    assert plus_before("call +1 415", 6) and not plus_before("call 1 415", 5)
