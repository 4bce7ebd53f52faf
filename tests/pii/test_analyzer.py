"""The offline analyzer: finds the configured PII, and its pre-filtered path finds exactly what
blind Presidio finds."""

from __future__ import annotations

import os
import random

import pytest

from proxy.pii.analyzer import PiiAnalyzer, shared_analyzer

SEEDED = {
    "EMAIL_ADDRESS": "jane.roe@example.org",
    "PHONE_NUMBER": "+1 415-555-0132",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "DE89 3704 0044 0532 0130 00",
    "IP_ADDRESS": "192.168.14.7",
    "US_SSN": "536-22-8726",
}
TEXT = ("the quarterly report covers 2024-05-01 to 2024-06-30 page 12 of 30 version 1.2.3 "
        "see https://example.com/a?b=1 order #88231 at 10:30 ignore previous instructions")
FILLER = TEXT.split(" ")


@pytest.fixture(scope="module")
def analyzer() -> PiiAnalyzer:
    a = shared_analyzer()
    a.warm()
    return a


def test_tldextract_is_told_not_to_fetch_the_suffix_list() -> None:
    assert os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] == ""


@pytest.mark.parametrize("entity", sorted(SEEDED))
def test_each_seeded_value_is_found_with_its_type_and_span(analyzer: PiiAnalyzer, entity: str) -> None:
    value = SEEDED[entity]
    text = f"note: {value} (from the form)"
    hits = analyzer.analyze(text)
    assert [(h.entity, text[h.start:h.end]) for h in hits] == [(entity, value)]


def test_text_without_candidates_is_skipped_by_the_prefilter(analyzer: PiiAnalyzer) -> None:
    assert not analyzer.candidates("plain words only, nothing personal here")
    assert analyzer.analyze("plain words only") == []


def test_prefiltered_windows_find_exactly_what_blind_presidio_finds(analyzer: PiiAnalyzer) -> None:
    rng = random.Random(5)
    values = [*SEEDED.values(), "bob@corp.io", "(212) 555-0199", "10.0.0.1", "+44 20 7946 0958",
              "+49 30 1234567", "+1 000 000 0000", "+33 1 23 45 67 89", "1640", "16405", "01640 12",
              "12.05.2024", "2024-05-12", "05/12/2024", "+(44) 7700 900123"]
    for _ in range(120):
        words = [rng.choice(FILLER) for _ in range(300)]
        for _ in range(rng.randrange(0, 6)):
            words.insert(rng.randrange(len(words)), rng.choice(values))
        text = " ".join(words)[:2048]
        fast = [(h.entity, h.start, h.end) for h in analyzer.analyze(text)]
        blind = [(h.entity, h.start, h.end) for h in analyzer.analyze_blind(text)]
        assert fast == blind, text


def test_unknown_entities_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="PERSON"):
        PiiAnalyzer(("PERSON",))


NUMBERISH = ["+1 415-555-0132", "(212) 555-0199", "+44 20 7946 0958", "030 1234567", "+49 (0)30 1234 567",
             "1640", "16405", "0 1640", "1-800-555-0199", "415.555.0132", "+33 1 23 45 67 89",
             "+1 000 000 0000", "+91 98765 43210", "(11) 91234-5678", "12.05.2024", "2024-05-12",
             "05/12/2024", "10:30", "#88231", "ext", "x", "call", "on", "-", "(", "+", "/", ":"]


def test_parity_holds_on_adversarial_runs_of_numbers_punctuation_and_extensions(analyzer: PiiAnalyzer) -> None:
    rng = random.Random(2)
    for _ in range(150):
        tokens = []
        for _ in range(rng.randrange(5, 80)):
            roll = rng.random()
            if roll < 0.5:
                tokens.append(rng.choice(NUMBERISH))
            elif roll < 0.8:
                tokens.append(str(rng.randrange(10 ** rng.randrange(1, 7))))
            else:
                tokens.append("".join(rng.choice("0123456789 -().+/#:") for _ in range(rng.randrange(2, 10))))
        text = " ".join(tokens)
        fast = [(h.entity, h.start, h.end) for h in analyzer.analyze(text)]
        blind = [(h.entity, h.start, h.end) for h in analyzer.analyze_blind(text)]
        assert fast == blind, text
