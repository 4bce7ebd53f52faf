"""The rule-test fixtures (the shipped rule set) for the learned layer's tests."""

from tests.rules.conftest import shipped

__all__ = ["shipped"]
