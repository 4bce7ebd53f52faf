"""Admission control for one upstream: a concurrency limit, a bounded priority wait queue with a
maximum wait, and a per-request input cap.

Overload is shed early (429 or 503 with Retry-After, before any upstream work) instead of piling up
as invisible latency; the time a request does wait is measured and handed to an observer
(telemetry) as the runbook's "queue" share of the latency split.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

from proxy.errors import InputLimitExceeded, Overloaded
from proxy.model import Exchange
from proxy.settings import AdmissionSettings

ShedReason = Literal["queue_full", "queue_timeout", "evicted"]
Outcome = Literal["acquired", "timeout", "rejected", "cancelled"]
_OUTCOME: dict[ShedReason, Outcome] = {
    "queue_full": "rejected", "queue_timeout": "timeout", "evicted": "rejected",
}


class Shed(Exception):
    """The limiter refused a request: the queue was full, the wait ran out, or it was evicted."""

    def __init__(self, reason: ShedReason) -> None:
        super().__init__(reason)
        self.reason: ShedReason = reason


@dataclass(order=True, slots=True)
class _Waiter:
    key: tuple[int, int]  # (-priority, arrival order): the heap pops critical traffic first
    future: asyncio.Future[None] = field(compare=False)
    state: str = field(default="waiting", compare=False)  # waiting | granted | gone


class Limiter:
    """A concurrency semaphore with a bounded priority queue. Only asyncio futures, no I/O.

    A released slot is handed straight to the best waiter, so a newcomer can never overtake the
    queue. When the queue is full, a newcomer with a higher priority evicts the lowest-priority,
    most recent waiter instead of being shed itself.
    """

    def __init__(self, max_concurrency: int, max_queue: int, max_wait_s: float) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self.depth = 0  # live waiters (the heap may also hold abandoned entries)
        self._heap: list[_Waiter] = []
        self._order = itertools.count()

    def would_shed(self, priority: int = 0) -> bool:
        """True when a request arriving now would be refused at once (for an early, cheap shed)."""
        if self.in_flight < self.max_concurrency and self.depth == 0:
            return False
        return self.depth >= self.max_queue and self._victim(priority) is None

    async def acquire(self, priority: int = 0) -> None:
        """Wait for a slot; raise Shed when the queue is full or the wait exceeds max_wait_s."""
        if self.in_flight < self.max_concurrency and self.depth == 0:
            self.in_flight += 1
            return
        if self.depth >= self.max_queue:
            victim = self._victim(priority)
            if victim is None:
                raise Shed("queue_full")
            victim.state = "gone"
            self.depth -= 1
            victim.future.set_exception(Shed("evicted"))
        waiter = _Waiter((-priority, next(self._order)), asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, waiter)
        self.depth += 1
        try:
            async with asyncio.timeout(self.max_wait_s):
                await waiter.future
        except TimeoutError:
            if waiter.state == "granted":  # the slot arrived as the clock ran out: keep it
                return
            self._abandon(waiter)
            raise Shed("queue_timeout") from None
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def release(self) -> None:
        """Give the slot to the best live waiter, or free it."""
        while self._heap:
            waiter = heapq.heappop(self._heap)
            if waiter.state != "waiting":
                continue
            if waiter.future.done():  # its task was cancelled and has not cleaned up yet
                waiter.state = "gone"
                self.depth -= 1
                continue
            waiter.state = "granted"
            self.depth -= 1
            waiter.future.set_result(None)
            return
        self.in_flight -= 1

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.state == "granted":  # handed a slot it will not use: pass it on
            waiter.state = "gone"
            self.release()
        elif waiter.state == "waiting":
            waiter.state = "gone"
            self.depth -= 1

    def _victim(self, priority: int) -> _Waiter | None:
        live = [w for w in self._heap if w.state == "waiting" and not w.future.done()]
        if not live:
            return None
        worst = max(live)  # lowest priority, latest arrival
        return worst if -worst.key[0] < priority else None


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One admission as telemetry sees it. `queued` is False when a slot was free at once."""

    start_ns: int  # wall clock (span timestamps)
    waited_s: float
    depth: int  # requests already waiting when this one arrived
    outcome: Outcome
    queued: bool
    shed_reason: ShedReason | None = None


