"""The live rule set: loads a rules directory, hot-reloads it, keeps the last good set on error.

Every set that goes live is identified by its content hash and announced by a change record
(time, previous and new hash, files, rule ids added / removed / changed) written as one log line
and handed to every registered hook (telemetry subscribes there), so "did the detector itself
change?" is answered by grepping one logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError
from proxy.rules.decode import Limits
from proxy.rules.engine import Engine
from proxy.rules.loader import load_dir
from proxy.rules.spec import Rule, RuleSet
from proxy.rules.suppressions import Suppressor

log = logging.getLogger("guardproxy.rules")


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    time: str
    previous: str | None
    digest: str
    files: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Live:
    """One loaded rule set, compiled and ready to scan."""

    ruleset: RuleSet
    engine: Engine
    suppressor: Suppressor


def _content(rule: Rule) -> Rule:
    return dataclasses.replace(rule, line=0)  # moving a rule in its file is not a change


def diff(old: RuleSet | None, new: RuleSet) -> tuple[tuple[str, ...], ...]:
    """(added, removed, changed) rule ids between two sets."""
    before = {r.id: _content(r) for r in old.rules} if old else {}
    after = {r.id: _content(r) for r in new.rules}
    added = tuple(sorted(after.keys() - before.keys()))
    removed = tuple(sorted(before.keys() - after.keys()))
    changed = tuple(sorted(i for i in after.keys() & before.keys() if after[i] != before[i]))
    return added, removed, changed


class RuleStore:
    """Holds the live set; `reload()` swaps it atomically only when the new one loads."""

    def __init__(self, rules_dir: Path, limits: Limits | None = None) -> None:
        self.rules_dir = rules_dir
        self.limits = limits
        self.hooks: list[Callable[[ChangeRecord], None]] = []
        self.last_error: str | None = None
        self._live: Live | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    @property
    def live(self) -> Live:
        if self._live is None:
            raise ConfigError(f"no rule set loaded from {self.rules_dir}")
        return self._live

    @property
    def loaded(self) -> bool:
        return self._live is not None

    def load(self) -> ChangeRecord | None:
        """Load now; raise ConfigError if the directory does not load (start-up must fail)."""
        ruleset = load_dir(self.rules_dir)
        previous = self._live.ruleset if self._live else None
        if previous is not None and previous.digest == ruleset.digest:
            return None
        self._live = Live(ruleset, Engine(ruleset, self.limits), Suppressor(ruleset.suppressions))
        self.last_error = None
        return self._announce(previous, ruleset)

    def reload(self) -> ChangeRecord | None:
        """Load if changed; on error log it and keep serving the last good set."""
        try:
            return self.load()
        except ConfigError as exc:
            self.last_error = exc.message
            kept = self._live.ruleset.digest if self._live else "none"
            log.error("rule reload rejected, keeping %s: %s", kept, exc.message)
            return None

    def _announce(self, previous: RuleSet | None, ruleset: RuleSet) -> ChangeRecord:
        added, removed, changed = diff(previous, ruleset)
        record = ChangeRecord(
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            previous=previous.digest if previous else None,
            digest=ruleset.digest,
            files=ruleset.files,
            added=added,
            removed=removed,
            changed=changed,
        )
        log.info("rule set live %s", json.dumps(record.as_dict(), sort_keys=True))
        for hook in self.hooks:
            try:
                hook(record)
            except Exception:  # a telemetry hook must never take the rule set down
                log.exception("rule change hook failed")
        return record

    async def start(self, *, force_polling: bool = False) -> None:
        """Load if needed and watch the directory for changes in a background task."""
        if self._live is None:
            await asyncio.to_thread(self.load)
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._watch(self._stop, force_polling))

    async def close(self) -> None:
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _watch(self, stop: asyncio.Event, force_polling: bool) -> None:
        from watchfiles import awatch  # imported here: only a running proxy watches

        async for _ in awatch(
            self.rules_dir, stop_event=stop, force_polling=force_polling, debounce=200, step=50
        ):
            # Compiling a rule set takes milliseconds: keep it off the event loop.
            await asyncio.to_thread(self.reload)
