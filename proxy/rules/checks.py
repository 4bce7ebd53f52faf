"""Checks on a rule set for the people who tune it: inline examples and lint.

`run_examples` feeds every rule's `examples.match` / `no_match` texts through the real engine at
each trust level the rule applies to. `lint` loads the directory (schema, duplicate ids, RE2
compilation) and adds warnings for constructs that are risky even though RE2 makes them safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import re2

from proxy.errors import ConfigError
from proxy.model import Trust
from proxy.rules.engine import Engine
from proxy.rules.loader import load_dir
from proxy.rules.spec import Example, Rule, RuleSet
from proxy.rules.suppressions import expired

# A group holding a quantifier, itself quantified without bound: "(a+)+", "(\w*\s?)*".
# Exponential under a backtracking engine; RE2 runs it in linear time, but the rule would not
# survive a port. Bounded outer counts such as (?:\w+\s+){0,3} are not flagged.
_NESTED = re2.compile(r"\([^()]*[+*][^()]*\)(?:[+*]|\{\d+,\})")
_UNBOUNDED_EDGE = re2.compile(r"^(\(\?[a-z]+\))?\.[*+]|[^\\]\.[*+]$")
# A counted gap such as [^\n]{0,200} after a common word multiplies DFA states: still linear, but
# it measurably slows the whole set. Prefer a sentence-bounded [^.\n]* or a smaller bound.
_WIDE_COUNT = re2.compile(r"\{\d*,(\d{3,})\}")


@dataclass(frozen=True, slots=True)
class ExampleResult:
    rule_id: str
    where: str
    expect_match: bool
    trust: Trust
    text: str
    fired: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return (self.rule_id in self.fired) == self.expect_match


def _trusts(rule: Rule, example: Example) -> list[Trust]:
    return [example.trust] if example.trust else sorted(rule.applies_to)


def run_examples(engine: Engine) -> list[ExampleResult]:
    """One result per (example, trust level); `ok` says whether it behaved as documented."""
    results = []
    for rule in engine.ruleset.rules:
        for expect, examples in ((True, rule.match), (False, rule.no_match)):
            for example in examples:
                for trust in _trusts(rule, example):
                    hits = engine.scan(example.text, trust, include_signals=True)
                    fired = tuple(sorted({h.rule.id for h in hits}))
                    where = f"{rule.file}:{rule.line}"
                    results.append(ExampleResult(rule.id, where, expect, trust, example.text, fired))
    return results


@dataclass(frozen=True, slots=True)
class Problem:
    level: str  # error | warning
    where: str
    message: str


def lint(rules_dir: Path, today: date | None = None) -> tuple[RuleSet | None, list[Problem]]:
    try:
        ruleset = load_dir(rules_dir)
    except ConfigError as exc:
        return None, [Problem("error", str(rules_dir), exc.message)]
    problems: list[Problem] = []
    for rule in ruleset.rules:
        where = f"{rules_dir / rule.file}:{rule.line}: rule {rule.id!r}"
        problems += _pattern_problems(rule, where)
        if not rule.no_match:
            problems.append(Problem("warning", where, "no `no_match` examples"))
    ids = {r.id for r in ruleset.rules}
    for s in ruleset.suppressions:
        where = f"{rules_dir / s.file}:{s.line}: suppression for {s.rule!r}"
        if s.rule != "*" and s.rule not in ids:
            problems.append(Problem("error", where, "names a rule id that does not exist"))
    for s in expired(ruleset.suppressions, today or date.today()):
        where = f"{rules_dir / s.file}:{s.line}: suppression for {s.rule!r}"
        problems.append(Problem("warning", where, f"expired on {s.expires} (no longer applied)"))
    return ruleset, problems


def _ascii_boundary_misuse(pattern: str) -> bool:
    """RE2's \\b is an ASCII word boundary: next to a non-ASCII letter it never matches."""
    for i in range(len(pattern) - 1):
        if pattern[i : i + 2] != "\\b" or (i and pattern[i - 1] == "\\"):
            continue
        neighbours = pattern[max(0, i - 1) : i] + pattern[i + 2 : i + 3]
        if any(not c.isascii() and c.isalpha() for c in neighbours):
            return True
    return False


def _pattern_problems(rule: Rule, where: str) -> list[Problem]:
    out = []
    for n, pattern in enumerate(rule.patterns):
        at = f"{where}: field 'patterns.{n}'"
        if _ascii_boundary_misuse(pattern):
            out.append(Problem("warning", at, "\\b next to a non-ASCII letter: RE2's \\b is ASCII-only"))
        if _NESTED.search(pattern):
            out.append(Problem("warning", at, "nested quantifier: safe under RE2, ReDoS elsewhere"))
        wide = _WIDE_COUNT.search(pattern)
        if wide and int(wide.group(1)) > 120:
            out.append(Problem("warning", at, f"counted repetition up to {wide.group(1)}: slows the set"))
        if _UNBOUNDED_EDGE.search(pattern):
            out.append(Problem("warning", at, "unbounded .* at an edge: widens spans, adds nothing"))
    return out
