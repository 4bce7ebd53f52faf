"""The parsed, validated shape of detection rules and suppressions (plain data, no I/O).

The loader builds these from YAML; the engine compiles them; the CLI and the guard read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from proxy.model import Severity, Trust

RULE_FILE_KIND = "detection-rules"
SUPPRESSION_FILE_KIND = "suppressions"
MODES = ("enforce", "shadow")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    trust: Trust | None = None  # None: each trust level the rule applies to


@dataclass(frozen=True, slots=True)
class Score:
    """A composite rule: fires when weighted signals in one window reach the threshold."""

    threshold: float
    signals: tuple[tuple[str, float], ...]  # (rule id, weight)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A rule backed by the learned scorer: calibrated score -> severity by thresholds."""

    thresholds: tuple[tuple[Severity, float], ...]  # ascending score, ascending severity

    def severity(self, score: float) -> Severity | None:
        found = None
        for severity, threshold in self.thresholds:
            if score >= threshold:
                found = severity
        return found


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    category: str
    severity: Severity
    applies_to: frozenset[Trust]
    patterns: tuple[str, ...] = ()
    score: Score | None = None
    model: ModelSpec | None = None
    emit: bool = True  # False: a signal that only feeds composite scores
    scope: str = "any"  # "decoded": only decoded payloads; "raw": the text before normalisation
    mode: str = "enforce"
    references: tuple[str, ...] = ()
    match: tuple[Example, ...] = ()
    no_match: tuple[Example, ...] = ()
    file: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Suppression:
    """A known false positive, scoped and signed, that stops applying after `expires`."""

    rule: str  # a rule id, or "*" for every rule (then another scope is required)
    reason: str
    author: str
    expires: date
    client: str | None = None
    source: str | None = None  # provenance source; a trailing "*" makes it a prefix
    text_sha256: str | None = None  # hex sha256 of the segment's original text
    file: str = ""
    line: int = 0

    def expired(self, today: date) -> bool:
        return today > self.expires


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything loaded from one rules directory, identified by its content hash."""

    rules: tuple[Rule, ...]
    suppressions: tuple[Suppression, ...] = ()
    digest: str = ""  # "sha256:<hex>" over the rule and suppression files' bytes
    files: tuple[str, ...] = ()
    file_hashes: dict[str, str] = field(default_factory=dict)

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}
