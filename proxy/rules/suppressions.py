"""Decides whether a finding is a known, signed-off false positive.

A suppression names a rule (or "*") and narrows it by client, provenance source (exact, or a
prefix when it ends in "*") and/or the sha256 of the segment's original text. Every scope given
must match. Expired suppressions stop applying on the day after `expires`; lint lists them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date

from proxy.rules.spec import Suppression


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _source_matches(pattern: str, source: str | None) -> bool:
    if source is None:
        return False
    if pattern.endswith("*"):
        return source.startswith(pattern[:-1])
    return source == pattern


class Suppressor:
    """The live suppressions of one rule set, asked once per finding."""

    def __init__(self, suppressions: Iterable[Suppression]) -> None:
        self.suppressions = tuple(suppressions)
        self.needs_hash = any(s.text_sha256 for s in self.suppressions)

    def find(
        self,
        rule_id: str,
        *,
        client: str | None,
        source: str | None,
        text_hash: str | None,
        today: date,
    ) -> Suppression | None:
        """The first unexpired suppression covering this finding, if any."""
        for s in self.suppressions:
            if s.expired(today) or s.rule not in (rule_id, "*"):
                continue
            if s.client is not None and s.client != client:
                continue
            if s.source is not None and not _source_matches(s.source, source):
                continue
            if s.text_sha256 is not None and s.text_sha256 != text_hash:
                continue
            return s
        return None


def expired(suppressions: Iterable[Suppression], today: date) -> list[Suppression]:
    return [s for s in suppressions if s.expired(today)]
