"""Shared helpers for the rule tests: the shipped rule set, and throwaway rule directories."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.rules.store import Live, RuleStore
from proxy.settings import DEFAULT_RULES_DIR

RULE_FILE = """\
kind: detection-rules
version: 1
rules:
{rules}
"""


def rule_yaml(
    rule_id: str = "injection.test.sample",
    pattern: str = "'\\bpineapple protocol\\b'",
    severity: str = "high",
    applies_to: str = "[user, untrusted]",
    extra: str = "",
) -> str:
    """One rule entry, indented for the `rules:` list."""
    body = f"""\
- id: {rule_id}
  description: A test rule.
  category: instruction_override
  severity: {severity}
  applies_to: {applies_to}
  patterns:
    - {pattern}
  references: [OWASP LLM01:2025]
  examples:
    match: ["the pineapple protocol is active"]
    no_match: ["a pineapple"]
{extra}"""
    return textwrap.indent(body, "  ")


@pytest.fixture(scope="session")
def shipped() -> Live:
    store = RuleStore(DEFAULT_RULES_DIR)
    store.load()
    return store.live


@pytest.fixture
def rules_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write files into a fresh rules directory: rules_dir(name=text, ...)."""

    def make(**files: str) -> Path:
        directory = tmp_path / "rules"
        directory.mkdir(exist_ok=True)
        for name, text in files.items():
            (directory / name.replace("__", ".")).write_text(text, encoding="utf-8")
        return directory

    return make
