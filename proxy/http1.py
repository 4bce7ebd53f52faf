"""A small HTTP/1.1 client for the one upstream: asyncio's transports and the llhttp parser.

Why not a general client library: on the overhead benchmark's request a round trip costs about
190-220 us of CPU through aiohttp, 150-175 us through reqwest (pyreqwest; each request and each
chunk crosses to and from its own runtime thread), 230-257 us through rnet and 440 us through
aiosonic, against about 50-80 us here, where the bytes go straight from the event loop's
transport into llhttp (httptools, the parser uvicorn serves with). The proxy needs one narrow
thing of a client, a request to its own configured upstream, and nothing a general client adds:
no redirects, cookies, proxy variables, decompression, retries or HTTP/2. Parsing stays with
llhttp (strict by default: a malformed or smuggling response is a parse error, never guessed at);
TLS is the ssl module's, verified against the system store and `SSL_CERT_FILE` as OpenSSL reads
them when the first https connection is made.

Every wait (for a connection, for the response head, for each piece of the body) has its own
deadline, so a silent upstream costs a bounded time; the body is handed over as it arrives and
reading pauses while more than READ_AHEAD bytes wait unread, so a huge or endless answer costs
bounded memory. A connection goes back to the pool only after a complete response that allows
keep-alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

READ_AHEAD = 256 << 10  # unread body bytes held before the socket stops being read
MAX_HEAD_BYTES = 64 << 10  # status line and headers together; also bytes in a row that carry no body
_MAX_TARGETS = 64
# An idle connection older than this is closed rather than reused (aiohttp's keep-alive time): an
# upstream's own idle timeout may be closing it just as a request goes out on it.
IDLE_S = 15.0
# What may go on the wire (RFC 9110/9112): a token for the method and header names, visible ASCII
# for the request target (no "#"), visible ASCII, space and tab for header values.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_URL = re.compile(r"[!-\x22\x24-~]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Framing is the client's own business: a caller's copy of these would contradict it.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class Http1Error(Exception):
    """A failure of the exchange itself; the caller turns each kind into its own error."""


class ConnectFailed(Http1Error):
    """No connection could be made (refused, unreachable, TLS refused)."""


class ClosedBeforeAnswer(Http1Error):
    """The connection closed before the response head was complete."""


class Truncated(Http1Error):
    """The connection closed before the body its head announced was complete."""


class BadResponse(Http1Error):
    """What came back is not a valid HTTP/1.1 response (or its head is too large)."""


class Timeout(Http1Error, TimeoutError):
    """A wait (connection, free pool slot, head, body) ran past its deadline."""


class _Target:
    """A URL split once: where to connect and what to put on the request line."""

    __slots__ = ("host", "host_header", "key", "port", "request_target", "tls")

    def __init__(self, url: str) -> None:
        # Checked before splitting: urlsplit drops tabs and line breaks silently.
        if not _URL.fullmatch(url):
            raise ValueError(f"URL {url[:80]!r} holds a character a request line cannot (space, control, "
                             "non-ASCII or '#')")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default = 443 if self.tls else 80
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = shown if self.port == default else f"{shown}:{self.port}"
        self.request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.key = (self.tls, self.host, self.port)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; llhttp's callbacks fill in the response being read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tls: bool) -> None:
        self.loop = loop
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.lost_error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self._poll: select.poll | None = None
        self._begin()

    def _begin(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.barren = 0  # bytes read in a row that added nothing (head, trailers, chunk extensions)
        self.parse_error: str | None = None
        self.paused = False
        self.keep_alive = False
        self.extra = False  # bytes after the complete response: never part of it, never reused

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def stirred(self) -> bool:
        """Whether the socket has something to read right now, before the loop has seen it: on an
        idle connection that is the upstream closing it (or sending what no request asked for)."""
        return self._poll is not None and bool(self._poll.poll(0))

    def data_received(self, data: bytes) -> None:
        if self.complete or self.extra:  # more after the answer (or while idle): not this response's
            self.extra = True
            self._drop()
            return
        before = self.buffered
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.parse_error = f"the upstream's response is not valid HTTP/1.1 ({type(exc).__name__}: {exc})"
        # Bytes that bring no body (an endless head, trailers or chunk extensions) are capped, so
        # neither memory nor the wait grows with them.
        self.barren = 0 if self.buffered > before else self.barren + len(data)
        if self.parse_error is None and not self.complete and self.barren > MAX_HEAD_BYTES:
            what = "response head" if not self.head_done else "response's bytes that carry no body"
            self.parse_error = f"the upstream's {what} ran past {MAX_HEAD_BYTES} bytes"
        if self.parse_error is not None:
            self._drop()
        elif self.buffered > READ_AHEAD and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.lost_error = True, exc
        self._wake()

    # llhttp callbacks (a second message in the same read is marked extra and ignored)
    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.extra and not self.head_done:  # trailers are not relayed
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.extra:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (e.g. 103 Early Hints): the real one follows
            self.headers = []
            return
        self.status = status
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if self.extra:
            return
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.head_done and not self.extra:
            self.complete = True
            # asked now: once this callback returns, llhttp has moved on and answers False
            self.keep_alive = self.parser.should_keep_alive()

    # used by the client
    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self, deadline: float, what: str, timeout_s: float) -> None:
        """Until the parser or the socket has something new; Timeout at `deadline` (loop time)."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = self.loop.call_at(deadline, _expire, waiter, what, timeout_s)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> bytes:
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.lost:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        # A paused socket may hold bytes it has not read; unsent request bytes (an early answer)
        # would reach the upstream as the start of the next request: neither is reused.
        return (self.complete and self.keep_alive and not self.lost and not self.extra and not self.paused
                and self.parse_error is None and self.transport is not None and not self.transport.is_closing()
                and not self.transport.get_write_buffer_size())

    def reset(self) -> None:
        self._begin()

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], what: str, timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(Timeout(f"no {what} within {timeout_s:g}s"))


