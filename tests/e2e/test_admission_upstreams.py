"""Admission is per upstream: a saturated Anthropic upstream does not shed OpenAI traffic."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import openai
import pytest
from servers import UPSTREAM_KEY

from proxy.simulator import SimConfig, start_in_thread


def test_a_busy_upstream_does_not_queue_another(start_proxy: Any) -> None:
    slow = start_in_thread(config=SimConfig(require_key=UPSTREAM_KEY, ttft_ms=1500))
    try:
        proxy = start_proxy(anthropic_upstream_url=slow.url, stages=[{"name": "limits"}],
                            admission={"max_concurrency": 1, "max_queue": 0})
        claude = anthropic.Anthropic(base_url=proxy.url.removesuffix("/v1"), api_key="k", max_retries=0)
        in_flight = threading.Thread(target=lambda: claude.messages.create(
            model="sim-claude", max_tokens=16, messages=[{"role": "user", "content": "slow"}]))
        in_flight.start()
        deadline = time.monotonic() + 5
        while slow.stats()["requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the slow call now holds the Anthropic upstream's only slot
        try:
            gpt = openai.OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=5)
            # The OpenAI upstream has its own slot: served at once, not shed behind the slow call.
            assert gpt.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}]).choices
            # The Anthropic upstream's single slot is taken and its queue is empty: shed with 429.
            with pytest.raises(anthropic.RateLimitError):
                claude.messages.create(model="sim-claude", max_tokens=16,
                                       messages=[{"role": "user", "content": "again"}])
        finally:
            in_flight.join(timeout=10)
    finally:
        slow.stop()
