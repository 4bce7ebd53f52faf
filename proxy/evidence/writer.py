"""The background evidence writer: one thread, a bounded queue, batched durable appends.

Flagged exchanges are written on a priority lane and their callers await the result: the bundle
is fsynced and indexed before the response completes. Sampled clean exchanges go to a bounded
lane and never wait; when it is full the bundle is dropped and counted (`dropped`), visible in
`/readyz` and the log, never silent. Batching lets one lock, one directory fsync and one index
commit cover many bundles, which is what makes hundreds of durable bundles a second possible.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.evidence.store import Store

log = logging.getLogger("guardproxy.evidence")
MAX_BATCH = 256


@dataclass
class Job:
    """One bundle to write: `build` runs in the writer thread (redaction is not free)."""

    evidence_id: str
    build: Callable[[], dict[str, Any]]
    done: concurrent.futures.Future[None] | None = None


@dataclass
class Stats:
    written: int = 0
    dropped: int = 0  # clean samples refused because the queue was full
    errors: int = 0
    batches: int = 0
    last_error: str = ""
    pruned: int = 0
    failing: bool = False  # the last append failed and none has succeeded since

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Retention:
    max_age_s: float | None = None
    max_bytes: int | None = None
    every_s: float = 60.0
    _last: float = field(default=0.0)


class EvidenceWriter:
    def __init__(self, open_store: Callable[[], Store], queue_size: int,
                 retention: Retention | None = None) -> None:
        self._open_store = open_store
        self.queue_size = queue_size
        self.retention = retention or Retention()
        self.stats = Stats()
        self._durable: deque[Job] = deque()
        self._background: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._store: Store | None = None
        self._start_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="guardproxy-evidence", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def depth(self) -> int:
        return len(self._background) + len(self._durable)

    def submit(self, job: Job) -> bool:
        """Queue a clean sample without waiting; False (and counted) when the queue is full."""
        with self._cond:
            if self._closing or len(self._background) >= self.queue_size:
                self.stats.dropped += 1
                dropped = self.stats.dropped
            else:
                self._background.append(job)
                self._cond.notify()
                return True
        if dropped == 1 or dropped % 1000 == 0:
            log.warning("evidence queue full (%d): %d clean sample(s) dropped so far",
                        self.queue_size, dropped)
        return False

    async def durable(self, job: Job) -> None:
        """Write a flagged exchange's bundle; returns once it is fsynced and indexed."""
        job.done = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("evidence writer is closed")
            self._durable.append(job)
            self._cond.notify()
        await asyncio.wrap_future(job.done)

    def _take(self) -> list[Job] | None:
        with self._cond:
            while not self._durable and not self._background and not self._closing:
                self._cond.wait(timeout=self.retention.every_s)
                if not self._durable and not self._background:
                    return []  # idle tick: time for retention
            if self._closing and not self._durable and not self._background:
                return None
            jobs: list[Job] = []
            while self._durable and len(jobs) < MAX_BATCH:
                jobs.append(self._durable.popleft())
            while self._background and len(jobs) < MAX_BATCH:
                jobs.append(self._background.popleft())
            return jobs

    def _run(self) -> None:
        try:
            self._store = self._open_store()
        except BaseException as exc:  # reported to start(); the app refuses to start
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while (jobs := self._take()) is not None:
                if jobs:
                    self._write(jobs)
                self._maybe_prune()
        except BaseException as exc:  # never leave a request awaiting a writer that is gone
            log.exception("evidence writer stopped")
            with self._cond:
                self._closing = True
                pending = list(self._durable) + list(self._background)
                self._durable.clear()
                self._background.clear()
            self._fail(pending, exc)
            raise
        finally:
            self._store.close()

    def _write(self, jobs: list[Job]) -> None:
        assert self._store is not None
        built: list[tuple[Job, dict[str, Any]]] = []
        for job in jobs:
            try:
                built.append((job, job.build()))
            except Exception as exc:
                log.exception("evidence bundle %s could not be built", job.evidence_id)
                self._fail([job], exc)
        try:
            self._store.append([b for _, b in built])
        except Exception as exc:
            log.exception("evidence store append failed (%d bundles)", len(built))
            self._fail([j for j, _ in built], exc)
            return
        self.stats.written += len(built)
        self.stats.batches += 1
        self.stats.failing = False
        for job, _ in built:
            if job.done is not None:
                job.done.set_result(None)

    def _fail(self, jobs: list[Job], exc: BaseException) -> None:
        self.stats.errors += len(jobs)
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self.stats.failing = True
        for job in jobs:
            if job.done is not None and not job.done.done():
                job.done.set_exception(exc)

    def _maybe_prune(self) -> None:
        r = self.retention
        if (r.max_age_s is None and r.max_bytes is None) or time.monotonic() - r._last < r.every_s:
            return
        r._last = time.monotonic()
        assert self._store is not None
        before = None
        if r.max_age_s is not None:
            from datetime import UTC, datetime, timedelta

            before = (datetime.now(UTC) - timedelta(seconds=r.max_age_s)).isoformat(timespec="milliseconds")
        try:
            self.stats.pruned += self._store.prune(before, r.max_bytes).removed
        except Exception as exc:
            log.exception("evidence retention failed")
            self.stats.last_error = f"retention: {type(exc).__name__}: {exc}"

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, drain what is queued, close the store."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
