"""Measures a rule set on a labelled JSONL corpus: precision, recall and FPR overall and per vector.

Each line needs `text`, `label` (injection | benign) and `vector` (direct | indirect); the vector
sets the trust the text is read at (direct -> user, indirect -> untrusted). A sample is positive
when its findings reach at least the `tag` action under the same decision code the guard uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError
from proxy.model import Action, Finding, Provenance, Segment, Trust
from proxy.rules.findings import Context, decide, scan_segments
from proxy.rules.store import Live

TRUST_OF = {"direct": Trust.USER, "indirect": Trust.UNTRUSTED}
WORST = 10


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    text: str
    label: str
    vector: str
    source: str = ""  # `<source>-<ben|inj>-<hash>` ids name their source


@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, positive: bool, injection: bool) -> None:
        if injection:
            self.tp, self.fn = self.tp + positive, self.fn + (not positive)
        else:
            self.fp, self.tn = self.fp + positive, self.tn + (not positive)

    def metrics(self) -> dict[str, float | int]:
        def ratio(a: int, b: int) -> float:
            return round(a / b, 4) if b else 0.0

        return {
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp, self.tp + self.fn),
            "fpr": ratio(self.fp, self.fp + self.tn),
        }


@dataclass(frozen=True, slots=True)
class Miss:
    """One wrong answer, for the worst-errors lists."""

    id: str
    vector: str
    rules: tuple[str, ...]
    excerpt: str


@dataclass(slots=True)
class Report:
    overall: Counts = field(default_factory=Counts)
    by_vector: dict[str, Counts] = field(
        default_factory=lambda: {"direct": Counts(), "indirect": Counts()}
    )
    rules: dict[str, dict[str, int]] = field(default_factory=dict)
    false_positives: list[Miss] = field(default_factory=list)
    false_negatives: list[Miss] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.metrics(),
            "by_vector": {v: c.metrics() for v, c in self.by_vector.items()},
            "rules": dict(sorted(self.rules.items())),
            "worst_false_positives": [_miss(m) for m in self.worst_false_positives()],
            "worst_false_negatives": [_miss(m) for m in self.false_negatives[:WORST]],
        }


    def worst_false_positives(self) -> list[Miss]:
        """The most confident mistakes first: most rules fired."""
        return sorted(self.false_positives, key=lambda m: -len(m.rules))[:WORST]


def _miss(m: Miss) -> dict[str, Any]:
    return {"id": m.id, "vector": m.vector, "rules": list(m.rules), "excerpt": m.excerpt}


def source_of(sample_id: str) -> str:
    """The source key of a corpus id (`<source>-<ben|inj>-<hash>`), "" for any other id."""
    parts = sample_id.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[1] in ("ben", "inj") else ""


def read_corpus(path: Path) -> Iterator[Sample]:
    """Samples from a JSONL file; a malformed line is an error naming file and line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"corpus not readable: {path}: {exc}") from exc
    with handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                sid = str(row.get("id", n))
                sample = Sample(sid, row["text"], row["label"], row["vector"], source_of(sid))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path}:{n}: not a corpus line ({exc})") from exc
            if sample.label not in ("injection", "benign") or sample.vector not in TRUST_OF:
                raise ConfigError(f"{path}:{n}: label/vector must be injection|benign, direct|indirect")
            yield sample


def evaluate(
    live: Live, samples: Iterable[Sample], progress: Callable[[], None] | None = None
) -> Report:
    report = Report()
    for sample in samples:
        _one(live, sample, report)
        if progress is not None:
            progress()
    return report


def judge(live: Live, sample: Sample) -> list[Finding]:
    """The findings the injection stage would record for `sample` read at its vector's trust."""
    trust = TRUST_OF[sample.vector]
    role = "user" if trust is Trust.USER else "tool"
    kind = "user" if trust is Trust.USER else "document"
    segment = Segment(0, role, sample.text, trust, Provenance(kind, "corpus"), None)
    return scan_segments(live.engine, [segment], live.suppressor, Context(client="eval"))


def _one(live: Live, sample: Sample, report: Report) -> None:
    findings = judge(live, sample)
    action, _, _ = decide(findings)
    positive = action is not Action.ALLOW
    injection = sample.label == "injection"
    report.overall.add(positive, injection)
    report.by_vector[sample.vector].add(positive, injection)
    fired = sorted({f.rule_id for f in findings if f.mode == "enforce"})
    for rule_id in fired:
        stats = report.rules.setdefault(rule_id, {"hits": 0, "tp": 0, "fp": 0})
        stats["hits"] += 1
        stats["tp" if injection else "fp"] += 1
    if positive != injection:
        excerpt = findings[0].excerpt if findings else " ".join(sample.text.split())[:160]
        miss = Miss(sample.id, sample.vector, tuple(fired), excerpt[:160])
        (report.false_positives if positive else report.false_negatives).append(miss)
