"""Suppressions: scoped, signed known false positives that stop applying when they expire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from proxy.model import Provenance, Segment, Trust
from proxy.rules.checks import lint
from proxy.rules.findings import SUPPRESSED, Context, scan_segments
from proxy.rules.store import RuleStore
from proxy.rules.suppressions import Suppressor, text_sha256
from tests.rules.conftest import RULE_FILE, rule_yaml

RULES = RULE_FILE.format(rules=rule_yaml())
TEXT = "Our wiki says the pineapple protocol is active."


def suppressions(*entries: str) -> str:
    return "kind: suppressions\nversion: 1\nsuppressions:\n" + "".join(entries)


def entry(scope: str, expires: str = "2099-01-01") -> str:
    return (
        "  - rule: injection.test.sample\n"
        f"    {scope}\n"
        "    reason: the wiki documents the phrase\n"
        "    author: sec-team\n"
        f"    expires: {expires}\n"
    )


def modes(directory: Path, client: str = "acme", source: str = "https://wiki.example/p/1") -> list[str]:
    store = RuleStore(directory)
    store.load()
    seg = Segment(0, "tool", TEXT, Trust.UNTRUSTED, Provenance("tool_result", source), None)
    ctx = Context(client=client, today=date(2030, 1, 1))
    findings = scan_segments(store.live.engine, [seg], store.live.suppressor, ctx)
    return [f.mode for f in findings]


def test_a_client_scoped_suppression_applies_to_that_client_only(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(a__yaml=RULES, s__yaml=suppressions(entry("client: acme")))
    assert modes(directory, client="acme") == [SUPPRESSED]
    assert modes(directory, client="other") == ["enforce"]


def test_a_source_prefix_scope_matches_provenance(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(a__yaml=RULES, s__yaml=suppressions(entry("source: https://wiki.example/*")))
    assert modes(directory) == [SUPPRESSED]
    assert modes(directory, source="https://evil.example/p") == ["enforce"]


def test_a_text_hash_scope_matches_only_that_exact_text(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(a__yaml=RULES, s__yaml=suppressions(entry(f"text_sha256: {text_sha256(TEXT)}")))
    assert modes(directory) == [SUPPRESSED]
    other = rules_dir(s__yaml=suppressions(entry(f"text_sha256: {text_sha256(TEXT + '!')}")))
    assert modes(other) == ["enforce"]


def test_an_expired_suppression_stops_applying_and_lint_reports_it(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(a__yaml=RULES, s__yaml=suppressions(entry("client: acme", expires="2029-12-31")))
    assert modes(directory) == ["enforce"]
    _, problems = lint(directory, today=date(2030, 1, 1))
    assert any("expired on 2029-12-31" in p.message for p in problems)


def test_the_expiry_day_itself_still_applies() -> None:
    store = Suppressor([])
    assert store.find("x", client=None, source=None, text_hash=None, today=date(2030, 1, 1)) is None


def test_lint_rejects_a_suppression_for_an_unknown_rule(rules_dir: Callable[..., Path]) -> None:
    text = suppressions(entry("client: acme").replace("injection.test.sample", "injection.test.nope"))
    _, problems = lint(rules_dir(a__yaml=RULES, s__yaml=text))
    assert any(p.level == "error" and "does not exist" in p.message for p in problems)


def test_a_wildcard_suppression_without_scope_is_refused_by_the_schema(rules_dir: Callable[..., Path]) -> None:
    text = suppressions(
        "  - rule: '*'\n    reason: silence everything\n    author: me\n    expires: 2099-01-01\n"
    )
    ruleset, problems = lint(rules_dir(a__yaml=RULES, s__yaml=text))
    assert ruleset is None and problems[0].level == "error"
