"""The asyncio HTTP/1.1 client against a raw socket server that says exactly the given bytes: keep-alive
reuse, bodies by length, chunks and close, interim answers, and a hostile upstream (bytes after the
answer, a smuggled second response, an endless head, an endless body, silence, a pool held full)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from test_upstream import _private_ca

from proxy import http1
from proxy.http1 import (
    MAX_HEAD_BYTES,
    READ_AHEAD,
    BadResponse,
    ClosedBeforeAnswer,
    ConnectFailed,
    Http1Client,
    Timeout,
    Truncated,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


class Server:
    """Answers each request on each connection with `answer(n)` (n counts requests overall)."""

    def __init__(self, answer: Callable[[int], bytes], close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.requests.append(await _read_request(reader))
                writer.write(self.answer(len(self.requests)))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat"


async def _serve(server: Server) -> Server:
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    return server


async def _body(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    c = Http1Client(limit=4, connect_s=2, pool_s=0.3)
    yield c
    await c.aclose()


async def _get(client: Http1Client, url: str, idle_s: float = 2.0) -> tuple[int, bytes]:
    response = await client.request("POST", url, {"content-type": "application/json"}, b'{"a":1}', idle_s)
    try:
        return response.status, await _body(response.chunks())
    finally:
        await response.close()


async def test_a_connection_is_reused_after_a_complete_answer_and_the_request_is_well_formed(
    client: Http1Client,
) -> None:
    server = await _serve(Server(lambda n: OK))
    for _ in range(5):
        assert await _get(client, server.url) == (200, b"{}")
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\ncontent-length: 7\r\n" in first and first.endswith(b'\r\n\r\n{"a":1}')
    assert b"user-agent: guardproxy" in first


async def test_chunked_and_until_close_bodies_and_an_interim_answer(client: Http1Client) -> None:
    chunked = (b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    server = await _serve(Server(lambda n: chunked))
    response = await client.request("GET", server.url, {}, None, 2)
    assert (response.status, response.headers) == (200, [(b"transfer-encoding", b"chunked")])
    assert await _body(response.chunks()) == b"abcde"
    await response.close()
    until_close = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\n\r\nall of it", close_after=True))
    assert await _get(client, until_close.url) == (200, b"all of it")


async def test_a_body_cut_short_is_truncated_and_the_connection_not_reused(client: Http1Client) -> None:
    server = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{\"partial\"",
                                 close_after=True))
    with pytest.raises(Truncated):
        await _get(client, server.url)
    silent = await _serve(Server(lambda n: b"", close_after=True))
    with pytest.raises(ClosedBeforeAnswer):
        await _get(client, silent.url)
    assert client._open == 0  # both connections closed and counted out


async def test_bytes_after_the_answer_are_not_taken_as_the_next_answer(client: Http1Client) -> None:
    # A second response smuggled after the first (same write): it must not answer the next request.
    smuggled = OK + b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"
    server = await _serve(Server(lambda n: smuggled if n == 1 else OK))
    assert await _get(client, server.url) == (200, b"{}")
    assert await _get(client, server.url) == (200, b"{}")
    assert server.connections == 2  # the first connection was dropped, never reused


async def test_a_connection_idle_too_long_is_not_reused(client: Http1Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_S", 0.1)
    server = await _serve(Server(lambda n: OK))
    assert await _get(client, server.url) == (200, b"{}")
    assert await _get(client, server.url) == (200, b"{}")  # at once: the same connection
    await asyncio.sleep(0.2)
    assert await _get(client, server.url) == (200, b"{}")
    assert server.connections == 2
    assert client._open == 1


async def test_an_upstream_that_closes_an_idle_connection_gets_a_new_one(client: Http1Client) -> None:
    server = await _serve(Server(lambda n: OK, close_after=True))  # keep-alive promised, then closed
    for _ in range(3):
        assert await _get(client, server.url) == (200, b"{}")
        await asyncio.sleep(0.05)  # the close arrives while the connection sits idle
    assert server.connections == 3


async def test_a_close_the_loop_has_not_read_yet_is_seen_before_reuse(client: Http1Client) -> None:
    # The upstream closes the idle connection; the close has reached the socket but the event loop
    # has not run since (time.sleep holds it): the pooled connection must still not be reused.
    server = await _serve(Server(lambda n: OK, close_after=True))
    assert await _get(client, server.url) == (200, b"{}")
    time.sleep(0.2)  # blocking on purpose: the loop must not see the close first
    assert await _get(client, server.url) == (200, b"{}")
    assert server.connections == 2


async def test_malformed_or_endless_heads_are_refused(client: Http1Client) -> None:
    bad = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}"))
    with pytest.raises(BadResponse):
        await _get(client, bad.url)
    endless = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * (MAX_HEAD_BYTES + 10)))
    with pytest.raises(BadResponse, match="ran past"):
        await _get(client, endless.url)
    switch = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"
    upgrade = await _serve(Server(lambda n: switch))
    with pytest.raises(BadResponse):
        await _get(client, upgrade.url)
    assert client._open == 0


async def test_endless_trailers_or_chunk_extensions_are_capped_not_held(client: Http1Client) -> None:
    # After the last chunk, trailer lines that never end: neither kept nor waited on without bound.
    trailers = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + b"".join(
        b"x-t%d: %s\r\n" % (i, b"a" * 100) for i in range(2000))
    server = await _serve(Server(lambda n: trailers))
    response = await client.request("GET", server.url, {}, None, 2)
    with pytest.raises(BadResponse, match="carry no body"):
        await _body(response.chunks())
    assert len(response.headers) == 1  # the trailers never joined the head
    await response.close()
    extension = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n5;" + b"e" * (MAX_HEAD_BYTES + 100)
    server = await _serve(Server(lambda n: extension))
    response = await client.request("GET", server.url, {}, None, 2)
    with pytest.raises((BadResponse, Timeout)):
        await _body(response.chunks())
    await response.close()


async def test_a_trickled_head_times_out_on_a_fixed_deadline(client: Http1Client) -> None:
    # One byte at a time, each well inside the idle time: the head still has one deadline.
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        for byte in b"HTTP/1.1 200 OK\r\nx-slow: " + b"a" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    start = asyncio.get_running_loop().time()
    with pytest.raises(Timeout, match="no response"):
        await client.request("GET", f"http://127.0.0.1:{port}/", {}, None, 0.3)
    assert asyncio.get_running_loop().time() - start < 1.0
    server.close()


async def test_silence_times_out_for_the_head_and_for_the_body(client: Http1Client) -> None:
    mute = await _serve(Server(lambda n: b""))  # reads the request, never answers
    with pytest.raises(Timeout, match="no response"):
        await _get(client, mute.url, idle_s=0.2)
    stalls = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"))
    with pytest.raises(Timeout, match="body"):
        await _get(client, stalls.url, idle_s=0.2)


async def test_a_large_body_is_read_with_bounded_read_ahead(client: Http1Client) -> None:
    size = 8 * READ_AHEAD
    server = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size))
    response = await client.request("GET", server.url, {}, None, 2)
    total, largest = 0, 0
    async for chunk in response.chunks():
        total += len(chunk)
        largest = max(largest, len(chunk))
        await asyncio.sleep(0.01)  # a slow reader: the socket must stop being read meanwhile
    await response.close()
    assert total == size
    assert largest <= READ_AHEAD + (1 << 20)  # at most the read-ahead plus one socket read


async def test_a_large_answer_closed_unread_is_not_reused(client: Http1Client) -> None:
    # Complete but left unread past the read-ahead: the socket is paused and is not put back.
    size = 2 * READ_AHEAD
    server = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size))
    response = await client.request("GET", server.url, {}, None, 2)
    await asyncio.sleep(0.1)
    await response.close()
    status, body = await _get(client, server.url)
    assert (status, len(body)) == (200, size)
    assert server.connections == 2


async def test_a_closed_response_cannot_read_the_next_requests_body(client: Http1Client) -> None:
    server = await _serve(Server(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nr%d\n" % n))
    first = await client.request("GET", server.url, {}, None, 2)
    stale = first.chunks()
    assert await stale.__anext__() == b"r1\n"
    await first.close()
    assert await _get(client, server.url) == (200, b"r2\n")
    with pytest.raises(RuntimeError, match="closed"):
        await stale.__anext__()


async def test_a_waiter_cancelled_after_its_wake_up_passes_it_on() -> None:
    client = Http1Client(limit=1, connect_s=2, pool_s=3)
    server = await _serve(Server(lambda n: OK))
    try:
        held = await client.request("GET", server.url, {}, None, 2)
        second = asyncio.create_task(_get(client, server.url))
        third = asyncio.create_task(_get(client, server.url))
        await asyncio.sleep(0.05)
        await _body(held.chunks())
        await held.close()  # wakes the second request...
        second.cancel()  # ...which is cancelled before it runs: the third must not wait 3 s
        start = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(third, 1) == (200, b"{}")
        assert asyncio.get_running_loop().time() - start < 0.5
    finally:
        await client.aclose()
    assert client._open == 0
    with pytest.raises(RuntimeError, match="closed"):
        await client.request("GET", server.url, {}, None, 2)


async def test_a_full_pool_makes_a_request_wait_then_time_out() -> None:
    client = Http1Client(limit=1, connect_s=2, pool_s=0.2)
    server = await _serve(Server(lambda n: OK))
    try:
        held = await client.request("GET", server.url, {}, None, 2)  # its body left unread: slot held
        with pytest.raises(Timeout, match=r"no free pooled connection within 0\.2s"):
            await client.request("GET", server.url, {}, None, 2)
        waiting = asyncio.create_task(_get(client, server.url))
        await asyncio.sleep(0.05)
        assert await _body(held.chunks()) == b"{}"
        await held.close()  # back to the pool: the waiting request takes it
        assert await waiting == (200, b"{}")
        assert server.connections == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("GET", "/v1", {"x-a": "b\r\nx-injected: 1"}),
    ("GET", "/v1", {"x-a": "b\x00"}),
    ("GET", "/v1", {"x-a": "caf\u00e9"}),
    ("GET", "/v1", {"x a": "b"}),
    ("GET", "/v1", {"content-length ": "0"}),
    ("GET", "/v1", {"Content-Length": "0"}),
    ("GET", "/v1", {"transfer-encoding": "chunked"}),
    ("GET", "/v1", {"Host": "elsewhere"}),
    ("GET", "/v1", {"user-agent": "a", "User-Agent": "b"}),
    ("GET\r\nX", "/v1", {}),
    ("HEAD", "/v1", {}),
    ("GET", "/v1 HTTP/1.1\r\nx-a: 1", {}),
    ("GET", "/v1/a b", {}),
    ("GET", "/v1/a\x00", {}),
    ("GET", "/v1/a#frag", {}),
    ("GET", "/v1/caf\u00e9", {}),
])
async def test_what_cannot_be_written_as_given_is_refused_before_sending(
    client: Http1Client, method: str, path: str, headers: dict[str, str]
) -> None:
    server = await _serve(Server(lambda n: OK))
    assert server.server is not None
    base = f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}"
    with pytest.raises(ValueError):
        await client.request(method, base + path, headers, None, 2)
    assert server.requests == [] and server.connections == 0


async def test_a_dead_port_is_unreachable(client: Http1Client) -> None:
    server = await _serve(Server(lambda n: OK))
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    server.server.close()
    await server.server.wait_closed()
    with pytest.raises(ConnectFailed):
        await client.request("GET", f"http://127.0.0.1:{port}/v1", {}, None, 2)


async def test_over_tls_a_body_ended_by_a_bare_close_is_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a length, a body ends with the connection; over TLS only a close_notify says the
    # upstream ended it, since anyone on the path can cut the TCP connection.
    ca, context = _private_ca(tmp_path)

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n{\"answer\": \"the first half")
        await writer.drain()
        writer.transport.abort()  # TCP closed, no close_notify

    server = await asyncio.start_server(cut, "127.0.0.1", 0, ssl=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    client = Http1Client(limit=2, connect_s=2, pool_s=1)
    try:
        with pytest.raises(Truncated):
            await _get(client, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
    finally:
        await client.aclose()
        server.close()
