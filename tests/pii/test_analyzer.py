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
    values = [*list(SEEDED.values()), "bob@corp.io", "(212) 555-0199", "10.0.0.1"]
    for _ in range(60):
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
