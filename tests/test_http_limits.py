"""Header size, header count, header-read time and keep-alive idle time, over raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from proxy import serving
from proxy.settings import load_settings

LIMITS = {"max_header_bytes": 16 * 1024, "max_header_count": 50, "header_timeout_s": 0.5,
          "keep_alive_idle_s": 1.0}


@pytest.fixture(scope="module")
def proxy() -> Iterator[serving.ProxyHandle]:
    settings = load_settings(None, port=0, log_level="warning", http=LIMITS, evidence={"enabled": False},
                             stages=[{"name": "limits"}])
    handle = serving.start_in_thread(settings)
    yield handle
    handle.stop()


def connect(proxy: serving.ProxyHandle) -> socket.socket:
    host, port = proxy.url.split("//")[1].split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)  # a guard against hanging, not a limit
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status_and_error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]


def healthy(proxy: serving.ProxyHandle) -> bool:
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_all(sock).startswith(b"HTTP/1.1 200")


def test_an_oversized_header_is_refused_with_431_before_the_app(proxy: serving.ProxyHandle) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        status, error = status_and_error(read_all(sock))
    assert status == 431
    assert error["code"] == "header_too_large" and "16384 bytes" in str(error["message"])
    assert healthy(proxy)


def test_a_32_mb_header_is_cut_off_not_buffered(proxy: serving.ProxyHandle) -> None:
    sent = 0
    refused = b""
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            while sent < 32 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        refused = read_all(sock)
    # The server closed the connection long before 32 MB went through (socket buffers hold a few MB).
    assert sent < 16 * 1024 * 1024, sent
    assert refused == b"" or refused.startswith(b"HTTP/1.1 431")
    assert healthy(proxy)


def test_too_many_headers_are_refused(proxy: serving.ProxyHandle) -> None:
    headers = b"".join(b"X-H-%d: v\r\n" % i for i in range(60))
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status, error = status_and_error(read_all(sock))
    assert status == 431 and error["code"] == "too_many_headers"


def test_headers_within_the_limits_pass(proxy: serving.ProxyHandle) -> None:
    headers = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 200) for i in range(40))
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200")


def test_a_partial_header_is_closed_after_the_header_timeout(proxy: serving.ProxyHandle) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        status, error = status_and_error(read_all(sock))  # returns when the server closes
    assert status == 408 and error["code"] == "header_timeout"


def test_a_trickling_header_is_closed_despite_its_activity(proxy: serving.ProxyHandle) -> None:
    closed = False
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(100):  # one byte every 50 ms, for up to 5 s: 10x the header timeout
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
        raw = read_all(sock)
    assert closed or raw.startswith(b"HTTP/1.1 408")


def test_a_silent_connection_is_closed(proxy: serving.ProxyHandle) -> None:
    with connect(proxy) as sock:
        status, _ = status_and_error(read_all(sock))
    assert status == 408


def test_an_idle_keep_alive_connection_is_closed(proxy: serving.ProxyHandle) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        assert read_all(sock) == b""  # closed by the server after keep_alive_idle_s, not by us
