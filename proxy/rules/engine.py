"""The pure rule engine: compiles a RuleSet into RE2 sets per trust level and scans text.

RE2 guarantees linear-time matching, so neither a hostile rule nor a hostile input can stall
a scan. A scan matches the normalised view, the de-obfuscated view when there is one, and every
bounded decoding of encoded runs; each hit carries its span in the original text, the decoding
path, and the sentence it sits in. Composite (`score`) rules sum the weights of distinct signal
rules that fire within one window of the text, so one injected sentence in a long page counts
as much as it would alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import re2

from proxy.model import Severity, Trust
from proxy.rules.cache import MAX_ENTRIES, ScanCache
from proxy.rules.decode import Limits, find_encoded
from proxy.rules.hints import HINT_PATTERNS, hints
from proxy.rules.normalise import View, decipher, deobfuscate, normalise
from proxy.rules.sentences import Sentences
from proxy.rules.spec import Rule, RuleSet

if TYPE_CHECKING:
    from proxy.detect.model import Contribution, LinearModel, Score

MAX_SPANS_PER_RULE = 8
SET_CHUNK = 400  # patterns per RE2 set; see _Compiled
# Text crafted so that each stretch is new to RE2's DFA (the rules' key words among random letters)
# makes a pattern set build states as it reads: about 0.1 MB/s of CPU instead of tens of MB/s. So a
# long text is matched piece by piece against the caller's deadline (`scan_deadline`), and a scan
# that runs past it stops with ScanBudgetExceeded instead of holding a core for tens of seconds.
# Pieces overlap by far more than any rule's match spans, so the pieces find what the whole would.
PIECE_CHARS = 32_768
PIECE_OVERLAP = 2_048
_deadline: ContextVar[float | None] = ContextVar("scan_deadline", default=None)


class ScanBudgetExceeded(Exception):
    """A scan ran past its deadline: the text was not fully read (the stage fails closed)."""


@contextmanager
def scan_deadline(seconds: float) -> Iterator[None]:
    """Scans in this context (and in threads started from it) stop after `seconds`."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _pieces(text: str) -> Iterator[str]:
    """`text`, or overlapping pieces of it when it is long and a deadline applies."""
    deadline = _deadline.get()
    if deadline is None:
        yield text
        return
    # Checked before every text too: many texts just under a piece are as slow as one long one.
    step = PIECE_CHARS - PIECE_OVERLAP
    for start in range(0, max(len(text) - PIECE_OVERLAP, 1), step):
        if time.monotonic() > deadline:
            raise ScanBudgetExceeded(
                f"the rule scan ran past its deadline at character {start:,} of a {len(text):,}-character text")
        yield text[start : start + PIECE_CHARS] if len(text) > PIECE_CHARS else text
# Window for composite scores in retrieved text; a user's own prompt is scored as a whole.
UNTRUSTED_WINDOW_CHARS = 800


# (rule, start, end, decoding path, decoded text matched: "" for plain text)
_Raw = tuple[Rule, int, int, tuple[str, ...], str]
# (model rule, start, end, decoding path, severity for the score, calibrated score)
_Learned = tuple[Rule, int, int, tuple[str, ...], Severity, float]
# What the learned layer reads: (view, span of the encoded run in the original or None for the
# text itself, decoding path)
_Read = tuple[View, tuple[int, int] | None, tuple[str, ...]]
MAX_DECODED_READS = 4  # decoded payloads the learned layer reads per segment, beside the text
# Shorter decoded payloads (URL-encoded placeholders in command docs: "edit unit...") are too few
# words for a score; the rules still read them. Measured: reading them added held-out false
# positives on tldr pages (1 -> 3 of 127).
MIN_DECODED_READ_CHARS = 40


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    start: int  # span in the original text
    end: int
    decoding: tuple[str, ...]
    excerpt: str = ""
    sentence: tuple[int, int] = (0, 0)
    decoded: str = ""  # for a hit inside an encoded run: the decoded text that matched
    severity: Severity | None = None  # a model rule's severity for this score (else the rule's)
    score: float | None = None  # a model rule's calibrated score


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = 128 << 20
    return options


