"""The one connection-pooled HTTP client to the upstream model API, and its error translation.

The client lives here and nowhere else: the rest of the proxy sees an `UpstreamResponse` (status,
lower-case headers, the body as it arrives) and our own errors. The default transport, `auto`, is
`asyncio`: the small HTTP/1.1 client in `proxy.http1` (asyncio's transports and the llhttp parser),
which on the overhead benchmark's request costs about 50-80 us of CPU a round trip against reqwest's
150-175 (pyreqwest: each request and chunk crosses to and from its own runtime thread) and
aiohttp's 190-220; in the running proxy the default pipeline's CPU per request fell from about
1.55x the floor's to 1.32x in the same run. `pyreqwest`, `aiohttp` and `httpx` (httpx's own
transport, which loses throughput as concurrency rises, encode/httpx#3215) remain selectable.
Whichever runs, no redirect is followed, no cookie kept, no proxy variable read, no body
decompressed. The upstream key is the proxy's own and is added here (in the form the wire API's
`upstream_auth` gives), to requests only; client headers are passed through an allow-list so
nothing a client sends can steer or impersonate the proxy upstream.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from http.cookiejar import CookieJar
from typing import Any

import aiohttp
import httpx
from pyreqwest.exceptions import BodyDecodeError as ReqwestBodyError
from pyreqwest.exceptions import ConnectError as ReqwestConnectError
from pyreqwest.exceptions import NetworkError as ReqwestNetworkError
from pyreqwest.exceptions import PyreqwestError as ReqwestError
from yarl import URL

from proxy import __version__
from proxy.errors import GuardProxyError, InvalidRequest, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from proxy.http1 import ClosedBeforeAnswer, ConnectFailed, Http1Client, Http1Error, Truncated
from proxy.http1 import Timeout as Http1Timeout
from proxy.providers.base import bearer_auth
from proxy.settings import Settings

# Client request headers worth passing on; everything else (auth, hop-by-hop, host, forwarding
# headers a client could spoof) is dropped.
FORWARD_REQUEST_HEADERS = frozenset(
    {"openai-organization", "openai-project", "openai-beta", "anthropic-version", "anthropic-beta"}
)
# Upstream response headers worth relaying to the client.
RELAY_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "retry-after",
        "x-request-id",
        "openai-processing-ms",
        "openai-version",
        "request-id",
        "anthropic-organization-id",
    }
)
_RELAY_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
# What a forwarded header value may hold: visible ASCII, space and tab (RFC 9110 field-vchar
# without obs-text). A byte past 0x7f cannot be encoded by the client library (once a 500).
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_MAX_CACHED_URLS = 16


class UpstreamResponse:
    """An upstream answer whose body is not read yet: the caller reads or streams it, then closes.

    `headers` has lower-case names (repeated headers joined with ", "). A transport failure while
    the body is read is raised as our UpstreamError, never as the client library's exception.
    """

    __slots__ = ("_chunks", "_close", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], chunks: AsyncIterator[bytes],
                 close: Callable[[], Awaitable[None]]) -> None:
        self.status_code = status_code
        self.headers = headers
        self._chunks = chunks
        self._close = close

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except GuardProxyError:
            raise
        except (aiohttp.ClientError, httpx.HTTPError, TimeoutError, Http1Error) as exc:
            raise translate(exc) from exc

    async def aiter_text(self) -> AsyncIterator[str]:
        """The body as text (UTF-8, as SSE is), decoded across chunk boundaries."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self.aiter_raw():
            if text := decoder.decode(chunk):
                yield text
        if text := decoder.decode(b"", final=True):
            yield text

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        """Hand the connection back (a body left unread closes it instead). Idempotent."""
        await self._close()


