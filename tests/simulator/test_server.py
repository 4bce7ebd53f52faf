"""The server around the API: control endpoints, thread lifecycle, `serve`, incremental streaming."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import httpx
import openai
import pytest

from proxy.simulator import SimConfig, SimulatorHandle, serve, start_in_thread

MESSAGES: Any = [{"role": "user", "content": "hello"}]


def control_url(sim: SimulatorHandle, path: str) -> str:
    return f"http://{sim.host}:{sim.port}/_sim/{path}"


def test_handle_reports_where_it_listens(sim: SimulatorHandle) -> None:
    assert sim.host == "127.0.0.1"
    assert sim.port > 0
    assert sim.url == f"http://127.0.0.1:{sim.port}/v1"


def test_post_config_changes_the_running_config(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    response = httpx.post(control_url(sim, "config"), json={"fault": "500", "fault_count": 1})
    assert response.status_code == 200
    assert response.json()["fault"] == "500"
    assert response.json()["fault_count"] == 1
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"colour": "red"}, "unknown config field(s): colour"),
        ({"ttft_ms": "fast"}, "ttft_ms must be a number"),
        ({"fault": "meteor"}, "fault must be null or one of"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_post_config_refuses_bad_input_with_a_clear_400(sim: SimulatorHandle, payload: Any, fragment: str) -> None:
    response = httpx.post(control_url(sim, "config"), json=payload)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert sim.stats()["requests"] == 0  # control calls are not chat requests


def test_post_config_refuses_a_body_that_is_not_json(sim: SimulatorHandle) -> None:
    response = httpx.post(control_url(sim, "config"), content=b"fault=500")
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_stats_show_what_the_last_chat_request_carried(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    assert httpx.get(control_url(sim, "stats")).json() == {
        "requests": 0,
        "faults_applied": 0,
        "last_request": None,
    }
    client.models.list()  # not a chat request: not counted
    client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"X-Custom-Header": "Value"})
    stats = httpx.get(control_url(sim, "stats")).json()
    assert stats["requests"] == 1
    assert stats["last_request"]["body"] == {"model": "m", "messages": MESSAGES}
    headers = stats["last_request"]["headers"]
    assert headers["authorization"] == "Bearer k"
    assert headers["x-custom-header"] == "Value"
    assert all(name == name.lower() for name in headers)
    assert sim.stats() == stats


def test_rejected_requests_are_recorded_too(sim: SimulatorHandle) -> None:
    sim.configure(require_key="right")
    httpx.post(f"{sim.url}/chat/completions", json={"messages": []}, headers={"X-A": "1"})
    stats = sim.stats()
    assert stats["requests"] == 1
    assert stats["last_request"]["headers"]["x-a"] == "1"


def test_configure_refuses_unknown_fields(sim: SimulatorHandle) -> None:
    with pytest.raises(ValueError, match="unknown config field"):
        sim.configure(speed=3)


def test_stop_is_idempotent_and_closes_the_port() -> None:
    sim = start_in_thread()
    assert httpx.get(f"{sim.url}/models").status_code == 200
    sim.stop()
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.url}/models")


def test_stop_does_not_wait_for_a_stalled_request() -> None:
    sim = start_in_thread(config=SimConfig(fault="stall", stall_s=30))
    with httpx.Client() as http:
        with contextlib.suppress(httpx.TimeoutException):
            http.post(f"{sim.url}/chat/completions", json={"messages": []}, timeout=0.2)
        start = time.monotonic()
        sim.stop()
    assert time.monotonic() - start < 3


def test_start_in_thread_reports_a_busy_port() -> None:
    with start_in_thread() as first, pytest.raises(OSError):
        start_in_thread(port=first.port)


def test_two_simulators_get_different_free_ports() -> None:
    with start_in_thread() as a, start_in_thread() as b:
        assert a.port != b.port


def test_streaming_is_incremental(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    token_s = 0.05
    sim.configure(token_ms=token_s * 1000)
    words = [f"w{i}" for i in range(10)]
    messages: Any = [{"role": "user", "content": f'say "{" ".join(words)}"'}]
    start = time.monotonic()
    arrivals = []
    content = []
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
        arrivals.append(time.monotonic() - start)
        if chunk.choices and chunk.choices[0].delta.content:
            content.append(chunk.choices[0].delta.content)
    end = time.monotonic() - start
    assert "".join(content) == " ".join(words)
    # 11 gaps of 50 ms: the whole stream takes >= 0.55 s, yet the first chunk came at once.
    assert end >= 11 * token_s
    assert arrivals[0] < end - 6 * token_s
    assert arrivals[5] < end - 3 * token_s


async def test_serve_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve("127.0.0.1", port, SimConfig()))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                response = await http.post(url, json={"messages": MESSAGES})
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
        assert response.json()["choices"][0]["message"]["content"] == "Simulated answer to: hello"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await http.post(url, json={"messages": MESSAGES})