class Response:
    """A response whose head has arrived: `chunks` reads the body, `close` ends it (idempotent)."""

    __slots__ = ("_client", "_conn", "_idle_s", "_key", "headers", "status")

    def __init__(self, client: Http1Client, conn: _Connection, key: tuple[bool, str, int], idle_s: float) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self._key = key
        self._idle_s = idle_s
        self.status = conn.status
        self.headers = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; each piece must come within `idle_s` of the one before."""
        conn = self._conn
        if conn is None:
            return
        deadline = conn.loop.time() + self._idle_s
        while True:
            if self._conn is not conn:  # closed (its connection may already serve another request)
                raise RuntimeError("the response was closed before its body was read")
            if conn.chunks:
                yield conn.take()
                deadline = conn.loop.time() + self._idle_s
                continue
            if conn.complete:
                return
            if conn.parse_error is not None:
                raise BadResponse(conn.parse_error)
            if conn.lost:
                # No length and not chunked: the body is what came before the close, but only over
                # plain TCP. Over TLS asyncio reports a bare TCP close (anyone on the path can cut
                # one) as it does a close_notify, so such a body is never taken as complete there.
                if conn.lost_error is None and not conn.tls and _until_close(conn):
                    return
                raise Truncated("the upstream closed the connection mid-body")
            await conn.wait(deadline, "more of the upstream's response body", self._idle_s)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(self._key, conn)


def _until_close(conn: _Connection) -> bool:
    """A response whose body ends when the connection does (HTTP/1.0 style)."""
    names = {name.lower() for name, _ in conn.headers}
    return b"content-length" not in names and b"transfer-encoding" not in names


class Http1Client:
    """Pooled connections to the upstream: at most `limit` open at once (a request waits up to
    `pool_s` for one), idle ones reused while they last."""

    def __init__(self, *, limit: int, connect_s: float, pool_s: float, user_agent: str = "guardproxy") -> None:
        self.limit = limit
        self.user_agent = user_agent
        self.connect_s = connect_s
        self.pool_s = pool_s
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, method: str, url: str, headers: dict[str, str], content: bytes | None,
                      idle_s: float) -> Response:
        """Send and return once the response head is in (within `idle_s`); its body is read with
        `Response.chunks`. ValueError for a request that cannot be written as given."""
        if self._closed:
            raise RuntimeError("the upstream client is closed")
        target = self._target(url)
        raw = self._head(method, target, headers, content)
        conn = await self._acquire(target)
        try:
            conn.send(raw + content if content else raw)
            deadline = conn.loop.time() + idle_s
            while not conn.head_done:
                if conn.parse_error is not None:
                    raise BadResponse(conn.parse_error)
                if conn.lost:
                    raise ClosedBeforeAnswer("the upstream closed the connection before answering")
                await conn.wait(deadline, "response from the upstream", idle_s)
        except BaseException:
            conn.close()
            self._release(target.key, conn)
            raise
        return Response(self, conn, target.key, idle_s)

    def _head(self, method: str, target: _Target, headers: dict[str, str], content: bytes | None) -> bytes:
        if method == "HEAD" or not _TOKEN.fullmatch(method):
            raise ValueError(f"method {method[:20]!r} cannot be sent (HEAD is not supported)")
        head = [f"{method} {target.request_target} HTTP/1.1\r\nhost: {target.host_header}\r\n"]
        names = set()
        for name, value in headers.items():
            key = name.lower()
            if not _TOKEN.fullmatch(name) or key in _OWN_HEADERS or key in names or not _VALUE.fullmatch(value):
                raise ValueError(f"header {name[:40]!r} cannot be sent: not a token, set by the client itself, "
                                 "repeated, or its value holds a control or non-ASCII character")
            names.add(key)
            head.append(f"{name}: {value}\r\n")
        if "user-agent" not in names:
            head.append(f"user-agent: {self.user_agent}\r\n")
        if content is not None:
            head.append(f"content-length: {len(content)}\r\n")
        head.append("\r\n")
        return "".join(head).encode("ascii")

    async def aclose(self) -> None:
        """Close idle connections and refuse new requests; waiters for a slot fail now."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
                self._open -= 1
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the upstream client is closed"))

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = target
        return target

    async def _acquire(self, target: _Target) -> _Connection:
        deadline: float | None = None
        while True:
            idle = self._idle.get(target.key)
            while idle:
                conn = idle.pop()  # the most recently used first
                stale = conn.loop.time() - conn.idle_since > IDLE_S
                if (stale or conn.lost or conn.transport is None or conn.transport.is_closing() or conn.extra
                        or conn.stirred()):
                    # Closed (or written to) by the upstream while it sat idle, or too old. The last
                    # check asks the socket itself: a close that has arrived but that the loop has not
                    # read yet would otherwise take the request down with it.
                    conn.close()
                    self._open -= 1
                    continue
                conn.reset()
                return conn
            if self._open < self.limit or self._evict_idle():
                break
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.pool_s
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter, "free pooled connection", self.pool_s)
            try:
                await waiter
            except BaseException:
                # Woken, then cancelled before it ran: the wake-up must go to the next in line.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake_one()
                raise
            finally:
                timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        try:
            return await self._connect(target)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def _evict_idle(self) -> bool:
        """Close an idle connection to another address to make room; False when there is none."""
        for conns in self._idle.values():
            if conns:
                conns.pop(0).close()
                self._open -= 1
                return True
        return False

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self._context() if target.tls else None
        try:
            async with asyncio.timeout(self.connect_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, target.tls), target.host, target.port, ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
        except TimeoutError:
            raise Timeout(f"no connection to the upstream within {self.connect_s:g}s") from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS with the upstream failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConnectFailed(f"connection refused or failed: {exc.strerror or exc}") from None
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            # The system store, and SSL_CERT_FILE / SSL_CERT_DIR when set (OpenSSL reads them here).
            self._tls = ssl.create_default_context()
        return self._tls

    def _release(self, key: tuple[bool, str, int], conn: _Connection) -> None:
        if not self._closed and conn.reusable():
            conn.idle_since = conn.loop.time()
            self._idle.setdefault(key, []).append(conn)
        else:
            conn.close()
            self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