class QueueObserver(Protocol):
    def on_queue(self, exchange: Exchange, event: QueueEvent) -> None: ...


class Lease:
    """A held upstream slot. Release is idempotent, so every exit path may call it safely."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: Limiter | None) -> None:
        self._limiter = limiter

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter.release()


class Admission:
    """The admission policy for one upstream: input cap, priority by client, shed as an error."""

    def __init__(
        self,
        settings: AdmissionSettings,
        *,
        default_concurrency: int,
        upstream: str,
        observer: QueueObserver | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.limiter = Limiter(
            settings.max_concurrency or default_concurrency, settings.max_queue, settings.max_wait_s
        )
        self.observer = observer
        self.shed_counts: Counter[str] = Counter()

    def priority(self, exchange: Exchange) -> int:
        return self.settings.priority.get(exchange.client, 0)

    def precheck(self, exchange: Exchange) -> None:
        """Cheap levers first, before any guard or upstream work: input size, and a full queue."""
        self._check_input(exchange)
        if self.limiter.would_shed(self.priority(exchange)):
            self._shed(exchange, Shed("queue_full"), time.time_ns(), 0.0, self.limiter.depth)

    async def admit(self, exchange: Exchange) -> Lease:
        """Wait for a slot (recording the wait in exchange.timings.queue_ms) or raise Overloaded."""
        self._check_input(exchange)
        start_ns, start = time.time_ns(), time.perf_counter()
        depth = self.limiter.depth
        queued = self.limiter.in_flight >= self.limiter.max_concurrency or depth > 0
        try:
            await self.limiter.acquire(self.priority(exchange))
        except Shed as shed:
            self._shed(exchange, shed, start_ns, time.perf_counter() - start, depth)
        except asyncio.CancelledError:
            self._notify(exchange, QueueEvent(
                start_ns, time.perf_counter() - start, depth, "cancelled", queued
            ))
            raise
        waited = time.perf_counter() - start
        exchange.timings.queue_ms = waited * 1000
        self._notify(exchange, QueueEvent(start_ns, waited, depth, "acquired", queued))
        return Lease(self.limiter)

    def _check_input(self, exchange: Exchange) -> None:
        s = self.settings
        if s.max_input_chars is None and s.max_input_tokens is None:
            return  # no cap configured (the default): nothing to count
        chars = exchange.conversation.char_count()
        problems = []
        if s.max_input_chars is not None and chars > s.max_input_chars:
            problems.append(f"{chars} characters exceed this upstream's limit of {s.max_input_chars}")
        tokens = estimate_tokens(chars, s.chars_per_token)
        if s.max_input_tokens is not None and tokens > s.max_input_tokens:
            problems.append(
                f"about {tokens} tokens exceed this upstream's limit of {s.max_input_tokens}"
            )
        if problems:
            raise InputLimitExceeded("request exceeds input limits: " + "; ".join(problems))

    def _shed(
        self, exchange: Exchange, shed: Shed, start_ns: int, waited: float, depth: int
    ) -> None:
        exchange.timings.queue_ms = waited * 1000
        self.shed_counts[shed.reason] += 1
        self._notify(exchange, QueueEvent(
            start_ns, waited, depth, _OUTCOME[shed.reason], shed.reason != "queue_full", shed.reason
        ))
        retry = self.settings.retry_after_s
        raise Overloaded(
            f"guardproxy is at capacity for this upstream ({shed.reason.replace('_', ' ')}); "
            f"retry after {retry}s",
            status_code=self.settings.shed_status,
            headers={"retry-after": str(retry)},
            extra={"reason": shed.reason},
        ) from None

    def _notify(self, exchange: Exchange, event: QueueEvent) -> None:
        if self.observer is not None:
            self.observer.on_queue(exchange, event)


def estimate_tokens(chars: int, chars_per_token: float) -> int:
    """A deliberately simple estimate (about 4 characters per token for English BPE vocabularies)."""
    return int(chars / chars_per_token + 0.999)
