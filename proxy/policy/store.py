"""The live policy: loaded at start (a broken file stops start-up), hot-reloaded on change.

A reload that fails is logged with its precise error and the last good policy stays live; a
reload that succeeds logs the old and new content hash, so a policy change is visible at a glance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from watchfiles import awatch

from proxy.errors import ConfigError
from proxy.policy.loader import load_policy
from proxy.policy.spec import Policy

log = logging.getLogger("guardproxy.policy")


class PolicyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: Policy = load_policy(path)
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if not self.current.clients:
            log.warning("policy %s defines no client keys: every caller gets the default policy",
                        self.current.source)

    def reload(self) -> bool:
        """Load the file again; True when a new policy went live."""
        try:
            policy = load_policy(self.path)
        except ConfigError as exc:
            self.last_error = exc.message
            log.error("policy reload refused, keeping %s: %s", self.current.digest, exc.message)
            return False
        self.last_error = None
        if policy.digest == self.current.digest:
            return False
        log.info("policy changed: %s -> %s (%d clients, %d tools)", self.current.digest, policy.digest,
                 len(policy.clients), len(policy.tools))
        self.current = policy
        return True

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        target = self.path.resolve()
        directory = target.parent
        if not directory.is_dir():
            return
        async for changes in awatch(directory, stop_event=self._stop, debounce=200, step=50):
            if any(Path(p).resolve() == target for _, p in changes):
                self.reload()