class _Compiled:
    """The patterns of the rules applying to one trust level, as a few RE2 sets.

    With `with_hints` the set also carries the transform pre-conditions of `hints`, so one pass
    over a segment answers both "which rules match" and "could it hold encoded runs or leet".
    """

    def __init__(self, rules: list[Rule], with_hints: bool = False) -> None:
        options = _options()
        self.owners: list[Rule] = []
        self.patterns: list[Any] = []
        for rule in rules:
            for pattern in rule.patterns:
                self.owners.append(rule)
                self.patterns.append(re2.compile(pattern, options))
        self.hint_names = [name for name, _ in HINT_PATTERNS] if with_hints else []
        every = [p.pattern for p in self.patterns] + [p for _, p in HINT_PATTERNS if with_hints]
        # One RE2 set is one pass over the text. With 128 MiB of DFA memory one set of every
        # pattern (about 240 now) stays on the DFA even on multi-byte text and is the fastest
        # layout measured (sets of 80 / 120 / 240: 19 / 27 / 45 MB/s CPU over the corpus's
        # non-ASCII texts); if a set ever outgrew its DFA, RE2 would fall back to its (still
        # linear, ~30x slower) NFA, so SET_CHUNK caps a set's size rather than the rule count.
        self.sets: list[tuple[int, Any]] = []
        for offset in range(0, len(every), SET_CHUNK):
            chunk: Any = re2.Set.SearchSet(options)
            for pattern in every[offset : offset + SET_CHUNK]:
                chunk.Add(pattern)
            chunk.Compile()
            self.sets.append((offset, chunk))

    def match(self, text: str) -> tuple[list[tuple[Rule, int, int]], frozenset[str]]:
        """(rule, start, end) for every matching pattern, and the hints the text meets."""
        if not self.owners and not self.hint_names:
            return [], frozenset()
        out: list[tuple[Rule, int, int]] = []
        found: set[str] = set()
        indices = list(dict.fromkeys(offset + i for piece in _pieces(text) for offset, chunk in self.sets
                                     for i in chunk.Match(piece) or ()))
        for index in indices:
            if index >= len(self.owners):
                found.add(self.hint_names[index - len(self.owners)])
                continue
            rule = self.owners[index]
            for n, m in enumerate(self.patterns[index].finditer(text)):
                if n >= MAX_SPANS_PER_RULE:
                    break
                out.append((rule, m.start(), m.end()))
        return out, frozenset(found)


