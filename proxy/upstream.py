"""The one connection-pooled HTTP client to the upstream model API, and its error translation.

httpx lives here and nowhere else. The transport is aiohttp's by default: httpx's own async
transport loses throughput as concurrency rises (encode/httpx#3215; measured in bench/). The
upstream key is the proxy's own and is added here (in the form the wire API's `upstream_auth`
gives), to requests only; client headers are passed through an allow-list so nothing a client
sends can steer or impersonate the proxy upstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from http.cookiejar import CookieJar
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from proxy.errors import InvalidRequest, UpstreamError, UpstreamTimeout
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


class Upstream:
    """A process-wide client: create once at start-up (creating one costs ~35 ms), close at exit."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.upstream_url
        self._base_urls = {"anthropic": settings.anthropic_upstream_url or settings.upstream_url}
        self._key = settings.upstream_api_key
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        t = settings.timeouts
        self._timeout = httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.read_s, pool=t.read_s)
        self._stream_timeout = httpx.Timeout(
            connect=t.connect_s, read=t.stream_idle_s, write=t.read_s, pool=t.read_s
        )
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
        )
        transport: httpx.AsyncBaseTransport
        if settings.upstream_transport == "aiohttp":
            transport = AiohttpTransport(limits=limits, trust_env=False)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        self._client = httpx.AsyncClient(transport=transport, trust_env=False, cookies=_NoCookies())

    def base_for(self, vendor: str) -> str:
        """The base URL requests to `vendor`'s APIs go to."""
        return self._base_urls.get(vendor, self.base_url)

    async def aclose(self) -> None:
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
    ) -> httpx.Response:
        """Send and return the response with its body unread (the caller reads or streams it)."""
        url = self._urls.get((vendor, path))
        if url is None:
            url = httpx.URL(self.base_for(vendor) + path)
            # The adapters' constant paths fill it first; paths carrying client ids or queries
            # (the Responses routes) must not grow it without bound.
            if len(self._urls) < _MAX_CACHED_URLS:
                self._urls[(vendor, path)] = url
        request = self._client.build_request(
            method,
            url,
            content=content,
            headers=headers,
            timeout=self._stream_timeout if stream else self._timeout,
        )
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc

    async def probe(self) -> tuple[bool, str]:
        """Readiness: can a connection to the upstream be made and answered at all?"""
        try:
            response = await self.send("GET", "/models", headers=self.headers({}, has_body=False))
            await response.aclose()
        except UpstreamError as exc:
            return False, exc.message
        return True, f"upstream answered {response.status_code}"


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


def relay_headers(upstream_headers: httpx.Headers) -> dict[str, str]:
    return {
        k: v
        for k, v in upstream_headers.items()
        if k in RELAY_RESPONSE_HEADERS or k.startswith(_RELAY_PREFIXES)
    }


def translate(exc: BaseException) -> UpstreamError:
    """An httpx/aiohttp failure as our error: 504 for timeouts, 502 for everything else.

    The aiohttp transport maps some aiohttp errors to misleading httpx types (a server closing
    the connection becomes ConnectTimeout), so the original cause decides where it is known.
    """
    cause = exc.__cause__ or exc
    if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
        return UpstreamError("upstream unreachable: connection refused or failed", code="upstream_unreachable")
    # ClientConnectorError is itself a ClientOSError: it must be tested first.
    if isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamError("upstream closed the connection before answering", code="upstream_reset")
    if isinstance(cause, aiohttp.ClientPayloadError):
        return UpstreamError("upstream response truncated: the connection closed mid-body", code="upstream_truncated")
    if isinstance(cause, TimeoutError | aiohttp.ServerTimeoutError) or isinstance(
        exc, httpx.TimeoutException
    ):
        return UpstreamTimeout("upstream timed out: no response within the configured read timeout")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return UpstreamError(f"upstream connection failed: {type(exc).__name__}", code="upstream_reset")
    return UpstreamError(f"upstream request failed: {type(exc).__name__}")