class Upstream:
    """A process-wide client: create once at start-up (inside the event loop), close at exit."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.upstream_url
        self._base_urls = {"anthropic": settings.anthropic_upstream_url or settings.upstream_url}
        self._key = settings.upstream_api_key
        self._urls: dict[tuple[str, str], str] = {}
        self._transport = settings.upstream_transport
        t = settings.timeouts
        limit = settings.upstream_max_connections
        self._reqwest = self._transport == "pyreqwest"
        self._rclients: dict[bool, Any] = {}
        self._h1: Http1Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: httpx.AsyncClient | None = None
        self._idle_s = {False: t.read_s, True: t.stream_idle_s}
        if self._transport in ("auto", "asyncio"):
            self._h1 = Http1Client(limit=limit, connect_s=t.connect_s, pool_s=t.read_s,
                                   user_agent=f"guardproxy/{__version__}")
        if self._reqwest:
            # One client per read timeout: reqwest's read timeout is the client's, and a stream may
            # sit idle far longer than a plain answer may take to start.
            self._rclients = {stream: _reqwest_client(limit, t.connect_s, t.read_s,
                                                      t.stream_idle_s if stream else t.read_s)
                              for stream in (False, True)}
        if self._transport == "aiohttp":
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
                # No cookies kept: one an upstream sets for one client's call must not ride on the next.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False, trust_env=False,
            )
            # `connect` bounds the wait for a pooled connection plus connecting, as httpx's pool timeout.
            self._timeouts = {
                stream: aiohttp.ClientTimeout(total=None, connect=t.read_s, sock_connect=t.connect_s,
                                              sock_read=t.stream_idle_s if stream else t.read_s)
                for stream in (False, True)
            }
        if self._transport == "httpx":
            limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
            self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(limits=limits, trust_env=False),
                                             trust_env=False, cookies=_NoCookies())
            self._httpx_timeouts = {
                stream: httpx.Timeout(connect=t.connect_s, read=t.stream_idle_s if stream else t.read_s,
                                      write=t.read_s, pool=t.read_s)
                for stream in (False, True)
            }

    def base_for(self, vendor: str) -> str:
        """The base URL requests to `vendor`'s APIs go to."""
        return self._base_urls.get(vendor, self.base_url)

    async def aclose(self) -> None:
        for client in self._rclients.values():
            await client.close()
        if self._h1 is not None:
            await self._h1.aclose()
        if self._session is not None:
            await self._session.close()
        if self._client is not None:
            await self._client.aclose()

    def headers(
        self, client_headers: Mapping[str, str] | Iterable[tuple[str, str]], *, has_body: bool,
        auth: Callable[[str], dict[str, str]] = bearer_auth,
    ) -> dict[str, str]:
        out = forwarded_headers(client_headers)
        out["accept-encoding"] = "identity"  # we parse what we relay; no compressed bodies
        if has_body:
            out["content-type"] = "application/json"
        if self._key is not None:  # the client's own key never goes on
            out |= auth(self._key.get_secret_value())
        return out

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str],
        stream: bool = False,
        vendor: str = "openai",
    ) -> UpstreamResponse:
        """Send and return the response with its body unread (the caller reads or streams it)."""
        url = self._urls.get((vendor, path))
        if url is None:
            url = self.base_for(vendor) + path
            # The adapters' constant paths fill it first; paths carrying client ids or queries
            # (the Responses routes) must not grow it without bound.
            if len(self._urls) < _MAX_CACHED_URLS:
                self._urls[(vendor, path)] = url
        if self._h1 is not None:
            return await self._send_h1(self._h1, method, url, content, headers, stream)
        if self._reqwest:
            return await self._send_reqwest(method, url, content, headers, stream)
        if self._session is not None:
            return await self._send_aiohttp(self._session, method, url, content, headers, stream)
        assert self._client is not None
        return await self._send_httpx(self._client, method, url, content, headers, stream)

    async def _send_h1(
        self, client: Http1Client, method: str, url: str, content: bytes | None, headers: dict[str, str],
        stream: bool,
    ) -> UpstreamResponse:
        try:
            response = await client.request(method, url, headers, content, self._idle_s[stream])
        except Http1Error as exc:
            raise translate(exc) from exc
        return UpstreamResponse(response.status, _lower(response.headers), response.chunks(), response.close)

    async def _send_reqwest(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str], stream: bool
    ) -> UpstreamResponse:
        builder = self._rclients[stream].request(method, url).headers(headers)
        if content is not None:
            builder = builder.body_bytes(content)
        if stream:  # each event as it arrives: no read-ahead before the headers are handed over
            builder = builder.streamed_read_buffer_limit(0)
        # Always streamed: the body is read chunk by chunk (bounded by the caller), never buffered
        # whole by the client first (a plain answer's first 64 KB or so are read ahead).
        request = builder.build_streamed()
        try:
            response = await request.__aenter__()
        except ReqwestError as exc:
            raise translate(exc) from exc
        reader = response.body_reader
        closed = False

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while (chunk := await reader.read_chunk()) is not None:
                    yield bytes(chunk)
            except ReqwestError as exc:
                raise translate(exc, reading_body=True) from exc

        async def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                await request.__aexit__(None, None, None)  # pooled when the body was read whole

        # items(): a repeated header once per value, names already lower-case
        return UpstreamResponse(response.status, _lower(response.headers.items()), chunks(), close)

    async def _send_aiohttp(
        self, session: aiohttp.ClientSession, method: str, url: str, content: bytes | None,
        headers: dict[str, str], stream: bool,
    ) -> UpstreamResponse:
        try:
            response = await session.request(
                method, URL(url), data=content, headers=headers, timeout=self._timeouts[stream],
                allow_redirects=False, compress=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate(exc) from exc

        async def close() -> None:
            response.release()  # back to the pool when the body was read whole, else closed

        return UpstreamResponse(response.status, _lower(response.raw_headers), response.content.iter_any(), close)

    async def _send_httpx(
        self, client: httpx.AsyncClient, method: str, url: str, content: bytes | None,
        headers: dict[str, str], stream: bool,
    ) -> UpstreamResponse:
        request = client.build_request(method, url, content=content, headers=headers,
                                       timeout=self._httpx_timeouts[stream])
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        return UpstreamResponse(response.status_code, _lower(response.headers.raw), response.aiter_raw(),
                                response.aclose)

    async def probe(self) -> tuple[bool, str]:
        """Readiness: can a connection to the upstream be made and answered at all?"""
        try:
            response = await self.send("GET", "/models", headers=self.headers({}, has_body=False))
            await response.aclose()
        except UpstreamError as exc:
            return False, exc.message
        return True, f"upstream answered {response.status_code}"


def _lower(raw: Iterable[tuple[bytes | str, bytes | str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        key = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _reqwest_client(limit: int, connect_s: float, pool_s: float, read_s: float) -> Any:
    """reqwest (Rust) via pyreqwest: the HTTP/1.1 exchange costs about half of aiohttp's CPU."""
    from pyreqwest.client import ClientBuilder

    return (
        ClientBuilder()
        .no_proxy()  # like trust_env=False: the environment's proxy variables do not steer it
        .gzip(False).brotli(False).deflate(False).zstd(False)  # we parse what we relay
        .follow_redirects(False)
        .max_connections(limit)
        .connect_timeout(timedelta(seconds=connect_s))
        .pool_timeout(timedelta(seconds=pool_s))
        .read_timeout(timedelta(seconds=read_s))
        .build()
    )


def forwarded_headers(client_headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The allow-listed client headers, in one pass over the pairs (a Starlette `Headers` looks
    each key up by a linear scan, so `dict(headers)` is quadratic in the header count).
    A value that is not printable ASCII is refused with a 400 naming the header."""
    pairs = client_headers.items() if isinstance(client_headers, Mapping) else client_headers
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in FORWARD_REQUEST_HEADERS:
            continue
        if not _HEADER_VALUE.fullmatch(value):
            raise InvalidRequest(
                f"header {key!r} holds a character outside printable ASCII; it cannot be forwarded",
                param=key, code="invalid_header",
            )
        out[key] = value
    return out


class _NoCookies(CookieJar):
    """The proxy keeps no upstream cookies: one set for one client's call must not ride on the
    next client's, and parsing Set-Cookie into a jar on every response is wasted work."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def relay_headers(upstream_headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream response headers a client gets (names lower-case, as UpstreamResponse has them)."""
    return {
        k: v
        for k, v in upstream_headers.items()
        if k in RELAY_RESPONSE_HEADERS or k.startswith(_RELAY_PREFIXES)
    }


def translate(exc: BaseException, *, reading_body: bool = False) -> UpstreamError:
    """A client library's failure as our error: 504 for timeouts, 502 for everything else, with a
    code that says which (unreachable, reset, truncated)."""
    if isinstance(exc, Http1Error):
        if isinstance(exc, Http1Timeout):  # it says which wait: connection, free slot, head or body
            return UpstreamTimeout(f"upstream timed out: {exc}")
        if isinstance(exc, ConnectFailed):
            return UpstreamError(f"upstream unreachable: {exc}", code="upstream_unreachable")
        if isinstance(exc, ClosedBeforeAnswer):
            return UpstreamError("upstream closed the connection before answering", code="upstream_reset")
        if isinstance(exc, Truncated):
            return UpstreamError("upstream response truncated: the connection closed mid-body",
                                 code="upstream_truncated")
        return UpstreamProtocolError(f"upstream answered with a response that is not valid HTTP: {exc}")
    if isinstance(exc, ReqwestError):
        if isinstance(exc, TimeoutError):  # connect, pool, read: all a timeout, as aiohttp's are
            return UpstreamTimeout("upstream timed out: no response within the configured read timeout")
        # reqwest files a connection closed after the request went out under ConnectError too;
        # only its "(Connect)" cause means no connection was made.
        causes = (getattr(exc, "details", None) or {}).get("causes") or ()
        if isinstance(exc, ReqwestConnectError) and any("(Connect)" in c.get("message", "") for c in causes):
            return UpstreamError("upstream unreachable: connection refused or failed", code="upstream_unreachable")
        if reading_body or isinstance(exc, ReqwestBodyError):  # the read-ahead of a plain body, too
            return UpstreamError("upstream response truncated: the connection closed mid-body",
                                 code="upstream_truncated")
        if isinstance(exc, ReqwestNetworkError):
            return UpstreamError("upstream closed the connection before answering", code="upstream_reset")
        return UpstreamError(f"upstream request failed: {type(exc).__name__}")
    # ClientConnectorError is itself a ClientOSError: it must be tested first.
    if isinstance(exc, aiohttp.ClientConnectorError | httpx.ConnectError):
        return UpstreamError("upstream unreachable: connection refused or failed", code="upstream_unreachable")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamError("upstream closed the connection before answering", code="upstream_reset")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("upstream response truncated: the connection closed mid-body", code="upstream_truncated")
    # aiohttp's ServerTimeoutError (connect and read) is a TimeoutError.
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return UpstreamTimeout("upstream timed out: no response within the configured read timeout")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return UpstreamError(f"upstream connection failed: {type(exc).__name__}", code="upstream_reset")
    return UpstreamError(f"upstream request failed: {type(exc).__name__}")