class Engine:
    """Compiled once per rule set; `scan` is pure and safe to call from any thread."""

    def __init__(
        self,
        ruleset: RuleSet,
        limits: Limits | None = None,
        model: LinearModel | None = None,
        cache_entries: int = MAX_ENTRIES,
    ) -> None:
        self.ruleset = ruleset
        self.limits = limits or Limits()
        # Results per (text, trust) for this rule set and model only: a reload builds a new Engine.
        self.cache: ScanCache[list[Hit]] = ScanCache(cache_entries)
        self._models = {
            trust: [r for r in ruleset.rules if trust in r.applies_to and r.model] for trust in Trust
        }
        self.model = model
        if model is None and any(self._models.values()):
            from proxy.detect.model import shipped  # numpy and the weights only when a rule needs them

            self.model = shipped()
        self._by_trust = {trust: self._compile(trust, "any", with_hints=True) for trust in Trust}
        # Rules scoped to decoded payloads never run over plain text: most texts hold none.
        self._decoded_only = {trust: self._compile(trust, "decoded") for trust in Trust}
        # Rules about the characters normalisation removes (tag smuggling, bidi overrides) see
        # the text exactly as received.
        self._raw = {trust: self._compile(trust, "raw") for trust in Trust}
        self._composites = {
            trust: [r for r in ruleset.rules if trust in r.applies_to and r.score]
            for trust in Trust
        }

    def _compile(self, trust: Trust, scope: str, with_hints: bool = False) -> _Compiled:
        rules = [r for r in self.ruleset.rules if trust in r.applies_to and r.patterns and r.scope == scope]
        return _Compiled(rules, with_hints)

    def applies(self, trust: Trust) -> bool:
        return bool(
            self._by_trust[trust].owners
            or self._decoded_only[trust].owners
            or self._raw[trust].owners
            or self._models[trust]
        )

    def scan(self, text: str, trust: Trust, *, include_signals: bool = False) -> list[Hit]:
        """Every emitted hit for `text` read at `trust`, composites included, in span order.

        `include_signals` also returns hits of signal-only rules (`emit: false`): for tooling.
        """
        return self.scan_many([(text, trust)], include_signals=include_signals)[0]

    def scan_many(
        self,
        items: Sequence[tuple[str, Trust]],
        *,
        include_signals: bool = False,
        partition: str | None = None,
    ) -> list[list[Hit]]:
        """`scan` of each (text, trust); the learned layer scores all of them in one batch.

        A (text, trust) this `partition` (the client) had scanned recently is answered from the
        cache (see proxy/rules/cache.py).
        """
        if include_signals:  # tooling: signal hits are never cached
            return self._scan_many(items, include_signals=True)
        out: list[list[Hit] | None] = [self.cache.get(text, trust, partition) for text, trust in items]
        todo = [i for i, found in enumerate(out) if found is None]
        if todo:
            fresh = self._scan_many([items[i] for i in todo], include_signals=False)
            for i, hits in zip(todo, fresh, strict=True):
                out[i] = hits
                self.cache.put(items[i][0], items[i][1], hits, partition)
        return [list(hits) for hits in out if hits is not None]

    def _scan_many(
        self, items: Sequence[tuple[str, Trust]], *, include_signals: bool
    ) -> list[list[Hit]]:
        matched = [self._match(text, trust) for text, trust in items]
        # What the learned layer reads, per item: its view, then each decoded payload's view
        # (a base64 blob says nothing to the model; what it decodes to does). One batch for all.
        wanted: list[tuple[int, _Read]] = [
            (i, read) for i, (text, trust) in enumerate(items) if text and self._models[trust]
            for read in matched[i][1]
        ]
        best: dict[int, tuple[Score, _Read]] = {}
        if wanted and self.model is not None:
            batch = self.model.score_many([read[0].text for _, read in wanted])
            for (i, read), score in zip(wanted, batch, strict=True):
                if i not in best or score.probability > best[i][0].probability:
                    best[i] = (score, read)
        out = []
        for i, (text, trust) in enumerate(items):
            raw = matched[i][0]
            learned = self._learned(trust, *best[i]) if i in best else []
            out.append(self._hits(text, trust, raw, learned, include_signals))
        return out

    def _match(self, text: str, trust: Trust) -> tuple[list[_Raw], list[_Read]]:
        """Raw rule hits of every view and decoding, and what the learned layer reads: the text's
        last view, then the views of decoded payloads (at most MAX_DECODED_READS)."""
        compiled = self._by_trust[trust]
        if not self.applies(trust) or not text:
            return [], []
        raw: list[_Raw] = []
        views: list[View] = []
        kinds = self._scan_views((compiled,), text, None, (), raw, views)
        if not text.isascii():
            for rule, start, end in self._raw[trust].match(text)[0]:
                raw.append((rule, start, end, ("raw",), ""))
        both = (compiled, self._decoded_only[trust])
        reads: list[_Read] = [(views[-1], None, ())]
        self._scan_decoded(both, text, kinds, None, (), 1, [self.limits.max_total_bytes], raw, reads)
        return raw, reads

    def _hits(
        self, text: str, trust: Trust, raw: list[_Raw], learned: list[_Learned], include_signals: bool
    ) -> list[Hit]:
        if not raw and not learned:
            return []  # the common case: nothing matched, nothing to explain
        sentences = Sentences(text)
        hits = _dedupe(raw)
        hits += self._score(hits, trust, len(text))
        found = [
            Hit(r, s, e, d, sentences.excerpt(s, e), sentences.around(s, e), x)
            for r, s, e, d, x in hits
            if r.emit or include_signals
        ]
        found += [
            Hit(rule, s, e, d, sentences.excerpt(s, e), sentences.around(s, e), "", severity, score)
            for rule, s, e, d, severity, score in learned
        ]
        return sorted(found, key=lambda h: (h.start, h.rule.id))

    def explain_learned(
        self, text: str, trust: Trust
    ) -> tuple[Score, list[Contribution]] | None:
        """The learned score of `text` and the words that drove it; None when no model rule applies."""
        if not self._models[trust] or self.model is None:
            return None
        views: list[View] = []
        self._scan_views((self._by_trust[trust],), text, None, (), [], views)
        view = views[-1]
        score, words = self.model.explain(view.text)
        # spans in the original text, as every other finding reports them
        return (
            replace(score, span=view.to_original(*score.span)),
            [replace(w, span=view.to_original(*w.span)) for w in words],
        )

    def _learned(self, trust: Trust, result: Score, read: _Read) -> list[_Learned]:
        """The model rules `result` (the learned score of what `read` holds) reaches, with the
        window's span in the original text (a decoded payload's: the encoded run's span)."""
        view, outer, path = read
        out = []
        for rule in self._models[trust]:
            assert rule.model is not None
            severity = rule.model.severity(result.probability)
            if severity is not None:
                start, end = outer or view.to_original(*result.span)
                decoding = tuple(t for t in (*path, *view.decoding(*result.span)) if t != "plain") or ("plain",)
                out.append((rule, start, end, ("model", *decoding), severity, result.probability))
        return out

    def _scan_views(
        self,
        sets: tuple[_Compiled, ...],
        text: str,
        outer: tuple[int, int] | None,
        path: tuple[str, ...],
        out: list[_Raw],
        views_out: list[View] | None = None,
    ) -> frozenset[str]:
        """Match every view of `text`; return the hints of `text` itself (for the decoder).

        `views_out`, when given, receives the views matched (the primary one, then the de-obfuscated).
        """
        view = normalise(text)
        found: frozenset[str] = frozenset()
        views = [view]
        for n, v in enumerate(views):
            for i, compiled in enumerate(sets):
                hits, seen = compiled.match(v.text)
                if n == 0 and i == 0:
                    found = seen
                    alt = deobfuscate(v, found)
                    plain = decipher(v, found)
                    views += [x for x in (alt, plain) if x is not None]
                for rule, start, end in hits:
                    span = outer or v.to_original(start, end)
                    decoding = tuple(t for t in (*path, *v.decoding(start, end)) if t != "plain")
                    shown = v.text[start:end][:160] if outer else ""
                    out.append((rule, span[0], span[1], decoding or ("plain",), shown))
        if views_out is not None:
            views_out.extend(views)
        # ASCII text only changed case in the view; otherwise the decoder needs its own look.
        return found if text.isascii() else hints(text)

    def _scan_decoded(
        self,
        sets: tuple[_Compiled, ...],
        text: str,
        kinds: frozenset[str],
        outer: tuple[int, int] | None,
        path: tuple[str, ...],
        depth: int,
        budget: list[int],
        out: list[_Raw],
        reads: list[_Read] | None = None,
    ) -> None:
        if depth > self.limits.max_depth:
            return
        for found in find_encoded(text, self.limits, budget, kinds):
            span = outer or (found.start, found.end)
            inner = (*path, found.kind)
            views: list[View] = []
            inner_kinds = self._scan_views(sets, found.text, span, inner, out, views)
            if reads is not None and len(reads) <= MAX_DECODED_READS and len(found.text) >= MIN_DECODED_READ_CHARS:
                reads.append((views[-1], span, inner))
            self._scan_decoded(sets, found.text, inner_kinds, span, inner, depth + 1, budget, out, reads)

    def _score(
        self, hits: list[_Raw], trust: Trust, length: int
    ) -> list[_Raw]:
        window = UNTRUSTED_WINDOW_CHARS if trust is Trust.UNTRUSTED else max(length, 1)
        fired = []
        for rule in self._composites[trust]:
            assert rule.score is not None
            weights = dict(rule.score.signals)
            signals = sorted((h for h in hits if h[0].id in weights), key=lambda h: h[1])
            best = _best_window(signals, weights, window)
            if best is not None and best[0] >= rule.score.threshold:
                _, start, end, decoding = best
                fired.append((rule, start, end, decoding, ""))
        return fired


