"""The proxy's own safety: the upstream is never chosen by the client, and only allow-listed
headers cross the proxy in either direction."""

from __future__ import annotations

import socket

import httpx
from servers import UPSTREAM_KEY

from proxy.serving import ProxyHandle
from proxy.simulator import SimulatorHandle

BODY = b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]}'
HOSTILE = {
    "content-type": "application/json",
    "host": "169.254.169.254",
    "x-forwarded-host": "evil.example",
    "x-forwarded-for": "10.0.0.1",
    "forwarded": "host=evil.example",
    "x-original-url": "http://evil.example/v1",
    "connection": "keep-alive, x-secret-hop",
    "x-secret-hop": "hop",
    "te": "trailers",
    "proxy-authorization": "Basic c2VjcmV0",
    "openai-organization": "org-123",
    "cookie": "session=abc",
}


def test_client_headers_cannot_steer_or_reach_the_upstream(proxy: ProxyHandle, sim: SimulatorHandle) -> None:
    before = sim.stats()["requests"]
    r = httpx.post(f"{proxy.url}/chat/completions", content=BODY, headers=HOSTILE)
    assert r.status_code == 200
    assert sim.stats()["requests"] == before + 1, "the configured upstream got the request"
    got = sim.stats()["last_request"]["headers"]
    for name in ("x-forwarded-host", "x-forwarded-for", "forwarded", "x-original-url", "x-secret-hop",
                 "te", "proxy-authorization", "cookie"):
        assert name not in got, name
    assert got["openai-organization"] == "org-123"  # allow-listed
    assert got["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert got["host"].startswith("127.0.0.1:")


def test_body_fields_cannot_redirect_the_upstream(proxy: ProxyHandle, sim: SimulatorHandle) -> None:
    body = (b'{"model": "sim-gpt", "base_url": "http://169.254.169.254/", "api_base": "http://evil.example",'
            b' "messages": [{"role": "user", "content": "hi"}]}')
    before = sim.stats()["requests"]
    r = httpx.post(f"{proxy.url}/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and sim.stats()["requests"] == before + 1


def test_absolute_form_request_target_is_not_followed(proxy: ProxyHandle, sim: SimulatorHandle) -> None:
    """An HTTP-proxy style request line naming another host still goes to the configured upstream."""
    url = httpx.URL(proxy.url)
    before = sim.stats()["requests"]
    head = (f"POST http://169.254.169.254/v1/chat/completions HTTP/1.1\r\nHost: 169.254.169.254\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + BODY)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert status in (200, 400, 404)
    assert sim.stats()["requests"] - before == (1 if status == 200 else 0)


def test_upstream_response_headers_are_allow_listed(proxy: ProxyHandle) -> None:
    r = httpx.post(f"{proxy.url}/chat/completions", content=BODY, headers={"content-type": "application/json"})
    assert "server" not in r.headers
    assert {"x-guardproxy-request-id", "x-guardproxy-verdict"} <= set(r.headers)
