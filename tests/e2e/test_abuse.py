"""Hostile requests get a precise 400 and leave the proxy healthy: no leaked admission slot."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from proxy import relay
from proxy.serving import ProxyHandle
from proxy.upstream import Upstream

GOOD = json.dumps({"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]}).encode()


def post(proxy: ProxyHandle, content: bytes = GOOD, **headers: str | bytes) -> httpx.Response:
    return httpx.post(f"{proxy.url}/chat/completions", content=content,
                      headers={"content-type": "application/json", **headers}, timeout=10)


@pytest.fixture(scope="module")
def one_slot(start_proxy: Any) -> ProxyHandle:
    """One upstream slot and no queue: a single leaked slot turns every later request into a 429."""
    return start_proxy(stages=[{"name": "limits"}], admission={"max_concurrency": 1, "max_queue": 0})


def test_a_non_ascii_forwarded_header_is_a_400_naming_it_and_leaks_no_slot(one_slot: ProxyHandle) -> None:
    for _ in range(3):
        r = post(one_slot, **{"openai-organization": b"acme-\xe9"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_header" and err["param"] == "openai-organization"
    assert post(one_slot).status_code == 200


def test_an_unexpected_failure_sending_upstream_frees_the_slot(
    one_slot: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> httpx.Response:
        raise RuntimeError("a bug in the send path")

    monkeypatch.setattr(Upstream, "send", broken)
    for _ in range(3):
        assert post(one_slot).status_code == 500
    monkeypatch.undo()
    r = post(one_slot)
    assert r.status_code == 200, r.text


def test_a_failure_setting_up_a_stream_frees_the_slot(one_slot: ProxyHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug while setting up the stream")

    monkeypatch.setattr(relay, "StreamSession", broken)
    streamed = json.dumps({"model": "sim-gpt", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    for _ in range(3):
        assert post(one_slot, streamed).status_code == 500
    monkeypatch.undo()
    r = post(one_slot)
    assert r.status_code == 200, r.text


def test_deep_tool_parameters_are_a_400_over_the_wire(one_slot: ProxyHandle) -> None:
    schema = '{"a":' * 600 + '"x"' + "}" * 600
    body = ('{"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "tools": '
            '[{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}]}")
    r = post(one_slot, body.encode())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("tools[0].function.parameters")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e999", "9" * 5000])
def test_non_json_numbers_are_refused_not_forwarded(one_slot: ProxyHandle, literal: str) -> None:
    body = '{"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "temperature": ' + literal + "}"
    r = post(one_slot, body.encode())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "temperature"
