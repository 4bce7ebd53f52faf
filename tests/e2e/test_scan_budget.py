"""Hostile text that makes the rule scan crawl is refused at the scan's deadline, not read for a minute.

The injection stage's scan stops at `scan_budget_s`; the stage fails closed (503
guardrail_unavailable, in the API's error shape), the worker is free again at once and the next
request is served as usual.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from rules.test_rules_scan_budget import hostile

from proxy import serving


@pytest.fixture(scope="module")
def budgeted(start_proxy: Any) -> serving.ProxyHandle:
    return start_proxy(stages=[{"name": "limits"}, {"name": "injection", "options": {"scan_budget_s": 0.3}}])


def test_a_crawling_scan_is_refused_at_its_deadline_and_the_proxy_goes_on(budgeted: serving.ProxyHandle) -> None:
    client = openai.OpenAI(base_url=budgeted.url, api_key="k", max_retries=0, timeout=30)
    page = hostile(600_000, seed=11)  # about 6 s of CPU to read whole
    messages: list[Any] = [
        {"role": "user", "content": "Summarise this page."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "fetch_page", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": page},
    ]
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="sim-gpt", messages=messages)
    assert time.monotonic() - started < 4.0
    assert refused.value.status_code == 503
    error: Any = refused.value.body  # the SDK hands over the error object
    assert error["code"] == "guardrail_unavailable" and "injection" in error["message"]
    answer = client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
