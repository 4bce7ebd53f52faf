"""The admission limiter and policy: slots, the bounded priority queue, max wait, input caps, sheds."""

from __future__ import annotations

import asyncio

import pytest

from proxy.admission import Admission, Limiter, QueueEvent, Shed, estimate_tokens
from proxy.errors import InputLimitExceeded, Overloaded
from proxy.model import Conversation, Exchange, Location, Provenance, Segment, Trust
from proxy.settings import AdmissionSettings


def exchange(text: str = "hello", client: str = "default") -> Exchange:
    seg = Segment(0, "user", text, Trust.USER, Provenance("user"), Location(("messages", 0, "content")))
    conv = Conversation(api="openai.chat", vendor="openai", model="m", stream=False, segments=(seg,))
    return Exchange(request_id="req_test", conversation=conv, client=client)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_slots_are_taken_without_queueing() -> None:
    limiter = Limiter(2, 4, 1.0)
    await limiter.acquire()
    await limiter.acquire()
    assert (limiter.in_flight, limiter.depth) == (2, 0)


async def test_waiter_gets_the_released_slot_in_fifo_order() -> None:
    limiter = Limiter(1, 4, 5.0)
    await limiter.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        await limiter.acquire()
        order.append(name)

    tasks = [asyncio.create_task(wait(n)) for n in ("a", "b")]
    await settle()
    assert limiter.depth == 2 and order == []
    limiter.release()
    await settle()
    assert order == ["a"] and limiter.in_flight == 1 and limiter.depth == 1
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b"]


async def test_higher_priority_is_served_first() -> None:
    limiter = Limiter(1, 4, 5.0)
    await limiter.acquire()
    order: list[str] = []

    async def wait(name: str, prio: int) -> None:
        await limiter.acquire(prio)
        order.append(name)
        limiter.release()

    tasks = [asyncio.create_task(wait("low", 0)), asyncio.create_task(wait("critical", 10))]
    await settle()
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == ["critical", "low"]


async def test_full_queue_sheds_at_once() -> None:
    limiter = Limiter(1, 1, 5.0)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await settle()
    assert limiter.would_shed()
    with pytest.raises(Shed) as info:
        await limiter.acquire()
    assert info.value.reason == "queue_full"
    waiter.cancel()


async def test_critical_request_evicts_the_lowest_waiter_when_full() -> None:
    limiter = Limiter(1, 1, 5.0)
    await limiter.acquire()
    low = asyncio.create_task(limiter.acquire(0))
    await settle()
    assert not limiter.would_shed(5)
    critical = asyncio.create_task(limiter.acquire(5))
    await settle()
    with pytest.raises(Shed) as info:
        await low
    assert info.value.reason == "evicted"
    limiter.release()
    await critical
    assert (limiter.in_flight, limiter.depth) == (1, 0)


async def test_wait_longer_than_max_wait_is_shed_and_leaves_the_queue() -> None:
    limiter = Limiter(1, 4, 0.05)
    await limiter.acquire()
    with pytest.raises(Shed) as info:
        await limiter.acquire()
    assert info.value.reason == "queue_timeout"
    assert limiter.depth == 0
    limiter.release()
    assert limiter.in_flight == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    limiter = Limiter(1, 4, 5.0)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await settle()
    waiter.cancel()
    limiter.release()  # the cancelled waiter must not swallow this slot
    await settle()
    assert (limiter.in_flight, limiter.depth) == (0, 0)
    await limiter.acquire()
    assert limiter.in_flight == 1


async def test_slot_granted_to_a_task_cancelled_at_the_same_time_is_passed_on() -> None:
    limiter = Limiter(1, 4, 5.0)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await settle()
    limiter.release()  # granted to `first` ...
    first.cancel()  # ... which is cancelled before it runs again
    await settle()
    await second
    assert (limiter.in_flight, limiter.depth) == (1, 0)


class Recorder:
    def __init__(self) -> None:
        self.events: list[QueueEvent] = []

    def on_queue(self, exchange: Exchange, event: QueueEvent) -> None:
        self.events.append(event)


async def test_admission_records_queue_time_and_sheds_with_retry_after() -> None:
    rec = Recorder()
    adm = Admission(
        AdmissionSettings(max_concurrency=1, max_queue=0, shed_status=503, retry_after_s=3),
        default_concurrency=8, upstream="u", observer=rec,
    )
    first = exchange()
    lease = await adm.admit(first)
    assert rec.events[0].outcome == "acquired" and not rec.events[0].queued
    with pytest.raises(Overloaded) as info:
        await adm.admit(exchange())
    err = info.value
    assert err.status_code == 503 and err.headers == {"retry-after": "3"}
    assert err.body()["error"]["code"] == "overloaded"
    assert rec.events[1].outcome == "rejected" and rec.events[1].shed_reason == "queue_full"
    assert adm.shed_counts["queue_full"] == 1
    lease.release()
    lease.release()  # idempotent: a second release must not free someone else's slot
    assert adm.limiter.in_flight == 0


async def test_admission_queue_wait_lands_in_the_exchange_timings() -> None:
    adm = Admission(AdmissionSettings(max_concurrency=1), default_concurrency=8, upstream="u")
    lease = await adm.admit(exchange())
    waiting = exchange()
    task = asyncio.create_task(adm.admit(waiting))
    await asyncio.sleep(0.05)
    lease.release()
    (await task).release()
    assert waiting.timings.queue_ms >= 40


async def test_precheck_sheds_before_guard_work_when_the_queue_is_full() -> None:
    adm = Admission(AdmissionSettings(max_concurrency=1, max_queue=0), default_concurrency=8,
                    upstream="u")
    await adm.admit(exchange())
    with pytest.raises(Overloaded):
        adm.precheck(exchange())


async def test_priority_comes_from_the_client_name() -> None:
    adm = Admission(AdmissionSettings(priority={"pager": 9}), default_concurrency=1, upstream="u")
    assert adm.priority(exchange(client="pager")) == 9
    assert adm.priority(exchange(client="batch")) == 0


def test_input_caps_in_characters_and_estimated_tokens() -> None:
    adm = Admission(AdmissionSettings(max_input_chars=10), default_concurrency=1, upstream="u")
    adm.precheck(exchange("x" * 10))
    with pytest.raises(InputLimitExceeded) as info:
        adm.precheck(exchange("x" * 11))
    assert info.value.status_code == 413 and info.value.code == "input_limit_exceeded"
    adm = Admission(AdmissionSettings(max_input_tokens=2), default_concurrency=1, upstream="u")
    adm.precheck(exchange("x" * 8))
    with pytest.raises(InputLimitExceeded, match="about 3 tokens"):
        adm.precheck(exchange("x" * 9))
    assert estimate_tokens(9, 4.0) == 3
