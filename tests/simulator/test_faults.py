"""Every fault mode, as a client observes it (the SDK, httpx, or a raw socket)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import openai
import pytest

from proxy.simulator import SimulatorHandle

MESSAGES: Any = [{"role": "user", "content": 'say "one two three four five six seven eight"'}]
BODY = {"model": "m", "messages": MESSAGES}


def raw_exchange(sim: SimulatorHandle, body: dict[str, Any]) -> tuple[bytes, BaseException | None]:
    """Send one request on a plain socket; return every byte received and how reading ended."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(head + payload)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            return received, exc
    return received, None


def stream_until_error(client: openai.OpenAI, timeout: float = 10) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True, timeout=timeout):
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def test_500_is_a_server_error_in_openai_shape(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="500")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"
    assert sim.stats()["faults_applied"] == 1


def test_429_is_a_rate_limit_with_retry_after(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="429")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.type == "rate_limit_error"
    assert caught.value.code == "rate_limit_exceeded"


def test_stall_is_seen_as_a_client_timeout(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="stall", stall_s=1.0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=MESSAGES, timeout=0.2)
    assert time.monotonic() - start < 0.9


def test_a_stall_shorter_than_the_timeout_then_answers(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="stall", stall_s=0.3)
    start = time.monotonic()
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start >= 0.3
    assert completion.choices[0].message.content == "one two three four five six seven eight"


@pytest.mark.parametrize("stream", [False, True])
def test_reset_drops_the_connection_before_any_byte(sim: SimulatorHandle, stream: bool) -> None:
    sim.configure(fault="reset")
    received, ended = raw_exchange(sim, {**BODY, "stream": stream})
    assert received == b""
    assert ended is None or isinstance(ended, ConnectionResetError)


def test_reset_is_a_connection_error_for_the_sdk(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="reset")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert sim.stats()["faults_applied"] == 1


def test_truncate_sends_the_full_length_but_half_the_body(sim: SimulatorHandle) -> None:
    sim.configure(fault="truncate")
    received, _ = raw_exchange(sim, BODY)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))[15:])
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == length // 2
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{sim.url}/chat/completions", json=BODY)


def test_truncate_is_a_connection_error_for_the_sdk(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="truncate")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_truncated_stream_breaks_halfway_without_done(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="truncate")
    chunks, error = stream_until_error(client)
    assert isinstance(error, openai.APIConnectionError)
    # 11 events (role, 8 words, finish, [DONE]); the first 5 arrive: role and 4 words.
    assert [c.choices[0].delta.content for c in chunks] == ["", "one ", "two ", "three ", "four "]
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_stall_mid_stream_stops_halfway_then_resumes(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="stall_mid", stall_s=1.0)
    chunks, error = stream_until_error(client, timeout=0.3)
    assert isinstance(error, openai.APITimeoutError)
    assert len(chunks) == 5
    sim.configure(stall_s=0.3)  # short enough to wait out: the stream then completes
    start = time.monotonic()
    chunks, error = stream_until_error(client)
    assert error is None
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert time.monotonic() - start >= 0.3


def test_stall_mid_non_stream_sends_headers_then_stalls(sim: SimulatorHandle) -> None:
    sim.configure(fault="stall_mid", stall_s=0.5)
    start = time.monotonic()
    with httpx.stream("POST", f"{sim.url}/chat/completions", json=BODY) as response:
        headers_at = time.monotonic() - start
        body = response.read()
    done_at = time.monotonic() - start
    assert response.status_code == 200
    assert headers_at < 0.4  # the headers came before the stall...
    assert done_at >= 0.5  # ...and the rest of the body after it
    assert json.loads(body)["object"] == "chat.completion"


def test_garbage_is_a_200_json_response_that_is_not_json(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="garbage")
    response = httpx.post(f"{sim.url}/chat/completions", json=BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_fault_count_limits_the_fault(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="500", fault_count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert sim.stats() | {"last_request": None} == {
        "requests": 3,
        "faults_applied": 2,
        "last_request": None,
    }


def test_faults_spare_models_and_invalid_requests(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(fault="500", fault_count=1)
    assert client.models.list().data
    assert httpx.post(f"{sim.url}/chat/completions", json={"model": "m"}).status_code == 400
    assert sim.stats()["faults_applied"] == 0
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_ttft_delays_the_response(sim: SimulatorHandle, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=300)
    start = time.monotonic()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start >= 0.3
