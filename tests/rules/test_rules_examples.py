"""Every inline example in the shipped rule files behaves as documented (what `rules test` runs)."""

from __future__ import annotations

from proxy.rules.checks import run_examples
from proxy.rules.store import Live


def test_every_shipped_example_matches_or_not_as_documented(shipped: Live) -> None:
    results = run_examples(shipped.engine)
    assert len(results) > 200
    failures = [f"{r.where} {r.rule_id} ({r.trust}): {r.text!r} -> {r.fired}" for r in results if not r.ok]
    assert failures == []


def test_every_shipped_rule_has_positive_and_negative_examples(shipped: Live) -> None:
    for rule in shipped.ruleset.rules:
        assert rule.match, rule.id
        assert rule.no_match, rule.id
