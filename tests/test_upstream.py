"""The upstream client, on every transport: keeps no cookies (nothing one exchange's upstream set rides
on the next), follows no redirect, ignores proxy variables, joins repeated headers, names a body cut
short, and caches parsed URLs within a bound."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy import __version__
from proxy.errors import UpstreamError
from proxy.settings import load_settings
from proxy.upstream import Upstream

TRANSPORTS = ["auto", "asyncio", "pyreqwest", "aiohttp", "httpx"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cookie_the_upstream_sets_is_never_sent_back(transport: str) -> None:
    seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response({"object": "list", "data": []})
        response.set_cookie("session", "for-the-first-client", path="/")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        for _ in range(2):
            response = await upstream.send("GET", "/models", headers=upstream.headers({}, has_body=False))
            assert "set-cookie" in response.headers  # the upstream did set one
            await response.aclose()
    finally:
        await upstream.aclose()
        await runner.cleanup()
    assert seen == [None, None]


async def test_parsed_urls_are_cached_within_a_bound() -> None:
    upstream = Upstream(load_settings(upstream_url="http://127.0.0.1:9/v1"))
    try:
        for i in range(200):  # paths with client-chosen ids: each fails to connect, none is kept past the bound
            with pytest.raises(UpstreamError):
                await upstream.send("GET", f"/responses/resp_{i}", headers={})
        assert len(upstream._urls) <= 16
    finally:
        await upstream.aclose()


async def _serve(routes: list[tuple[str, str, Any]]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_redirects_are_relayed_never_followed_and_repeated_headers_join(transport: str) -> None:
    followed: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        response = web.Response(status=307, headers={"location": "/v1/elsewhere"})
        response.headers.add("x-ratelimit-remaining", "1")
        response.headers.add("x-ratelimit-remaining", "2")
        return response

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.path)
        return web.json_response({})

    runner, port = await _serve([("POST", "/v1/chat/completions", moved), ("*", "/v1/elsewhere", elsewhere)])
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        response = await upstream.send("POST", "/chat/completions", content=b"{}",
                                       headers=upstream.headers({}, has_body=True))
        assert response.status_code == 307 and response.headers["location"] == "/v1/elsewhere"
        assert response.headers["x-ratelimit-remaining"] == "1, 2"
        await response.aclose()
    finally:
        await upstream.aclose()
        await runner.cleanup()
    assert followed == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_proxy_variables_in_the_environment_do_not_steer_it(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    runner, port = await _serve([("GET", "/v1/models", models)])
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        response = await upstream.send("GET", "/models", headers=upstream.headers({}, has_body=False))
        assert response.status_code == 200 and await response.aread() == b'{"object": "list", "data": []}'
        await response.aclose()
    finally:
        await upstream.aclose()
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["asyncio", "pyreqwest"])
async def test_a_body_cut_short_is_truncated_and_a_dead_port_unreachable(transport: str) -> None:
    async def short(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-length": "100", "content-type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"partial": ')
        assert request.transport is not None
        request.transport.close()  # the connection drops 88 bytes short of what was promised
        return response

    runner, port = await _serve([("POST", "/v1/chat/completions", short)])
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        with pytest.raises(UpstreamError) as exc:  # at send (the read-ahead saw it) or at the read
            response = await upstream.send("POST", "/chat/completions", content=b"{}",
                                           headers=upstream.headers({}, has_body=True))
            try:
                await response.aread()
            finally:
                await response.aclose()
                await response.aclose()  # idempotent
        assert exc.value.code == "upstream_truncated"
    finally:
        await upstream.aclose()
        await runner.cleanup()
    dead = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        with pytest.raises(UpstreamError) as exc:
            await dead.send("GET", "/models", headers={})
        assert exc.value.code == "upstream_unreachable"
    finally:
        await dead.aclose()


async def test_auto_sends_plain_calls_and_streams_through_the_asyncio_client() -> None:
    agents: list[str] = []

    async def models(request: web.Request) -> web.Response:
        agents.append(request.headers.get("user-agent", ""))
        return web.json_response({"object": "list", "data": []})

    runner, port = await _serve([("GET", "/v1/models", models)])
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1"))
    try:
        for stream in (False, True):
            response = await upstream.send("GET", "/models", headers=upstream.headers({}, has_body=False),
                                           stream=stream)
            await response.aread()
            await response.aclose()
    finally:
        await upstream.aclose()
        await runner.cleanup()
    assert agents == [f"guardproxy/{__version__}"] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_arrives_event_by_event(transport: str) -> None:
    release = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await release.wait()  # the second event waits until the client has read the first
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    runner, port = await _serve([("POST", "/v1/chat/completions", events)])
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        response = await upstream.send("POST", "/chat/completions", content=b"{}",
                                       headers=upstream.headers({}, has_body=True), stream=True)
        seen = b""
        async with asyncio.timeout(5):
            async for chunk in response.aiter_raw():
                seen += chunk
                if seen == b"data: one\n\n":
                    release.set()
        assert seen == b"data: one\n\ndata: two\n\n"
        await response.aclose()
    finally:
        release.set()
        await upstream.aclose()
        await runner.cleanup()


def _private_ca(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA no system trusts, and a server context with a certificate it signed for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "guardproxy test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "srv.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "srv.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "srv.pem", tmp / "srv.key")
    return tmp / "ca.pem", context


@pytest.mark.parametrize("transport", ["auto", "asyncio", "pyreqwest"])
async def test_an_https_upstream_is_verified_against_the_system_store_and_ssl_cert_file(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An upstream behind a private CA is refused until SSL_CERT_FILE names the CA, as with OpenSSL.
    # (aiohttp reads SSL_CERT_FILE once, when it is imported, so it cannot be shown in this process.)
    ca, context = _private_ca(tmp_path)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusting = Upstream(load_settings(upstream_url=url, upstream_transport=transport))
        try:
            with pytest.raises(UpstreamError):
                await untrusting.send("GET", "/models", headers={})
        finally:
            await untrusting.aclose()
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        trusting = Upstream(load_settings(upstream_url=url, upstream_transport=transport))
        try:
            response = await trusting.send("GET", "/models", headers={})
            assert response.status_code == 200
            await response.aclose()
        finally:
            await trusting.aclose()
    finally:
        await runner.cleanup()
