"""Shared constants for the tests that run real servers."""

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