def _best_window(
    signals: list[_Raw], weights: dict[str, float], window: int
) -> tuple[float, int, int, tuple[str, ...]] | None:
    """The highest sum of distinct signal weights whose hits start within `window` chars."""
    best: tuple[float, int, int, tuple[str, ...]] | None = None
    for i, first in enumerate(signals):
        seen: dict[str, float] = {}
        end, decoding = first[2], list(first[3])
        for hit in signals[i:]:
            if hit[1] - first[1] > window:
                break
            seen[hit[0].id] = weights[hit[0].id]
            end = max(end, hit[2])
            decoding += [t for t in hit[3] if t not in decoding]
        total = sum(seen.values())
        if best is None or total > best[0]:
            cleaned = tuple(t for t in decoding if t != "plain") or ("plain",)
            best = (total, first[1], end, cleaned)
    return best


def _dedupe(
    raw: list[_Raw],
) -> list[_Raw]:
    """One hit per rule and overlapping span: the widest; on a tie the first view explains it."""
    per_rule: dict[str, list[_Raw]] = {}
    for hit in raw:
        kept = per_rule.setdefault(hit[0].id, [])
        overlap = [i for i, k in enumerate(kept) if hit[1] < k[2] and k[1] < hit[2]]
        if not overlap:
            if len(kept) < MAX_SPANS_PER_RULE:
                kept.append(hit)
            continue
        i = overlap[0]
        if (hit[2] - hit[1], len(hit[4])) > (kept[i][2] - kept[i][1], len(kept[i][4])):
            kept[i] = hit
    return [hit for hits in per_rule.values() for hit in hits]
