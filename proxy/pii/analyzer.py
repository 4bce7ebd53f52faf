"""The one Presidio analyzer guardproxy runs, offline and cheap: a pre-filter picks what to analyze.

Presidio lives behind this module only. It runs with the `NoOpNlpEngine` and its regex/checksum
recognizers, so nothing is downloaded at run time (no spaCy model; the email recognizer's
`tldextract` uses its bundled public-suffix snapshot). Run blindly, Presidio costs ~9-13 ms per
2 KB here; a plain-`re` pre-filter finds the places where each entity *could* be and Presidio
analyzes only those windows, for only the entities whose trigger fired. Every trigger is a
superset of what its recognizer can match, and a window only begins and ends at a token of words
(the phone matcher reads runs of digits and punctuation as a whole), so the windows find exactly
what the blind run finds: checked on random and adversarial text in tests and in the bench.
"""

from __future__ import annotations

import os
import re
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from proxy.pii.windows import digit_count, plus_before, windows

# Must be set before tldextract is imported (by Presidio's email recognizer): an empty list of
# URLs makes it use the snapshot bundled in the wheel instead of fetching one on first use.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "CRYPTO",
)
DEFAULT_THRESHOLD = 0.3
PHONE, PHONE_SCORE = "PHONE_NUMBER", 0.4  # Presidio's PhoneRecognizer.SCORE
# Year-first and slash-separated dates: the phone recognizer never matches them in any of its 8
# regions (checked exhaustively for every day of 1900-2099, bench/pii_bench.py --dates), and they
# are most of the digit runs in ordinary text. Day-first dates with '-' or '.' do match sometimes
# (as false positives), so they still go to the recognizer: skipping them would change results.
NEVER_PHONE = re.compile(r"(?:19|20)\d\d([-/.])\d{1,2}\1\d{1,2}|\d{1,2}/\d{1,2}/(?:\d\d)?\d\d")
CACHE_WINDOWS = 4096
# The longest text one Presidio call sees, and how much neighbouring pieces share (see `pieces`).
MAX_WINDOW = 2048
WINDOW_OVERLAP = 512
_DIGITS = re.compile(r"\d(?:[ \t().\-/+]{0,3}\d){5,}")
# Phone numbers can be as short as 4 digits (German short numbers); runs of 4-5 digits are
# checked only in the regions whose numbers can be that short (see `_phone_engine`).
_PHONE_RUN = re.compile(r"\d(?:[ \t().\-/+]{0,3}\d){3,}")
SHORT_PHONE_DIGITS = 5
# Where an entity *could* start or sit. Each must match wherever its recognizer can match.
TRIGGERS: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile(r"@"),
    "PHONE_NUMBER": _PHONE_RUN,
    "CREDIT_CARD": _DIGITS,
    "US_SSN": _DIGITS,
    "US_BANK_NUMBER": _DIGITS,
    "US_ITIN": _DIGITS,
    "UK_NHS": _DIGITS,
    "IBAN_CODE": re.compile(r"[A-Za-z]{2}\d{2}"),
    "IP_ADDRESS": re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"),
    "CRYPTO": re.compile(r"(?:bc1|[13])[a-zA-Z0-9]{25,}"),
}


@dataclass(frozen=True, slots=True)
class PiiHit:
    """One detected value: entity type, span in the analyzed text, recognizer score."""

    entity: str
    start: int
    end: int
    score: float


