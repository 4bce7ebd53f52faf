"""Rule files load against the schema, and broken ones are rejected naming file, rule, field, line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.errors import ConfigError
from proxy.model import Trust
from proxy.rules.loader import load_dir
from proxy.settings import DEFAULT_RULES_DIR
from tests.rules.conftest import RULE_FILE, rule_yaml

CATEGORIES = {
    "instruction_override",
    "role_hijack",
    "prompt_extraction",
    "data_exfiltration",
    "tool_coercion",
    "delimiter_spoofing",
    "obfuscation",
}


def test_shipped_rules_cover_every_category_for_both_vectors() -> None:
    ruleset = load_dir(DEFAULT_RULES_DIR)
    for category in CATEGORIES:
        rules = [r for r in ruleset.rules if r.category == category]
        assert rules, category
        trusts = set().union(*(r.applies_to for r in rules))
        assert Trust.UNTRUSTED in trusts, category
    assert any(Trust.USER in r.applies_to for r in ruleset.rules if r.category == "data_exfiltration")
    assert ruleset.digest.startswith("sha256:") and len(ruleset.digest) == 23


def test_shipped_rule_ids_are_dotted_and_reference_owasp_and_atlas() -> None:
    for rule in load_dir(DEFAULT_RULES_DIR).rules:
        assert rule.id.startswith("injection.") and rule.id.count(".") >= 2
        assert "OWASP LLM01:2025" in rule.references
        assert any(r.startswith("MITRE ATLAS AML.T0051") for r in rule.references)


def test_files_of_another_kind_are_ignored(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(
        **{"a__yaml": RULE_FILE.format(rules=rule_yaml()), "policy__yaml": "kind: policy\nversion: 1\n"}
    )
    ruleset = load_dir(directory)
    assert [r.id for r in ruleset.rules] == ["injection.test.sample"]
    assert ruleset.files == ("a.yaml",)


def test_schema_error_names_file_rule_field_and_line(rules_dir: Callable[..., Path]) -> None:
    text = RULE_FILE.format(rules=rule_yaml() + rule_yaml("injection.test.broken", severity="hgh"))
    directory = rules_dir(bad__yaml=text)
    line = text.splitlines().index("    severity: hgh") + 1
    with pytest.raises(ConfigError) as err:
        load_dir(directory)
    message = err.value.message
    assert f"bad.yaml:{line}:" in message
    assert "rule 'injection.test.broken'" in message
    assert "field 'severity'" in message and "hgh" in message


def test_pattern_that_re2_cannot_compile_is_rejected(rules_dir: Callable[..., Path]) -> None:
    text = RULE_FILE.format(rules=rule_yaml(pattern="'pine(?=apple)'"))
    with pytest.raises(ConfigError) as err:
        load_dir(rules_dir(bad__yaml=text))
    assert "field 'patterns.0'" in err.value.message and "RE2" in err.value.message
    assert "rule 'injection.test.sample'" in err.value.message


def test_pattern_matching_the_empty_string_is_rejected(rules_dir: Callable[..., Path]) -> None:
    text = RULE_FILE.format(rules=rule_yaml(pattern="'x*'"))
    with pytest.raises(ConfigError, match="empty string"):
        load_dir(rules_dir(bad__yaml=text))


def test_duplicate_rule_ids_across_files_are_rejected(rules_dir: Callable[..., Path]) -> None:
    text = RULE_FILE.format(rules=rule_yaml())
    with pytest.raises(ConfigError, match="duplicate") as err:
        load_dir(rules_dir(a__yaml=text, b__yaml=text))
    assert "a.yaml" in err.value.message and "b.yaml" in err.value.message


def test_duplicate_yaml_keys_are_rejected_with_their_line(rules_dir: Callable[..., Path]) -> None:
    text = RULE_FILE.format(rules=rule_yaml(extra="  severity: low\n"))
    with pytest.raises(ConfigError, match="duplicate key 'severity'") as err:
        load_dir(rules_dir(a__yaml=text))
    line = text.splitlines().index("    severity: low") + 1
    assert f"a.yaml:{line}:" in err.value.message


def test_rules_key_without_kind_is_an_error_not_silence(rules_dir: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="kind"):
        load_dir(rules_dir(a__yaml="rules: []\n"))


def test_composite_naming_an_unknown_signal_is_rejected(rules_dir: Callable[..., Path]) -> None:
    composite = """\
  - id: injection.test.score
    description: A composite.
    category: addressed_imperative
    severity: high
    applies_to: [untrusted]
    score: {threshold: 2, signals: {injection.test.missing: 2}}
    references: [OWASP LLM01:2025]
    examples: {match: ["x"]}
"""
    with pytest.raises(ConfigError, match=r"unknown rule id .injection\.test\.missing."):
        load_dir(rules_dir(a__yaml=RULE_FILE.format(rules=rule_yaml() + composite)))


def test_invalid_yaml_reports_its_line(rules_dir: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match=r"a\.yaml:4: not valid YAML"):
        load_dir(rules_dir(a__yaml="kind: detection-rules\nversion: 1\nrules: [\n  - {a: b\n"))