class PiiAnalyzer:
    """Thread-safe after `warm()`; `analyze` is synchronous (callers keep it off the event loop)."""

    def __init__(
        self,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        unknown = [e for e in entities if e not in TRIGGERS]
        if unknown:
            known = ", ".join(sorted(TRIGGERS))
            raise ValueError(f"unsupported PII entity {', '.join(unknown)} (supported: {known})")
        self.entities = tuple(entities)
        self.threshold = threshold
        self._engine: Any = None
        self._short_phone: Any = None
        self._one_region: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, str, frozenset[str]], tuple[tuple[str, int, int, float], ...]]
        self._cache = OrderedDict()

    def warm(self) -> None:
        """Build the engine and run it once (the first call costs ~300 ms, not a request's)."""
        engine = self._get()
        engine.analyze("warm up jane@example.com +1 415 555 0100", language="en")

    def _get(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    if PHONE in self.entities:
                        self._short_phone = _phone_engine(_short_regions())
                        self._one_region = _phone_engine(("US",))
                    self._engine = _build_engine(self.entities)
        return self._engine

    def candidates(self, text: str) -> bool:
        """Cheap: could `text` hold any configured entity at all?"""
        return any(TRIGGERS[e].search(text) for e in self.entities)

    def analyze(self, text: str) -> list[PiiHit]:
        """Every configured entity in `text`, spans in `text`, sorted, overlaps resolved."""
        triggers = self._triggers(text)
        hits = self._run(text, {e: s for e, s in triggers.items() if e != PHONE})
        phone = triggers.get(PHONE)
        if phone:
            hits += self._phones(text, phone, hits)
        return _resolve(hits)

    def _phones(self, text: str, runs: list[tuple[int, int]], hits: list[PiiHit]) -> list[PiiHit]:
        """Phone numbers. Presidio's recognizer tries 8 regions per candidate (~40 us each), so:
        skip a run a stronger hit covers (overlap resolution would drop the phone anyway) and
        dates it never matches; a window holding at most 5 digits goes only to the regions whose
        numbers can be that short; a window holding one `+CC` run first tries one region (a valid
        international number parses by its country code whatever the region). Anything else
        gets all regions. Windows end at word tokens, so each sees what the whole text would."""
        covers = _Covers([h for h in hits if h.score > PHONE_SCORE])
        todo = [(s, e) for s, e in runs if not NEVER_PHONE.fullmatch(text, s, e) and not covers.contains(s, e)]
        starts = [s for s, _ in todo]
        found: list[PiiHit] = []
        for lo, hi, _ in windows(text, {PHONE: todo}):
            digits = digit_count(text, lo, hi)
            # Runs are sorted and each lies inside exactly one window: a bisect, not a scan.
            inside = todo[bisect_left(starts, lo) : bisect_left(starts, hi)]
            if digits <= SHORT_PHONE_DIGITS and self._short_phone is not None:
                found += self._window(self._short_phone, text, lo, hi)
                continue
            if len(inside) == 1 and digit_count(text, *inside[0]) == digits and plus_before(text, inside[0][0]):
                s, e = inside[0]
                one = self._window(self._one_region, text, lo, hi)
                if any(h.start < s and h.end >= e for h in one):
                    found += one
                    continue
            found += self._window(self._get(), text, lo, hi)
        return found

    def _window(self, engine: Any, text: str, lo: int, hi: int) -> list[PiiHit]:
        return [PiiHit(entity, s + a, e + a, score)
                for a, b in pieces(lo, hi)
                for entity, s, e, score in self._cached(engine, text[a:b], frozenset({PHONE}))]

    def _triggers(self, text: str) -> dict[str, list[tuple[int, int]]]:
        found: dict[re.Pattern[str], list[tuple[int, int]]] = {}
        out: dict[str, list[tuple[int, int]]] = {}
        for entity in self.entities:
            pattern = TRIGGERS[entity]
            if pattern not in found:
                found[pattern] = [(m.start(), m.end()) for m in pattern.finditer(text)]
            if found[pattern]:
                out[entity] = found[pattern]
        return out

    def _run(self, text: str, triggers: dict[str, list[tuple[int, int]]]) -> list[PiiHit]:
        hits: list[PiiHit] = []
        engine = self._get()
        for lo, hi, entities in windows(text, triggers):
            for start, end in pieces(lo, hi):
                for entity, s, e, score in self._cached(engine, text[start:end], frozenset(entities)):
                    hits.append(PiiHit(entity, s + start, e + start, score))
        return hits

    def _cached(
        self, engine: Any, window: str, entities: frozenset[str]
    ) -> tuple[tuple[str, int, int, float], ...]:
        # Chat clients resend the whole history every turn: the same windows come back often.
        key = (id(engine), window, entities)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        results = engine.analyze(window, language="en", entities=sorted(entities), score_threshold=self.threshold)
        value = tuple((r.entity_type, r.start, r.end, r.score) for r in results)
        with self._lock:
            self._cache[key] = value
            if len(self._cache) > CACHE_WINDOWS:
                self._cache.popitem(last=False)
        return value

    def analyze_blind(self, text: str) -> list[PiiHit]:
        """Presidio over the whole text, every configured entity: the reference the bench compares."""
        results = self._get().analyze(
            text, language="en", entities=list(self.entities), score_threshold=self.threshold
        )
        return _resolve([PiiHit(r.entity_type, r.start, r.end, r.score) for r in results])


def pieces(lo: int, hi: int) -> list[tuple[int, int]]:
    """`[lo, hi)` cut into overlapping pieces of at most MAX_WINDOW characters.

    Presidio's patterns backtrack: on one long word-like run (40 KB of base64 with an '@') a
    single call took seconds, growing with the square of the length. Each piece costs a bounded
    amount, so a window's cost is linear in its length. Every entity is far shorter than the
    overlap, so each lies whole inside some piece; hits found twice are merged by `_resolve`.
    Windows of ordinary text are shorter than a piece and go through whole, as before.
    """
    if hi - lo <= MAX_WINDOW:
        return [(lo, hi)]
    step = MAX_WINDOW - WINDOW_OVERLAP
    return [(a, min(a + MAX_WINDOW, hi)) for a in range(lo, hi - WINDOW_OVERLAP, step)]


class _Covers:
    """Does one of these spans contain [s, e)? By bisect over starts with a running maximum end."""

    def __init__(self, hits: Sequence[PiiHit]) -> None:
        ordered = sorted(hits, key=lambda h: h.start)
        self.starts = [h.start for h in ordered]
        self.max_end: list[int] = []
        for h in ordered:
            self.max_end.append(max(h.end, self.max_end[-1] if self.max_end else h.end))

    def contains(self, s: int, e: int) -> bool:
        i = bisect_right(self.starts, s)
        return i > 0 and self.max_end[i - 1] >= e


class Taken:
    """Character positions already claimed by a hit: an overlap test costs the span's length,
    not the number of hits (the old any()-over-all-hits was quadratic in the hit count)."""

    def __init__(self, size: int) -> None:
        self._marks = bytearray(size + 1)

    def free(self, s: int, e: int) -> bool:
        return not any(self._marks[s:e])

    def take(self, s: int, e: int) -> None:
        self._marks[s:e] = b"\x01" * (e - s)


def _resolve(hits: Iterable[PiiHit]) -> list[PiiHit]:
    """One hit per place: the higher score (then the longer span) wins an overlap."""
    ranked = sorted(hits, key=lambda h: (-h.score, -(h.end - h.start), h.start, h.entity))
    if not ranked:
        return []
    taken = Taken(max(h.end for h in ranked))
    kept: list[PiiHit] = []
    for hit in ranked:
        if taken.free(hit.start, hit.end):
            taken.take(hit.start, hit.end)
            kept.append(hit)
    return sorted(kept, key=lambda h: (h.start, h.entity))


def _short_regions() -> tuple[str, ...]:
    """The default phone regions whose valid numbers can have <= 5 digits.

    Every other region needs at least 6 (FR 9, US 10, GB/CA/IL 7, IN/BR 8: their metadata's
    possible lengths), so for a 4-5 digit run these find exactly what all regions find.
    """
    from phonenumbers import PhoneMetadata
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    return tuple(
        r for r in PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
        if min(getattr(getattr(PhoneMetadata.metadata_for_region(r), "general_desc", None), "possible_length", (0,)))
        <= SHORT_PHONE_DIGITS
    )


def _phone_engine(regions: tuple[str, ...]) -> Any:
    """An analyzer holding only Presidio's phone recognizer, for the given regions."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    registry = RecognizerRegistry(recognizers=[PhoneRecognizer(supported_regions=regions)],
                                  supported_languages=["en"])
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def _build_engine(entities: Sequence[str]) -> Any:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    # The spaCy NER recognizer needs a model we do not ship; the rest are regex + checksums.
    wanted = set(entities)
    recognizers: list[Any] = list(registry.recognizers)
    for recognizer in recognizers:
        if not wanted & set(recognizer.supported_entities):
            registry.remove_recognizer(str(recognizer.name))
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


@lru_cache(maxsize=8)
def shared_analyzer(entities: tuple[str, ...] = DEFAULT_ENTITIES, threshold: float = DEFAULT_THRESHOLD) -> PiiAnalyzer:
    """One analyzer per configuration per process: the PII stage and evidence redaction share it."""
    return PiiAnalyzer(entities, threshold)
